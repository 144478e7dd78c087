"""Who may use the runs API and the console (holders of a ``GATEWAY_API_TOKEN`` value) and metrics.

API callers send ``Authorization: Bearer <token>``. The console signs in once with the token and
then carries an HttpOnly, SameSite=Strict cookie holding a value derived from it (HMAC of a fixed
label keyed with the token), never the token itself; removing a token from the setting ends its
sessions too. Cookie-authenticated writes must come from the console's own origin (``Origin``),
so another site cannot make a signed-in browser cancel or retry runs. Tokens are compared in
constant time, and a token in the query string is refused: URLs end up in logs and histories.

Metrics (``GATEWAY_METRICS``, the web app's ``/metrics`` and the worker's metrics port alike):
``local`` (the default) answers only connections from the loopback interface that no proxy
forwarded, ``token`` asks for ``Authorization: Bearer`` with one of ``GATEWAY_METRICS_TOKEN``'s
values, ``open`` answers anyone (a private network), ``off`` answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import HTTPConnection

from gateway.errors import Forbidden, GatewayError, NotAuthorized, NotFound

__all__ = ["COOKIE", "METRICS_MODES", "ApiAuth", "MetricsAccess", "matches_any"]

COOKIE = "gateway_console"
METRICS_MODES = ("local", "token", "open", "off")
# Headers a reverse proxy adds: a request carrying one came from elsewhere, whatever its peer.
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")
_SESSION_LABEL = b"gateway console session v1"
# Query parameters that carry credentials in other APIs; refused whatever their value.
_CREDENTIAL_PARAMS = frozenset(
    {"token", "access_token", "api_token", "api_key", "apikey", "key", "auth", "bearer"}
)


class ApiAuth:
    """Checks a request against the configured tokens (``GATEWAY_API_TOKEN``, several for rotation)."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tokens
        self._sessions = tuple(_session_value(token) for token in tokens)

    @property
    def enabled(self) -> bool:
        """The API and console are on only when a token is configured."""
        return bool(self._tokens)

    def check(self, request: HTTPConnection, *, writes: bool = False) -> None:
        """Raise ``NotAuthorized`` or ``Forbidden`` unless ``request`` may go on."""
        self._refuse_query_tokens(request)
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not matches_any(token.strip(), self._tokens):
                raise NotAuthorized("the bearer token is not one of GATEWAY_API_TOKEN's values")
            return
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not matches_any(cookie, self._sessions):
            raise NotAuthorized(
                "send Authorization: Bearer <token> (GATEWAY_API_TOKEN), or sign in to /console"
            )
        if writes and not _same_origin(request):
            raise Forbidden("a console action must come from the console's own origin")

    def session_for(self, token: str) -> str | None:
        """The console cookie's value for ``token``, or ``None`` when it is not a configured token."""
        return _session_value(token) if matches_any(token, self._tokens) else None

    def _refuse_query_tokens(self, request: HTTPConnection) -> None:
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        if any(name.lower() in _CREDENTIAL_PARAMS or matches_any(v, self._tokens) for name, v in pairs):
            raise NotAuthorized("tokens are not accepted in the URL: send Authorization: Bearer <token>")


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read metrics (``GATEWAY_METRICS``, ``GATEWAY_METRICS_TOKEN``)."""

    mode: str = "local"
    tokens: tuple[str, ...] = field(default=(), repr=False)

    def refusal(self, peer: str | None, headers: Mapping[str, str]) -> GatewayError | None:
        """Why a request from ``peer`` with ``headers`` (lower-case names) may not read; ``None``: it may."""
        if self.mode == "off":
            return NotFound("metrics are off (GATEWAY_METRICS=off)")
        if self.mode == "open":
            return None
        if self.mode == "token":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and matches_any(token.strip(), self.tokens):
                return None
            return NotAuthorized("send Authorization: Bearer <one of GATEWAY_METRICS_TOKEN's values>")
        if _is_loopback(peer) and not any(name in headers for name in _FORWARDED):
            return None
        # Not found rather than forbidden: from outside, there is nothing to see here.
        return NotFound("metrics answer only on 127.0.0.1 (set GATEWAY_METRICS=token to read them remotely)")


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def matches_any(candidate: str, accepted: tuple[str, ...]) -> bool:
    """True when ``candidate`` is one of ``accepted``; every pair is compared, in constant time."""
    found = False
    for value in accepted:
        found |= hmac.compare_digest(candidate.encode(), value.encode())
    return found and bool(candidate)


def _same_origin(request: HTTPConnection) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")
