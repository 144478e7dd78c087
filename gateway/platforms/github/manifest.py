"""GitHub's App manifest (JSON) for ``gateway manifest github``: the permissions and events the
handlers use, the App's webhook at ``<PUBLIC_URL>/webhooks/github``; or, with ``--form``, an HTML
page that starts GitHub's manifest flow.
https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlencode

from gateway.errors import UsageError
from gateway.types import ManifestOptions

__all__ = [
    "GITHUB_EVENTS",
    "GITHUB_PERMISSIONS",
    "GITHUB_WEB",
    "check",
    "check_org",
    "github_form",
    "github_manifest",
    "instructions",
    "new_app_url",
    "render",
]

GITHUB_WEB = "https://github.com"
# A GitHub login: letters, digits and single hyphens, at most 39 characters.
_LOGIN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}")

GITHUB_EVENTS = (
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "check_suite",
)
GITHUB_PERMISSIONS = {
    "issues": "write",  # issues, issue_comment; comment on issues
    "pull_requests": "write",  # pull_request*, comments on pull requests
    "checks": "write",  # check_run, check_suite; report results as checks
    "contents": "read",  # read files and diffs the agent looks at
    "metadata": "read",  # mandatory for every GitHub App
}


def check(options: ManifestOptions) -> None:
    """GitHub posts every webhook to a URL: ``--url`` is required, ``--socket`` is Slack's."""
    if not options.url:
        raise UsageError("--url is required: GitHub delivers webhooks to PUBLIC_URL/webhooks/github")
    if options.socket:
        raise UsageError("--socket is Slack's (GitHub has no socket mode)")
    check_org(options.org)


def check_org(org: str | None) -> None:
    """``UsageError`` unless ``org`` is None or could be a GitHub organization's login."""
    if org is not None and not _LOGIN.fullmatch(org):
        raise UsageError(f"--org must be an organization's login (letters, digits, single -), got {org!r}")


def render(base: str, options: ManifestOptions) -> str:
    """The manifest as JSON, or with ``options.form`` the page that POSTs it to GitHub."""
    manifest = github_manifest(base, name=options.name)
    if options.form:
        return github_form(manifest, org=options.org)
    return json.dumps(manifest, indent=2) + "\n"


def instructions(base: str, options: ManifestOptions) -> str:
    """The registration steps (manifest flow, or a plain webhook), for stderr."""
    return _instructions(base, org=options.org)


def github_manifest(base: str, *, name: str, redirect_url: str | None = None) -> dict[str, Any]:
    """A GitHub App manifest: the permissions and events the handlers use, webhooks to this gateway.

    ``redirect_url`` is where GitHub sends the browser with the one-time ``code`` (``gateway setup
    github`` receives it there); by default the gateway's ``/health``, a page that exists, so the
    browser shows an answer while the code sits in its address bar.
    """
    return {
        "name": name,
        "url": base,
        "description": "Runs an agent on issues, pull requests and checks, and replies.",
        "hook_attributes": {"url": f"{base}/webhooks/github", "active": True},
        "redirect_url": redirect_url or f"{base}/health",
        "public": False,
        "default_permissions": dict(GITHUB_PERMISSIONS),
        "default_events": list(GITHUB_EVENTS),
    }


def new_app_url(*, org: str | None, web: str = GITHUB_WEB) -> str:
    """GitHub's "register a new App" page the manifest is POSTed to, for an account or ``org``."""
    return f"{web}/organizations/{org}/settings/apps/new" if org else f"{web}/settings/apps/new"


def github_form(
    manifest: dict[str, Any],
    *,
    org: str | None,
    web: str = GITHUB_WEB,
    state: str | None = None,
    note: str = "",
) -> str:
    """An HTML page whose button POSTs ``manifest`` to GitHub, as the manifest flow requires;
    ``state`` goes in the query string, where GitHub takes it and hands it back on the redirect."""
    target = new_app_url(org=org, web=web) + (f"?{urlencode({'state': state})}" if state else "")
    value = html.escape(json.dumps(manifest), quote=True)
    paragraph = f"<p>{html.escape(note)}</p>\n" if note else ""
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Register the GitHub App</title></head>\n'
        f"<body><h1>Register the GitHub App</h1>\n{paragraph}"
        f'<form action="{html.escape(target, quote=True)}" method="post">\n'
        f'<input type="hidden" name="manifest" value="{value}">\n'
        '<button type="submit">Create the GitHub App on GitHub</button>\n</form></body></html>\n'
    )


def _instructions(base: str, *, org: str | None) -> str:
    flag = f" --org {org}" if org else ""
    return f"""
GitHub App (manifest flow, the app's webhook is {base}/webhooks/github):
  In one step: gateway setup github --url {base}{flag}
  It shows the form that creates the App, takes GitHub's answer and writes GITHUB_APP_ID,
  GITHUB_APP_PRIVATE_KEY_PATH (the key, mode 0600) and GITHUB_WEBHOOK_SECRET to .env.
  By hand instead:
  1. gateway manifest github --url {base}{flag} --form > register.html
     Open register.html in a browser and press the button: it POSTs the manifest to {new_app_url(org=org)}.
  2. Name the app and create it. GitHub sends the browser to {base}/health?code=CODE;
     copy CODE from the address bar (it works once, for one hour).
  3. curl -X POST https://api.github.com/app-manifests/CODE/conversions
     returns id, pem and webhook_secret: set GITHUB_APP_ID=<id>, save pem to a file and set
     GITHUB_APP_PRIVATE_KEY_PATH=<file>, set GITHUB_WEBHOOK_SECRET=<webhook_secret>.
  4. On the app's page: Install App -> choose the repositories.
Or a plain repository (or organization) webhook: Settings -> Webhooks -> Add webhook:
  Payload URL {base}/webhooks/github, Content type application/json, Secret: a random string
  (openssl rand -hex 32) also set as GITHUB_WEBHOOK_SECRET; "Let me select individual events":
  {", ".join(GITHUB_EVENTS)}; then set GITHUB_TOKEN to a token that may comment there."""
