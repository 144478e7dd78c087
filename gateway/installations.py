"""Slack installations: one per workspace (or Enterprise Grid org) that installed the app.

Written by the OAuth redirect (``gateway.platforms.slack.oauth``), read by the workers to reply
with the installing workspace's bot token, refreshed by them when Slack rotates tokens, and
removed on ``app_uninstalled`` / ``tokens_revoked``. Each is a Redis hash under
``gateway.keys.slack_installation``; the tokens in it are encrypted with Fernet
(``cryptography``) under ``GATEWAY_ENCRYPTION_KEY``, which may list several keys: the first
encrypts, any of them decrypts (``MultiFernet``), so a key is rotated by putting the new one
first; an installation is encrypted under it when next written (reinstall, token refresh),
and the old key may go once none is left under it.

Lookup order (as slack-sdk's installation stores do): the team's own installation, then an
org-wide one of its enterprise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway import keys
from gateway.errors import ConfigError, MalformedPayload

__all__ = ["Cipher", "Installation", "from_oauth", "lookup_keys"]

_TOKEN_FIELDS = ("bot_token", "refresh_token")


class Cipher:
    """Encrypts with the first of ``GATEWAY_ENCRYPTION_KEY``'s keys, decrypts with any of them."""

    def __init__(self, encryption_keys: tuple[str, ...]) -> None:
        if not encryption_keys:
            raise ConfigError("GATEWAY_ENCRYPTION_KEY", "is not set: installations keep tokens encrypted")
        self._fernet = MultiFernet([Fernet(key) for key in encryption_keys])

    def encrypt(self, text: str) -> str:
        """``text`` encrypted (a Fernet token, URL-safe text)."""
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The text of ``token``; ``ConfigError`` when no configured key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "GATEWAY_ENCRYPTION_KEY", "none of its keys decrypts a stored installation (key removed?)"
            ) from None


@dataclass(frozen=True)
class Installation:
    """One installation of the Slack app: where, by whom, and the bot token to reply with."""

    team_id: str | None
    enterprise_id: str | None
    is_enterprise_install: bool
    bot_token: str = field(repr=False)
    bot_user_id: str | None = None
    app_id: str | None = None
    team_name: str | None = None
    scope: str = ""
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    """Unix time the bot token expires (token rotation); ``None`` when it never does."""
    installed_at: float = 0.0

    @property
    def key(self) -> str:
        """Its Redis key: per team, or per enterprise for an org-wide install."""
        team = None if self.is_enterprise_install else self.team_id
        return keys.slack_installation(self.enterprise_id, team)

    def expires_within(self, seconds: float, *, now: float) -> bool:
        """True when the token rotates and expires less than ``seconds`` from ``now``."""
        return self.expires_at is not None and self.expires_at - now < seconds

    def refreshed(self, response: Mapping[str, Any], *, now: float) -> Installation:
        """This installation with the new token pair of an ``oauth.v2.access`` refresh."""
        token, refresh, expires_in = (
            response.get(k) for k in ("access_token", "refresh_token", "expires_in")
        )
        if not isinstance(token, str) or not isinstance(refresh, str):
            raise MalformedPayload("oauth.v2.access refresh answered without access_token/refresh_token")
        expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else None
        return replace(self, bot_token=token, refresh_token=refresh, expires_at=expires_at)

    def to_fields(self, cipher: Cipher) -> dict[str, str]:
        """The Redis hash: tokens encrypted, the rest as text (empty for none)."""
        plain = {
            "team_id": self.team_id or "",
            "enterprise_id": self.enterprise_id or "",
            "is_enterprise_install": "1" if self.is_enterprise_install else "0",
            "bot_user_id": self.bot_user_id or "",
            "app_id": self.app_id or "",
            "team_name": self.team_name or "",
            "scope": self.scope,
            "expires_at": "" if self.expires_at is None else repr(self.expires_at),
            "installed_at": repr(self.installed_at),
        }
        secret = {name: getattr(self, name) for name in _TOKEN_FIELDS}
        return plain | {name: cipher.encrypt(value) if value else "" for name, value in secret.items()}

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str], cipher: Cipher) -> Installation:
        """An installation read back from its Redis hash."""
        text = {_text(k): _text(v) for k, v in fields.items()}
        tokens = {name: cipher.decrypt(text[name]) if text.get(name) else None for name in _TOKEN_FIELDS}
        return cls(
            team_id=text.get("team_id") or None,
            enterprise_id=text.get("enterprise_id") or None,
            is_enterprise_install=text.get("is_enterprise_install") == "1",
            bot_token=tokens["bot_token"] or "",
            refresh_token=tokens["refresh_token"],
            bot_user_id=text.get("bot_user_id") or None,
            app_id=text.get("app_id") or None,
            team_name=text.get("team_name") or None,
            scope=text.get("scope", ""),
            expires_at=float(text["expires_at"]) if text.get("expires_at") else None,
            installed_at=float(text.get("installed_at") or 0),
        )


def from_oauth(response: Mapping[str, Any], *, now: float | None = None) -> Installation:
    """The installation an ``oauth.v2.access`` answer describes (``MalformedPayload`` if it lacks one).

    https://api.slack.com/methods/oauth.v2.access: ``team`` is null for an org-wide install,
    ``enterprise`` null outside Enterprise Grid; with token rotation on, ``refresh_token`` and
    ``expires_in`` come with the token.
    """
    at = time.time() if now is None else now
    token = response.get("access_token")
    if response.get("token_type") != "bot" or not isinstance(token, str) or not token:
        raise MalformedPayload("oauth.v2.access answered without a bot token (bot scopes requested?)")
    team, enterprise = _object(response.get("team")), _object(response.get("enterprise"))
    installation = Installation(
        team_id=team.get("id"),
        enterprise_id=enterprise.get("id"),
        is_enterprise_install=bool(response.get("is_enterprise_install")),
        bot_token=token,
        bot_user_id=response.get("bot_user_id"),
        app_id=response.get("app_id"),
        team_name=team.get("name") or enterprise.get("name"),
        scope=str(response.get("scope") or ""),
        installed_at=at,
    )
    if response.get("refresh_token"):
        return installation.refreshed(response, now=at)
    if not installation.team_id and not installation.is_enterprise_install:
        raise MalformedPayload("oauth.v2.access answered without a team")
    return installation


def lookup_keys(enterprise_id: str | None, team_id: str | None) -> list[str]:
    """The keys to try for a delivery from ``team_id`` of ``enterprise_id``, most specific first."""
    found = [keys.slack_installation(enterprise_id, team_id)] if team_id else []
    if enterprise_id:
        found.append(keys.slack_installation(enterprise_id, None))
    return found


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
