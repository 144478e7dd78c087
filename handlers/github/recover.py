"""GitHub's failed webhook deliveries, redelivered: the GitHub App's hook, or named repository and
organization webhooks.

GitHub never retries a failed delivery; it lists every attempt and redelivers one on request
(https://docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-deliveries):

- GitHub App (App JWT): ``GET /app/hook/deliveries``, ``POST /app/hook/deliveries/{id}/attempts``;
- ``GITHUB_RECOVER_HOOKS`` with ``GITHUB_TOKEN``: ``/repos/{owner}/{repo}/hooks/{hook_id}/deliveries``
  and ``/orgs/{org}/hooks/{hook_id}/deliveries``, the same two calls.

Lists come newest first, ``per_page`` at most 100, the next page's ``cursor`` in the ``Link``
header. A delivery (its ``guid``, which is the ``X-GitHub-Delivery`` header) is missed when no
attempt of it on the list got a 2xx and it is not a ``ping``; the newest failed attempt is the
one redelivered. GitHub redelivers with the same ``X-GitHub-Delivery``, so the ingress's claim
drops a redelivery that races a late original; the shared sweep skips guids already claimed.
PyGithub has no App hook-delivery calls, so this talks to the REST API with httpx.

Rate limits (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api):
a 403 or 429 waits ``retry-after``, else until ``x-ratelimit-reset`` when
``x-ratelimit-remaining`` is 0, else a minute (a secondary limit); a wait longer than
``MAX_RATE_WAIT`` stops the source and the next sweep resumes there. 5xx and network errors are
retried under ``clients.CALL_POLICY``. GitHub keeps deliveries for 3 days (``RETENTION``), GitHub
Enterprise Server for 7 (any ``GITHUB_API_URL`` but github.com's).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from gateway import __version__
from handlers.clients import CALL_POLICY
from handlers.config import GitHubSettings, WebhookRef
from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.github.auth import GitHubAppAuth
from handlers.recover import Missed, Page, Source
from handlers.retry import retry_after_header
from handlers.services import Services

__all__ = [
    "API_VERSION",
    "ENTERPRISE_RETENTION",
    "MAX_RATE_WAIT",
    "PER_PAGE",
    "RETENTION",
    "SWEEP",
    "GitHubSweep",
    "rate_limit_wait",
]

API_VERSION = "2022-11-28"
PER_PAGE = 100
RETENTION = 3 * 24 * 3600.0
ENTERPRISE_RETENTION = 7 * 24 * 3600.0
_GITHUB_COM = "https://api.github.com"
MAX_RATE_WAIT = 60.0
_SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute" when no header says how long
_MAX_RATE_WAITS = 3
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class GitHubSweep:
    """The GitHub side of ``gateway recover`` and the workers' sweeps (``WorkerPlatform.recover``)."""

    platform = "github"

    def unavailable(self, services: Services) -> str | None:
        """Why GitHub cannot be swept (naming what to set), or ``None``."""
        settings = services.settings
        if "github" not in settings.base.enabled_platforms:
            return "GitHub is off: GITHUB_WEBHOOK_SECRET is not set"
        gh = settings.github
        if gh.is_app or (gh.token and gh.recover_hooks):
            return None
        if gh.token:
            return "GITHUB_RECOVER_HOOKS names no webhook to sweep (owner/repo:HOOK_ID or org:HOOK_ID)"
        return "neither a GitHub App (GITHUB_APP_ID) nor GITHUB_TOKEN with GITHUB_RECOVER_HOOKS is set"

    @asynccontextmanager
    async def open(self, services: Services) -> AsyncIterator[list[Source]]:
        """The App's hook, or each named webhook, over one HTTP client."""
        gh = services.settings.github
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"webhook-agent-gateway/{__version__}",
        }
        async with httpx.AsyncClient(base_url=gh.api_url, timeout=HTTP_TIMEOUT, headers=headers) as http:
            yield _sources(gh, http)


SWEEP = GitHubSweep()


def _sources(gh: GitHubSettings, http: httpx.AsyncClient) -> list[Source]:
    kept = RETENTION if gh.api_url == _GITHUB_COM else ENTERPRISE_RETENTION
    if gh.is_app:
        assert gh.app_id is not None and gh.app_private_key is not None
        app = GitHubAppAuth(gh.app_id, gh.app_private_key, gh.api_url)
        return [_Deliveries("app", "/app/hook/deliveries", http, app.app_jwt, retention=kept)]
    token = str(gh.token)
    return [
        _Deliveries(str(ref), _hook_path(ref), http, lambda: token, retention=kept)
        for ref in gh.recover_hooks
    ]


