"""Slack on the web side: its signature scheme, delivery ids, handshakes, retries and app manifest.

``inbound`` reads Slack's requests (Events API, slash commands, interactivity, and the same over
Socket Mode); ``manifest`` writes the app registration; ``oauth`` installs it in more
workspaces. This module is the ``Platform`` the registry holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.platforms.slack import manifest
from gateway.platforms.slack.inbound import (
    SECRET_VARIABLE,
    SIGNATURE_HEADERS,
    log_fields,
    parse,
    plain_headers,
    probe,
    renew_delivery_id,
    sign,
    verify,
)

__all__ = [
    "default_max_body",
    "dev_secret",
    "job_path",
    "log_fields",
    "manifest",
    "max_body_variable",
    "name",
    "parse",
    "plain_headers",
    "probe",
    "renew_delivery_id",
    "secret_variable",
    "setup",
    "sign",
    "signature_headers",
    "variables",
    "verify",
    "web_routes",
]

if TYPE_CHECKING:  # annotations only: gateway.config imports the platforms
    from redis.asyncio import Redis
    from starlette.routing import BaseRoute

    from gateway.config import Settings

name = "slack"
job_path = "handlers.slack.handle"
secret_variable = SECRET_VARIABLE
max_body_variable = "SLACK_MAX_BODY"
default_max_body = 1024 * 1024
dev_secret = "dev-slack-signing-secret"  # noqa: S105 - public on purpose, dev only
signature_headers = SIGNATURE_HEADERS
setup = None  # the app is made from its manifest; many workspaces install it through oauth
variables = {
    SECRET_VARIABLE: "Slack app signing secret(s), comma-separated; turns the Slack route on",
    "SLACK_MAX_BODY": "largest Slack body accepted, in bytes (default 1 MiB)",
    "SLACK_API_URL": "Slack Web API base URL (default https://slack.com/api/)",
    "SLACK_CLIENT_ID": "Slack app client id: turns on /slack/install (many workspaces, with the secret)",
    "SLACK_CLIENT_SECRET": "Slack app client secret, for the OAuth install flow and token rotation",
}


def web_routes(settings: Settings, redis: Callable[[], Redis]) -> list[BaseRoute]:
    """``/slack/install`` and ``/slack/oauth_redirect`` when the app's client id and secret are set."""
    from gateway.platforms.slack import oauth  # it reads settings, and gateway.config imports us

    return oauth.routes(settings, redis)
