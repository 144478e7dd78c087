"""Who may use the runs API and the console: holders of a ``GATEWAY_API_TOKEN`` value.

API callers send ``Authorization: Bearer <token>``. The console signs in once with the token and
then carries an HttpOnly, SameSite=Strict cookie holding a value derived from it (HMAC of a fixed
label keyed with the token), never the token itself; removing a token from the setting ends its
sessions too. Cookie-authenticated writes must come from the console's own origin (``Origin``),
so another site cannot make a signed-in browser cancel or retry runs. Tokens are compared in
constant time, and a token in the query string is refused: URLs end up in logs and histories.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import HTTPConnection

from gateway.errors import Forbidden, NotAuthorized

__all__ = ["COOKIE", "ApiAuth"]

COOKIE = "gateway_console"
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
            if scheme.lower() != "bearer" or not _matches(token.strip(), self._tokens):
                raise NotAuthorized("the bearer token is not one of GATEWAY_API_TOKEN's values")
            return
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not _matches(cookie, self._sessions):
            raise NotAuthorized(
                "send Authorization: Bearer <token> (GATEWAY_API_TOKEN), or sign in to /console"
            )
        if writes and not _same_origin(request):
            raise Forbidden("a console action must come from the console's own origin")

    def session_for(self, token: str) -> str | None:
        """The console cookie's value for ``token``, or ``None`` when it is not a configured token."""
        return _session_value(token) if _matches(token, self._tokens) else None

    def _refuse_query_tokens(self, request: HTTPConnection) -> None:
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        if any(name.lower() in _CREDENTIAL_PARAMS or _matches(value, self._tokens) for name, value in pairs):
            raise NotAuthorized("tokens are not accepted in the URL: send Authorization: Bearer <token>")


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def _matches(candidate: str, accepted: tuple[str, ...]) -> bool:
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
