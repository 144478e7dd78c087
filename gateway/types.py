"""Aliases and Protocols shared across the ingress.

Everything here is a contract: the envelope is what workers receive, ``Platform`` is what
each module in ``gateway.platforms`` satisfies, ``Clock`` is what verifiers read the time from.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict

if TYPE_CHECKING:  # only for annotations: gateway.config imports this module
    from redis.asyncio import Redis
    from starlette.routing import BaseRoute

    from gateway.config import Settings

__all__ = [
    "Clock",
    "Delivery",
    "Envelope",
    "Handshake",
    "Headers",
    "Manifest",
    "ManifestOptions",
    "Platform",
    "Setup",
]

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
    body that the worker needs (installation id, retry number, thin/snapshot, ...). ``trace``,
    only while ``GATEWAY_TRACING`` is on, holds the ingress span's W3C ``traceparent`` (and
    ``tracestate``), the parent of the worker's run span.
    """

    platform: str
    delivery_id: str
    event: str
    action: str | None
    received_at: str
    payload: dict[str, Any]
    meta: dict[str, Any]
    trace: NotRequired[dict[str, str]]


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


@dataclass(frozen=True, slots=True)
class ManifestOptions:
    """What ``gateway manifest`` was asked for; each platform reads the options it has."""

    name: str
    command: str
    form: bool
    org: str | None
    socket: bool = False
    """Slack: Socket Mode, so the manifest names no request URL."""
    url: str = ""
    """The public URL given (``--url``, without a trailing slash), or ``""`` when none was."""


class Manifest(Protocol):
    """An app registration that points a platform at this gateway (``gateway manifest <platform>``)."""

    def check(self, options: ManifestOptions) -> None:
        """Raise ``UsageError`` for options the platform's manifest schema refuses."""

    def render(self, base: str, options: ManifestOptions) -> str:
        """The manifest (or the page that submits it), for stdout; ``base`` is the public URL."""

    def instructions(self, base: str, options: ManifestOptions) -> str:
        """How to register the app with it, for stderr."""


class Setup(Protocol):
    """A registration in one step (``gateway setup <platform>``): the app is created on the platform
    and its credentials are written to the settings file, never printed."""

    summary: str
    """One line for ``gateway setup --help``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's options to ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the registration; returns the exit code (0 done, 1 failed, 2 usage)."""


class Platform(Protocol):
    """Everything the ingress knows about one platform (each module in ``gateway.platforms`` is one).

    ``name`` is the registry key, route segment (``/webhooks/<name>``), job-id prefix and
    fixtures folder. The shared plumbing (app, queue, logs, replay, CLI) asks these members
    and never branches on the name.
    """

    name: str
    job_path: str
    """Dotted path of the worker's job function, e.g. ``"handlers.slack.handle"``."""
    secret_variable: str
    """The setting holding the signing secret(s); the platform is on when it is set."""
    max_body_variable: str
    """The setting holding the body cap, in bytes."""
    default_max_body: int
    dev_secret: str
    """The public signing secret ``gateway dev`` uses when ``secret_variable`` is unset."""
    signature_headers: frozenset[str]
    """Lower-case names of the platform's signature headers: never stored in a recording, made
    afresh by ``sign`` when one is replayed."""

    @property
    def variables(self) -> Mapping[str, str]:
        """The settings this platform's ingress reads, each with its one-line meaning."""

    @property
    def manifest(self) -> Manifest | None:
        """The app registration ``gateway manifest`` prints, when the platform has one."""

    @property
    def setup(self) -> Setup | None:
        """The registration in one step ``gateway setup`` runs, when the platform has one."""

    def web_routes(self, settings: Settings, redis: Callable[[], Redis]) -> list[BaseRoute]:
        """Routes of the platform's own beside its webhook (Slack's OAuth install flow), given
        the settings and the app's Redis client (``redis()``, valid while the app runs)."""

    def verify(self, body: bytes, headers: Headers, *, secrets: tuple[str, ...], now: float) -> None:
        """Raise ``InvalidSignature`` or ``StaleTimestamp`` unless the request is genuine."""

    def sign(self, secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
        """The signature headers the platform would send with ``body`` at ``timestamp`` (replay)."""

    def probe(self, body: bytes, headers: Headers) -> Handshake | None:
        """Answer to an unsigned health probe (Slack ``ssl_check``), checked before ``verify``."""

    def parse(self, body: bytes, headers: Headers) -> Delivery | Handshake:
        """Parse a verified body; raise ``MalformedPayload`` when ids or structure are missing."""

    def log_fields(self, headers: Headers) -> dict[str, Any]:
        """What the delivery's log line shows of the platform's own headers (retry number, reason)."""

    def renew_delivery_id(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[bytes, dict[str, str]] | None:
        """``body`` and ``headers`` with a fresh delivery id of the platform's shape (``replay
        --new-ids``); ``None`` for handshakes and bodies without one."""

    def plain_headers(self, *, event: str | None) -> dict[str, str]:
        """The headers the platform sends with a plain JSON payload (``replay --platform``);
        ``event`` names the event where the platform carries it in a header. Raises
        ``UsageError`` when it is needed and missing."""
