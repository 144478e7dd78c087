"""Everything the gateway knows about each platform's inbound requests, one module (or package) each.

A platform's name is its registry key, route segment (``/webhooks/<name>``), job-id prefix and
fixtures folder. The registry is the one explicit list below: adding a platform is one module
that satisfies ``gateway.types.Platform``, its fixtures and tests, and one entry here.
"""

from __future__ import annotations

from gateway.platforms import github, slack, stripe
from gateway.types import Platform

__all__ = ["PLATFORMS"]

_REGISTERED: tuple[Platform, ...] = (slack, github, stripe)

PLATFORMS: dict[str, Platform] = {platform.name: platform for platform in _REGISTERED}
"""The platforms by name, in route order."""
