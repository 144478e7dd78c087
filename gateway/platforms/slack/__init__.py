"""Slack on the web side: its signature scheme, delivery ids, handshakes, retries and app manifest.

``inbound`` reads Slack's requests (Events API, slash commands, interactivity); ``manifest``
writes the app registration. This module is the ``Platform`` the registry holds.
"""

from __future__ import annotations

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
    "sign",
    "signature_headers",
    "variables",
    "verify",
]

name = "slack"
job_path = "handlers.slack.handle"
secret_variable = SECRET_VARIABLE
max_body_variable = "SLACK_MAX_BODY"
default_max_body = 1024 * 1024
dev_secret = "dev-slack-signing-secret"  # noqa: S105 - public on purpose, dev only
signature_headers = SIGNATURE_HEADERS
variables = {
    SECRET_VARIABLE: "Slack app signing secret(s), comma-separated; turns the Slack route on",
    "SLACK_MAX_BODY": "largest Slack body accepted, in bytes (default 1 MiB)",
}
