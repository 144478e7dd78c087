"""GitHub's App manifest flow, the gateway's side of it, for ``gateway setup github``:
https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest

- ``GET /github/setup?state=S`` is the page whose button POSTs the manifest to GitHub's "new
  App" page, ``?state=S`` in the form's address as GitHub's docs show. ``S`` is made afresh for
  each run and printed only in the terminal: without it the page is not shown.
- ``GET /github/setup/redirect?code=C&state=S`` is where GitHub sends the browser after "Create
  GitHub App". The state must be this run's, unexpired and unused (it works once); the code is
  exchanged with ``POST /app-manifests/{code}/conversions`` (no authentication; the code works
  once, within an hour of the registration) for the App's id, private key and webhook secret,
  which go to ``save`` and never to a page, a log or the terminal.

GitHub redirects the *browser*, so the manifest's ``redirect_url`` is built from the address the
browser opened the page at: ``http://127.0.0.1:PORT`` on the machine that runs the command (no
tunnel needed), or the public URL when that is how the page was reached. The web side calls
GitHub with httpx (a timeout on every call), never PyGithub.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import __version__
from gateway.errors import SetupFailed
from gateway.platforms.github.manifest import github_form, github_manifest
from gateway.types import Clock

__all__ = [
    "REDIRECT_PATH",
    "SETUP_PATH",
    "CreatedApp",
    "ManifestFlow",
    "exchange_code",
    "web_url",
]

logger = logging.getLogger("gateway.github.setup")

SETUP_PATH = "/github/setup"
REDIRECT_PATH = "/github/setup/redirect"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# GitHub's codes are 20 bytes in hex; anything else is refused before it goes into a URL path.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page's address holds the state
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class CreatedApp:
    """The App GitHub created from the manifest, as the conversion answered (secrets not shown)."""

    id: int
    slug: str
    name: str
    owner: str
    html_url: str
    pem: str = field(repr=False)
    webhook_secret: str | None = field(repr=False)

    @property
    def install_url(self) -> str:
        """Where the App is installed on repositories (what Probot sends the browser to)."""
        return f"{self.html_url}/installations/new"


class ManifestFlow:
    """One registration: its one-time state, the manifest it offers and how it ended.

    ``save`` writes a created App's credentials and returns what it wrote, for the terminal and
    the page (no secret in it); it runs in a thread. ``finished`` is set once the flow ended,
    with ``report`` (saved) or ``error`` (a final refusal) set.
    """

    def __init__(
        self,
        public_url: str,
        *,
        name: str,
        org: str | None,
        api_url: str,
        save: Callable[[CreatedApp], str],
        ttl: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state = secrets.token_urlsafe(32)
        self.finished = asyncio.Event()
        self.report: str | None = None
        self.error: SetupFailed | None = None
        self._public_url, self._name, self._org = public_url, name, org
        self._api_url, self._web = api_url, web_url(api_url)
        self._save, self._clock = save, clock
        self._expires = clock() + ttl
        self._taken = False

    def routes(self) -> list[BaseRoute]:
        """The page and the redirect GitHub sends the browser to."""
        return [
            Route(SETUP_PATH, self.page, methods=["GET"]),
            Route(REDIRECT_PATH, self.redirect, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        """The form that starts the registration, for the holder of this run's state."""
        refusal = self._refusal(request.query_params.get("state", ""))
        if refusal is not None:
            return _page(404, "Nothing to register here", refusal)
        base = _browser_base(request, self._public_url)
        manifest = github_manifest(self._public_url, name=self._name, redirect_url=base + REDIRECT_PATH)
        note = (
            "The button opens GitHub, where you can change the name and create the App. GitHub then "
            f"sends this browser back to {base}, where gateway setup saves the App's credentials."
        )
        form = github_form(manifest, org=self._org, web=self._web, state=self.state, note=note)
        return HTMLResponse(form, headers=_PAGE_HEADERS)

    async def redirect(self, request: Request) -> Response:
        """GitHub's redirect: check the state (once), exchange the code, save the App."""
        state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
        refusal = self._refusal(state) or (None if _CODE.fullmatch(code) else "The address has no code.")
        if refusal is not None:
            logger.warning("refused a redirect: %s", refusal)
            return _page(400, "Not saved", f"{refusal} Nothing was saved.")
        self._taken = True  # before the first await: a second request with this state is refused
        try:
            app = await exchange_code(self._api_url, code)
            self.report = await run_in_threadpool(self._save, app)
        except SetupFailed as exc:
            return self._failed(exc)
        done = BackgroundTask(self.finished.set)  # after the page went out: then the command ends
        return _page(200, "Saved", self.report, link=app.install_url, background=done)

    def _refusal(self, state: str) -> str | None:
        """Why ``state`` does not open this run's flow, or None when it does."""
        if not state:
            return "The address has no state: open the link gateway setup printed."
        if not secrets.compare_digest(state.encode(), self.state.encode()):
            return "The state is not this run's: open the link gateway setup printed."
        if self._taken:
            return "This registration was finished already (its link works once)."
        if self._clock() >= self._expires:
            return "This registration expired: run gateway setup github again."
        return None

    def _failed(self, exc: SetupFailed) -> Response:
        logger.warning("%s", exc)
        if not exc.final:  # GitHub did not answer: the same code may still work
            self._taken = False
            return _page(502, "Not saved yet", f"{exc} Reload this page to try again.")
        self.error = exc
        return _page(400, "Not saved", str(exc), background=BackgroundTask(self.finished.set))


