"""``gateway manifest slack|github``: app registrations that point every webhook at this gateway.

- Slack: an app manifest (YAML) to paste at https://api.slack.com/apps → Create New App → From a
  manifest. Schema: https://api.slack.com/reference/manifests
- GitHub: a GitHub App manifest (JSON) for the manifest flow, or an HTML page that starts it.
  https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest

The manifest goes to stdout, how to use it to stderr, so ``gateway manifest slack --url ... >
manifest.yaml`` keeps the file clean.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from typing import Any
from urllib.parse import urlsplit

SLACK_BOT_EVENTS = ("app_mention", "message.im")
SLACK_BOT_SCOPES = (
    "app_mentions:read",  # app_mention events
    "channels:history",  # read the thread the bot was mentioned in (public channels)
    "groups:history",  # ... and in private channels
    "chat:write",  # post replies
    "commands",  # the slash command
    "im:history",  # message.im events
    "im:read",  # direct-message channel details
)
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


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
# Words YAML 1.1 readers (PyYAML among them) take for booleans or null.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


class ManifestUsageError(Exception):
    """The public URL cannot be used in a manifest; the message says why."""


def manifest_command(args: argparse.Namespace) -> int:
    """Print the manifest of ``args.platform`` to stdout and its instructions to stderr."""
    try:
        base = public_url(args.url)
        _check_names(args.name, args.slash_command)
    except ManifestUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if base.startswith("http://"):
        print("warning: Slack and GitHub want a public https:// URL (locally: a tunnel)", file=sys.stderr)
    if args.platform == "slack":
        print(to_yaml(slack_manifest(base, name=args.name, command=args.slash_command)), end="")
        print(_slack_instructions(base), file=sys.stderr)
        return 0
    manifest = github_manifest(base, name=args.name)
    if args.form:
        print(github_form(manifest, org=args.org), end="")
    else:
        print(json.dumps(manifest, indent=2))
    print(_github_instructions(base, org=args.org), file=sys.stderr)
    return 0


def public_url(url: str) -> str:
    """``url`` without a trailing slash; it must be an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ManifestUsageError(f"--url must be the gateway's public https:// URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ManifestUsageError("--url must not have a query or fragment")
    return url.rstrip("/")


def _check_names(name: str, command: str) -> None:
    # Slack's manifest schema: app name 1-35 characters, command "/" plus 1-31 characters.
    if not 1 <= len(name) <= 35:
        raise ManifestUsageError(f"--name must be 1 to 35 characters, got {len(name)}")
    if not (command.startswith("/") and 2 <= len(command) <= 32 and " " not in command):
        raise ManifestUsageError(f"--command must be / and up to 31 more characters, got {command!r}")


def slack_manifest(base: str, *, name: str, command: str) -> dict[str, Any]:
    """A Slack app manifest (schema version 1): bot user, DMs, mentions, one slash command, buttons."""
    endpoint = f"{base}/webhooks/slack"
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Answers mentions, direct messages and a slash command with an agent.",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [
                {
                    "command": command,
                    "url": endpoint,
                    "description": "Ask the agent",
                    "usage_hint": "[question]",
                    "should_escape": False,
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": list(SLACK_BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {"request_url": endpoint, "bot_events": list(SLACK_BOT_EVENTS)},
            "interactivity": {"is_enabled": True, "request_url": endpoint},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def github_manifest(base: str, *, name: str) -> dict[str, Any]:
    """A GitHub App manifest: the permissions and events the handlers use, webhooks to this gateway.

    ``redirect_url`` is the gateway's ``/health``: a page that exists, so the browser shows an
    answer while the one-time ``code`` GitHub appends sits in its address bar.
    """
    return {
        "name": name,
        "url": base,
        "description": "Runs an agent on issues, pull requests and checks, and replies.",
        "hook_attributes": {"url": f"{base}/webhooks/github", "active": True},
        "redirect_url": f"{base}/health",
        "public": False,
        "default_permissions": dict(GITHUB_PERMISSIONS),
        "default_events": list(GITHUB_EVENTS),
    }


def github_form(manifest: dict[str, Any], *, org: str | None) -> str:
    """An HTML page whose button POSTs ``manifest`` to GitHub, as the manifest flow requires."""
    target = (
        f"https://github.com/organizations/{org}/settings/apps/new"
        if org
        else ("https://github.com/settings/apps/new")
    )
    value = html.escape(json.dumps(manifest), quote=True)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Register the GitHub App</title></head>\n'
        f'<body><form action="{html.escape(target, quote=True)}" method="post">\n'
        f'<input type="hidden" name="manifest" value="{value}">\n'
        '<button type="submit">Create the GitHub App on GitHub</button>\n</form></body></html>\n'
    )


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists, strings, booleans and numbers.

    Strings are written as JSON strings, which YAML reads as double-quoted scalars, so no value
    can be mistaken for another type or break the structure; keys are quoted the same way unless
    they are plain identifiers YAML reads as strings.
    """
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(key)}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{_key(key)}: {_scalar(item)}\n")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2 :]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}\n")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS:
        return key
    return _json(key)


def _scalar(value: Any) -> str:
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    # JSON's true/false/numbers/strings are all valid YAML scalars of the same type.
    return _json(value)


def _json(value: Any) -> str:
    # Characters JSON leaves raw but YAML forbids or reads as line breaks (DEL, C1, U+2028/9).
    return _NOT_YAML_PRINTABLE.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False)
    )


def _slack_instructions(base: str) -> str:
    return f"""
Register the Slack app (every URL above is {base}/webhooks/slack):
  1. https://api.slack.com/apps -> Create New App -> From a manifest -> pick the workspace,
     paste this YAML (save it with: gateway manifest slack --url {base} > slack-manifest.yaml).
  2. The gateway must already be running there: Slack checks the URL with url_verification.
  3. Basic Information -> App Credentials -> Signing Secret: set SLACK_SIGNING_SECRET.
  4. Install App -> Install to Workspace -> Bot User OAuth Token (xoxb-...): set SLACK_BOT_TOKEN.
  5. Invite the bot to a channel (/invite @bot) and mention it, or send it a direct message."""


def _github_instructions(base: str, *, org: str | None) -> str:
    where = (
        f"https://github.com/organizations/{org}/settings/apps/new"
        if org
        else ("https://github.com/settings/apps/new")
    )
    return f"""
GitHub App (manifest flow, the app's webhook is {base}/webhooks/github):
  1. gateway manifest github --url {base}{f" --org {org}" if org else ""} --form > register.html
     Open register.html in a browser and press the button: it POSTs the manifest to {where}.
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