def _hook_path(ref: WebhookRef) -> str:
    owner = "repos" if ref.is_repository else "orgs"
    return f"/{owner}/{ref.target}/hooks/{ref.hook_id}/deliveries"


@dataclass
class _Deliveries:
    """One hook's delivery list (a ``recover.Source``)."""

    name: str
    path: str
    http: httpx.AsyncClient
    credential: Callable[[], str]
    retention: float = RETENTION
    max_wait: float = MAX_RATE_WAIT
    _settled: set[str] = field(default_factory=set)  # guids decided in this sweep

    async def page(self, cursor: str | None, floor: float) -> Page:
        """One page of attempts, newest first, with the guids on it that never got a 2xx."""
        params: dict[str, Any] = {"per_page": PER_PAGE, **({"cursor": cursor} if cursor else {})}
        response = await self._send("GET", self.path, params=params)
        items = response.json()
        if not isinstance(items, list):
            raise PermanentError(f"GitHub {self.path}: expected a list of deliveries")
        oldest = min((_delivered_at(item) for item in items), default=None)
        return Page(self._missed(items, floor), oldest, _next_cursor(response))

    async def bring_back(self, missed: Missed) -> bool:
        """Ask GitHub to redeliver the attempt (202 Accepted; the delivery itself comes later)."""
        await self._send("POST", f"{self.path}/{missed.ref}/attempts")
        return True

    def _missed(self, items: list[dict[str, Any]], floor: float) -> list[Missed]:
        found = []
        for item in items:  # newest first: a guid's latest attempt is the first one seen
            guid = str(item.get("guid") or "")
            if not guid or guid in self._settled or _delivered_at(item) < floor:
                continue
            self._settled.add(guid)
            if not _succeeded(item) and item.get("event") != "ping":
                found.append(
                    Missed(guid, str(item.get("event") or ""), _delivered_at(item), ref=int(item["id"]))
                )
        return found

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One API call: rate limits waited out (up to ``max_wait``), 5xx and network errors retried."""
        retries = rate_waits = 0
        while True:
            error = await self._attempt(method, path, **options)
            if isinstance(error, httpx.Response):
                return error
            if isinstance(error, float):  # a rate limit short enough to wait for
                rate_waits += 1
                if rate_waits > _MAX_RATE_WAITS:
                    raise TransientError(f"GitHub {path}: still rate limited after {_MAX_RATE_WAITS} waits")
                await asyncio.sleep(error)
                continue
            decision = CALL_POLICY.decide(error, retries_so_far=retries)
            if not decision.retry:
                raise error
            retries += 1
            await asyncio.sleep(decision.delay)

    async def _attempt(self, method: str, path: str, **options: Any) -> httpx.Response | float | HandlerError:
        """The answer, the seconds a rate limit asks to wait, or an error to retry (raised when it
        is permanent or a rate limit too long to wait for)."""
        headers = {"Authorization": f"Bearer {self.credential()}"}
        try:
            response = await self.http.request(method, path, headers=headers, **options)
        except httpx.TransportError as exc:
            return TransientError(f"GitHub {method} {path}: {type(exc).__name__}")
        wait = rate_limit_wait(response)
        if wait is not None and wait > self.max_wait:  # stop now; calling on while limited risks a ban
            reason = f"GitHub rate limit on {path} for {wait:.0f}s more: {_message(response)}"
            raise TransientError(reason, retry_after=wait)
        if wait is not None:
            return wait
        if response.status_code >= 500:
            return TransientError(
                f"GitHub {response.status_code} on {path}", retry_after=retry_after_header(response.headers)
            )
        if response.status_code >= 400:
            raise PermanentError(f"GitHub {response.status_code} on {method} {path}: {_message(response)}")
        return response


def rate_limit_wait(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Seconds GitHub asks us to wait before the next call, or ``None`` when this is no rate limit.

    A 403 without rate-limit headers or message is a permission problem, not a limit.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    hint = retry_after_header(headers)
    if hint is not None:
        return hint
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - (time.time() if now is None else now)) + 1.0
    if response.status_code == 429 or "rate limit" in _message(response).lower():
        return _SECONDARY_WAIT
    return None


def _succeeded(item: dict[str, Any]) -> bool:
    status = item.get("status_code")
    return isinstance(status, int) and 200 <= status < 300


def _delivered_at(item: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(item.get("delivered_at"))).timestamp()
    except ValueError:
        return 0.0  # unreadable: treated as older than any floor


def _next_cursor(response: httpx.Response) -> str | None:
    url = response.links.get("next", {}).get("url")
    cursors = parse_qs(urlsplit(url).query).get("cursor") if url else None
    return cursors[0] if cursors else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else ""
