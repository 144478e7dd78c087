"""The console's routes: sign in and out, the overview, one run, and the two static assets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway import runs
from gateway.auth import COOKIE, ApiAuth
from gateway.console import pages
from gateway.deliveries import read_deliveries
from gateway.errors import Forbidden, NotAuthorized, NotFound

__all__ = ["SECURITY_HEADERS", "Console"]

_ASSETS = Path(__file__).with_name("assets")
_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # "same-origin", not "no-referrer": with no-referrer browsers send "Origin: null" on form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Console:
    """The console's endpoints; off (404) when the API is."""

    auth: ApiAuth
    connection: redis.Redis

    def routes(self) -> list[Route]:
        """``/console`` and its sub-routes."""
        return [
            Route("/console", self.overview, methods=["GET"]),
            Route("/console/login", self.login, methods=["POST"]),
            Route("/console/logout", self.logout, methods=["POST"]),
            Route("/console/runs/{run_id}", self.run_page, methods=["GET"]),
            Route("/console/{asset:str}", self.asset, methods=["GET"]),
        ]

    async def overview(self, request: Request) -> Response:
        """The deliveries and runs lists, or the sign-in form."""
        self._on()
        if not self._signed_in(request):
            return _page(pages.sign_in())
        latest = await asyncio.to_thread(runs.list_runs, self.connection, limit=50)
        deliveries = await asyncio.to_thread(read_deliveries, self.connection, limit=50)
        return _page(pages.overview(latest.runs, deliveries))

    async def run_page(self, request: Request) -> Response:
        """One run: its record, its live events and the reply as the platform shows it."""
        self._on()
        if not self._signed_in(request):
            return RedirectResponse("/console", status_code=303)
        record = await asyncio.to_thread(runs.get_run, self.connection, request.path_params["run_id"])
        if record is None:
            raise NotFound(f"no run {request.path_params['run_id']}")
        return _page(pages.run(runs.public_record(record)))

    async def login(self, request: Request) -> Response:
        """Check the token, set the session cookie, go to the overview."""
        self._on()
        self._same_origin(request)
        token = dict(parse_qsl((await request.body()).decode("utf-8", "replace"))).get("token", "")
        session = self.auth.session_for(token.strip())
        if session is None:
            return _page(pages.sign_in(error="That is not one of GATEWAY_API_TOKEN's values."), status=401)
        response = RedirectResponse("/console", status_code=303)
        response.set_cookie(
            COOKIE, session, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
        return response

    async def logout(self, request: Request) -> Response:
        """Forget the session cookie."""
        self._on()
        self._same_origin(request)
        response = RedirectResponse("/console", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def asset(self, request: Request) -> Response:
        """``app.js`` and ``app.css``, the console's only assets."""
        self._on()
        name = request.path_params["asset"]
        if name not in _TYPES:
            raise NotFound(f"no console asset {name}")
        return Response((_ASSETS / name).read_bytes(), media_type=_TYPES[name], headers=SECURITY_HEADERS)

    def _on(self) -> None:
        if not self.auth.enabled:
            raise NotFound("the console is off: set GATEWAY_API_TOKEN to turn it on")

    def _signed_in(self, request: Request) -> bool:
        try:
            self.auth.check(request)
        except NotAuthorized:
            return False
        return True

    def _same_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise Forbidden("sign-in must come from the console's own origin")


def _page(html: str, *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
