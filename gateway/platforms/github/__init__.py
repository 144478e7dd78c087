"""GitHub on the web side: its signature scheme, delivery ids, the ``ping`` handshake and App manifest.

``inbound`` reads GitHub's webhook deliveries; ``manifest`` writes the GitHub App registration;
``setup`` (with ``registration``, the manifest flow's page and redirect) creates the App in one
step. This module is the ``Platform`` the registry holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: gateway.config imports the platforms
    from redis.asyncio import Redis
    from starlette.routing import BaseRoute

    from gateway.config import Settings

from gateway.platforms.github import manifest, setup
from gateway.platforms.github.inbound import (
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

name = "github"
job_path = "handlers.github.handle"
secret_variable = SECRET_VARIABLE
max_body_variable = "GITHUB_MAX_BODY"
default_max_body = 25 * 1024 * 1024  # GitHub's own cap on a delivery
dev_secret = "dev-github-webhook-secret"  # noqa: S105 - public on purpose, dev only
signature_headers = SIGNATURE_HEADERS
variables = {
    SECRET_VARIABLE: "GitHub webhook secret(s), comma-separated; turns the GitHub route on",
    "GITHUB_MAX_BODY": "largest GitHub body accepted, in bytes (default 25 MiB, GitHub's own cap)",
    "GITHUB_API_URL": "GitHub REST API base URL (default https://api.github.com; Enterprise: https://HOST/api/v3)",
}


def web_routes(settings: Settings, redis: Callable[[], Redis]) -> list[BaseRoute]:
    """None: everything Github sends comes to the webhook."""
    return []
