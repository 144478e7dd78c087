"""Slack's OAuth v2 install flow, so one gateway serves many workspaces (on when ``SLACK_CLIENT_ID``
and ``SLACK_CLIENT_SECRET`` are set): https://api.slack.com/authentication/oauth-v2

- ``GET /slack/install`` makes a one-time ``state`` (kept in Redis ten minutes and in an HttpOnly
  cookie of this browser) and sends the browser to Slack's authorize page;
- ``GET /slack/oauth_redirect?code=...&state=...`` is where Slack sends it back: the state must be
  the cookie's and still in Redis (taken once), then the code is exchanged with
  ``oauth.v2.access`` (client id and secret by HTTP Basic auth, as slack-sdk sends them) and the
  installation saved, its tokens encrypted (``gateway.installations``).

No ``redirect_uri`` is sent: Slack then uses the app's only redirect URL (the manifest's
``<PUBLIC_URL>/slack/oauth_redirect``) and requires none at the exchange. The web side calls
Slack with httpx (a timeout on every call), never slack-sdk.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import keys
from gateway.config import Settings
from gateway.errors import MalformedPayload
from gateway.installations import Cipher, from_oauth
from gateway.platforms.slack.manifest import OAUTH_REDIRECT_PATH, SLACK_BOT_SCOPES

__all__ = ["INSTALL_PATH", "STATE_TTL", "OAuthRoutes", "routes"]

logger = logging.getLogger("gateway.slack.oauth")

INSTALL_PATH = "/slack/install"
STATE_TTL = 600
STATE_COOKIE = "slack_oauth_state"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_API_URL = "https://slack.com/api/"


def routes(settings: Settings, redis: Callable[[], Redis]) -> list[BaseRoute]:
    """The install routes when the app's client id and secret are set, else none."""
    client_id = settings.option("slack", "SLACK_CLIENT_ID")
    client_secret = settings.option("slack", "SLACK_CLIENT_SECRET")
    if not (client_id and client_secret):
        return []
    api_url = settings.option("slack", "SLACK_API_URL") or DEFAULT_API_URL
    flow = OAuthRoutes(client_id, client_secret, api_url, Cipher(settings.encryption_keys), redis)
    return [
        Route(INSTALL_PATH, flow.install, methods=["GET"]),
        Route(OAUTH_REDIRECT_PATH, flow.redirect, methods=["GET"]),
    ]


class OAuthRoutes:
    """The two endpoints, holding the app's credentials, Slack's API URL and the cipher."""

    def __init__(
        self, client_id: str, client_secret: str, api_url: str, cipher: Cipher, redis: Callable[[], Redis]
    ) -> None:
        self._client_id, self._client_secret = client_id, client_secret
        self._api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._cipher, self._redis = cipher, redis

    @property
    def authorize_url(self) -> str:
        """Slack's authorize page, on the host of the API URL (``https://slack.com/oauth/v2/authorize``)."""
        api = urlsplit(self._api_url)
        return f"{api.scheme}://{api.netloc}/oauth/v2/authorize"

    async def install(self, request: Request) -> Response:
        """Start an install: a fresh state in Redis and in a cookie, then off to Slack."""
        state = secrets.token_urlsafe(24)
        try:
            await self._redis().set(keys.slack_oauth_state(state), "1", ex=STATE_TTL)
        except (RedisError, OSError):
            return _page(503, "Cannot start the install now", "Redis does not answer; try again shortly.")
        query = urlencode({"client_id": self._client_id, "scope": ",".join(SLACK_BOT_SCOPES), "state": state})
        response = RedirectResponse(f"{self.authorize_url}?{query}", status_code=302)
        response.set_cookie(
            STATE_COOKIE,
            state,
            max_age=STATE_TTL,
            path="/slack",
            httponly=True,
            samesite="lax",  # the way back from Slack is a top-level GET from another site
            secure=request.url.scheme == "https",
        )
        return response

    async def redirect(self, request: Request) -> Response:
        """Finish an install: check the state, exchange the code, save the installation."""
        query = request.query_params
        if query.get("error"):
            return _page(
                400, "Not installed", f"Slack said: {query['error']}. Start again at {INSTALL_PATH}."
            )
        state, code = query.get("state", ""), query.get("code", "")
        if not (state and code and await self._take_state(state, request.cookies.get(STATE_COOKIE))):
            why = "It expired, was used already, or was started in another browser."
            return _page(400, "This install link is not valid", f"{why} Start again at {INSTALL_PATH}.")
        try:
            installation = from_oauth(await self._exchange(code), now=time.time())
            await self._save(installation.key, installation.to_fields(self._cipher))
        except (httpx.HTTPError, RedisError, OSError) as exc:
            logger.warning("slack install failed", extra={"fields": {"error": type(exc).__name__}})
            return _page(502, "Not installed", "Slack or Redis could not be reached; start again shortly.")
        except MalformedPayload as exc:
            return _page(400, "Not installed", str(exc))
        logger.info(
            "slack app installed",
            extra={"fields": {"team_id": installation.team_id, "enterprise_id": installation.enterprise_id}},
        )
        where = installation.team_name or installation.team_id or installation.enterprise_id
        done = _page(200, "Installed", f"The app is installed in {where}. Mention it in a channel to try it.")
        done.delete_cookie(STATE_COOKIE, path="/slack")
        return done

    async def _take_state(self, state: str, cookie: str | None) -> bool:
        """True once for a state this browser started (its cookie) that Redis still holds."""
        if cookie is None or not secrets.compare_digest(cookie, state):
            return False
        try:
            return bool(await self._redis().getdel(keys.slack_oauth_state(state)))
        except (RedisError, OSError):
            return False

    async def _exchange(self, code: str) -> dict[str, object]:
        """``oauth.v2.access`` for ``code``; ``MalformedPayload`` naming Slack's refusal."""
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(
                self._api_url + "oauth.v2.access",
                data={"code": code},
                auth=(self._client_id, self._client_secret),
            )
        try:
            body = response.json()
        except ValueError:
            raise httpx.HTTPError(f"oauth.v2.access answered {response.status_code}, not JSON") from None
        if not isinstance(body, dict) or not body.get("ok"):
            error = body.get("error") if isinstance(body, dict) else response.status_code
            raise MalformedPayload(f"Slack refused the code ({error}); start again at {INSTALL_PATH}")
        return body

    async def _save(self, key: str, fields: dict[str, str]) -> None:
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.delete(key)  # a reinstall replaces every field, including a refresh token now gone
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            await pipe.execute()


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