async def exchange_code(api_url: str, code: str) -> CreatedApp:
    """``POST /app-manifests/{code}/conversions``: the App ``code`` stands for, created.

    ``SetupFailed`` names GitHub's refusal (final: 404 for a used or expired code, 422), or a
    failure to reach it (not final: the code may still work).
    """
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"webhook-agent-gateway/{__version__}",
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(f"{api_url}/app-manifests/{code}/conversions", headers=headers)
    except httpx.HTTPError as exc:
        problem = f"GitHub did not answer at {api_url} ({type(exc).__name__})."
        raise SetupFailed(problem, final=False) from None
    if response.status_code == 201:
        return _created(_json(response))
    raise _refused(response)


def web_url(api_url: str) -> str:
    """GitHub's web address for its REST API's: ``https://github.com`` for ``api.github.com``,
    ``https://HOST`` for Enterprise Server's ``https://HOST/api/v3`` (and for the fake's URL)."""
    parts = urlsplit(api_url)
    host = parts.netloc[len("api.") :] if parts.netloc.startswith("api.") else parts.netloc
    return f"{parts.scheme}://{host}"


def _refused(response: httpx.Response) -> SetupFailed:
    status, message = response.status_code, str(_json(response).get("message") or "no message")
    if status == 404:
        return SetupFailed(
            "GitHub does not know this code: it was used already, or the App was created over an "
            "hour ago. Run gateway setup github again (delete the App GitHub made if you will not use it)."
        )
    if status == 422:
        return SetupFailed(f"GitHub refused the code (422: {message}). Run gateway setup github again.")
    final = not (status in (403, 429) or status >= 500)  # rate limited, or GitHub's own trouble
    return SetupFailed(f"GitHub answered {status} ({message}).", final=final)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _created(body: dict[str, Any]) -> CreatedApp:
    owner, app_id, pem = body.get("owner"), body.get("id"), body.get("pem")
    login = owner.get("login") if isinstance(owner, dict) else None
    texts = {name: body.get(name) for name in ("slug", "html_url")} | {"owner.login": login}
    missing = [name for name, value in texts.items() if not isinstance(value, str) or not value]
    if type(app_id) is not int:
        missing.append("id")
    if not isinstance(pem, str) or not _is_private_key(pem):
        missing.append("pem")
    if missing:
        raise SetupFailed(f"GitHub's answer has no usable {', '.join(missing)}.")
    secret = body.get("webhook_secret")
    return CreatedApp(
        id=int(app_id),  # type: ignore[arg-type]
        slug=str(texts["slug"]),
        name=str(body.get("name") or texts["slug"]),
        owner=str(login),
        html_url=str(texts["html_url"]).rstrip("/"),
        pem=str(pem),
        webhook_secret=secret if isinstance(secret, str) and secret else None,
    )


def _is_private_key(pem: str) -> bool:
    try:
        serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return True


def _browser_base(request: Request, public_url: str) -> str:
    """The address the browser reached this page at: the public URL when it came that way (a
    proxy that rewrites ``Host`` says so in ``X-Forwarded-Host``)."""
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if urlsplit(public_url).netloc in (request.headers.get("host", ""), forwarded):
        return public_url
    return str(request.base_url).rstrip("/")


def _page(
    status: int, title: str, text: str, *, link: str = "", background: BackgroundTask | None = None
) -> HTMLResponse:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip())
    if link:
        paragraphs += f'<p><a href="{html.escape(link, quote=True)}">Install the App</a></p>'
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1>{paragraphs}</body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS, background=background)
