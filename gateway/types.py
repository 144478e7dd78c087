"""Aliases and Protocols shared across the ingress.

Everything here is a contract: the envelope is what workers receive, ``Platform`` is what
each module in ``gateway.platforms`` satisfies, ``Clock`` is what verifiers read the time from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

Clock = Callable[[], float]
"""Returns the current Unix time in seconds; injected so tests can pin the time."""

Headers = Mapping[str, str]
"""Request headers with lower-case names."""


class Envelope(TypedDict):
    """The one argument of every queued job, JSON-safe (queued with RQ's ``JSONSerializer``).

    ``delivery_id`` is the platform's own id (Slack ``event_id`` or ``trigger_id``, GitHub
    ``X-GitHub-Delivery``, Stripe ``event.id``); ``event`` and ``action`` name what happened
    (``action`` is ``None`` where the platform has none); ``received_at`` is an ISO-8601 UTC
    timestamp; ``payload`` is the parsed body; ``meta`` holds what the platform sent besides the
    body that the worker needs (installation id, retry number, thin/snapshot, ...).
    """

    platform: str
    delivery_id: str
    event: str
    action: str | None
    received_at: str
    payload: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a platform module extracts from a verified body that is to be queued."""

    delivery_id: str
    event: str
    action: str | None
    payload: dict[str, Any]
    meta: dict[str, Any]
    ack: dict[str, Any] | None = None
    """JSON body of the acknowledgement, where the platform shows it (Slack slash commands);
    ``None`` answers with an empty body."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """A request the platform expects answered inline, with nothing queued (Slack
    ``url_verification``, GitHub ``ping``)."""

    event: str
    answer: dict[str, Any]


class Platform(Protocol):
    """What the app needs from each platform module (``gateway.platforms.<name>``)."""

    name: str
    job_path: str
    """Dotted path of the worker's job function, e.g. ``"handlers.slack.handle"``."""

    def verify(self, body: bytes, headers: Headers, *, secrets: tuple[str, ...], now: float) -> None:
        """Raise ``InvalidSignature`` or ``StaleTimestamp`` unless the request is genuine."""

    def probe(self, body: bytes, headers: Headers) -> Handshake | None:
        """Answer to an unsigned health probe (Slack ``ssl_check``), checked before ``verify``."""

    def parse(self, body: bytes, headers: Headers) -> Delivery | Handshake:
        """Parse a verified body; raise ``MalformedPayload`` when ids or structure are missing."""
