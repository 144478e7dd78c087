"""The worker's platforms, in one explicit list: what the runtime, the CLI and the ``llm`` agent ask.

Each entry is a platform package's ``WorkerPlatform``. Its name matches the web side's
(``gateway.platforms``; ``api`` runs come from the runs API) and the envelope's ``platform``.
The runtime gets ``session_key`` and ``followup`` from here when the worker starts; nothing
imports a platform module by name at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers import api, followups, github, slack, stripe
from handlers.config import FollowUpSettings
from handlers.messages import FollowUp
from handlers.pipeline import WorkerPlatform
from handlers.recover import Sweep

__all__ = ["PLATFORMS", "SWEEPS", "followup", "session_key"]

_REGISTERED: tuple[WorkerPlatform, ...] = (slack.PLATFORM, github.PLATFORM, stripe.PLATFORM, api.PLATFORM)

PLATFORMS: dict[str, WorkerPlatform] = {platform.name: platform for platform in _REGISTERED}
"""The worker's platforms by name."""

SWEEPS: dict[str, Sweep] = {p.name: p.recover for p in _REGISTERED if p.recover is not None}
"""The recovery sweep of each platform that has one (``gateway recover``, the workers' timer)."""


def session_key(envelope: Mapping[str, Any]) -> str | None:
    """The session of a queued envelope, by its platform; ``None`` for envelopes of no known platform."""
    platform = PLATFORMS.get(str(envelope.get("platform")))
    return platform.session_key(envelope) if platform is not None else None  # type: ignore[arg-type]


def followup(envelope: Mapping[str, Any], *, settings: FollowUpSettings) -> FollowUp | None:
    """The follow-up a queued envelope is (by its platform), or ``None``: not one, unwanted
    (a bot's, our own), or of no known platform."""
    platform = PLATFORMS.get(str(envelope.get("platform")))
    return followups.classify(platform, envelope, settings) if platform is not None else None  # type: ignore[arg-type]
