"""Everything the gateway knows about each platform's inbound requests, one module each.

A module here is the platform's registry key, route segment (``/webhooks/<name>``), job-id
prefix and fixtures folder. Register new platforms in ``PLATFORMS`` explicitly.
"""

from __future__ import annotations

from gateway.platforms import github, slack, stripe
from gateway.types import Platform

PLATFORMS: dict[str, Platform] = {"slack": slack, "github": github, "stripe": stripe}
