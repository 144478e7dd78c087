"""Slack's app manifest (YAML) for ``gateway manifest slack``: a bot that answers mentions, direct
messages, a slash command and buttons, every URL pointing at ``<PUBLIC_URL>/webhooks/slack``; with
``--socket``, no request URL at all (Socket Mode: ``gateway socket`` opens the connection).

The app is also an agent: ``features.assistant_view`` (Slack's agent container, the split view
with assistant threads; the key of Slack's AI apps guide and its sample manifests, e.g.
slack-samples/bolt-python-assistant-template) with its description and the suggested prompts of
``SLACK_SUGGESTED_PROMPTS`` (``prompts``), the ``assistant:write`` scope and the
``assistant_thread_started`` / ``assistant_thread_context_changed`` events.

Paste it at https://api.slack.com/apps -> Create New App -> From a manifest.
Schema: https://api.slack.com/reference/manifests
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import UsageError
from gateway.platforms.slack import prompts
from gateway.types import ManifestOptions

__all__ = [
    "ASSISTANT_DESCRIPTION",
    "OAUTH_REDIRECT_PATH",
    "SLACK_BOT_EVENTS",
    "SLACK_BOT_SCOPES",
    "check",
    "instructions",
    "render",
    "slack_manifest",
    "to_yaml",
]

SLACK_BOT_EVENTS = (
    "app_mention",
    "message.im",
    # The agent container (no scope of their own; Slack sends them to apps with assistant:write).
    "assistant_thread_started",
    "assistant_thread_context_changed",
    # App events (no scope): the workspace removed the app or its tokens; its installation goes.
    "app_uninstalled",
    "tokens_revoked",
)
OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"
SLACK_BOT_SCOPES = (
    "app_mentions:read",  # app_mention events
    "assistant:write",  # the agent container: assistant threads, their title and prompts
    "channels:history",  # read the thread the bot was mentioned in (public channels)
    "groups:history",  # ... and in private channels
    "chat:write",  # post replies
    "commands",  # the slash command
    "im:history",  # message.im events
    "im:read",  # direct-message channel details
)
ASSISTANT_DESCRIPTION = "Ask me in a thread; I work on it and answer there."
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
# Words YAML 1.1 readers (PyYAML among them) take for booleans or null.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def check(options: ManifestOptions) -> None:
    """Slack's manifest schema: a slash command is ``/`` plus 1-31 characters, without spaces;
    without Socket Mode the request URLs need ``--url``. ``SLACK_SUGGESTED_PROMPTS`` must read
    (``ConfigError`` naming it)."""
    prompts.read(os.environ)
    if not options.url and not options.socket:
        raise UsageError("--url is required (or --socket: Socket Mode needs no public URL)")
    command = options.command
    if not (command.startswith("/") and 2 <= len(command) <= 32 and " " not in command):
        raise UsageError(f"--command must be / and up to 31 more characters, got {command!r}")


def render(base: str, options: ManifestOptions) -> str:
    """The manifest as YAML."""
    manifest = slack_manifest(base, name=options.name, command=options.command, socket=options.socket)
    return to_yaml(manifest)


def instructions(base: str, options: ManifestOptions) -> str:
    """The registration steps, for stderr."""
    return _socket_instructions(base) if options.socket else _instructions(base)


def slack_manifest(
    base: str,
    *,
    name: str,
    command: str,
    socket: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Slack app manifest (schema version 1): bot user, DMs, mentions, one slash command,
    buttons, the agent container with the suggested prompts ``environ`` sets (default: the
    process's environment).

    With ``socket`` no request URL is named (Slack delivers over Socket Mode); with a ``base``
    the OAuth redirect URL is, for installs into more workspaces (``/slack/install``).
    """
    manifest = _manifest(f"{base}/webhooks/slack", name=name, command=command)
    suggested = prompts.read(os.environ if environ is None else environ)
    manifest["features"]["assistant_view"] = {
        "assistant_description": ASSISTANT_DESCRIPTION,
        "suggested_prompts": [prompt.to_slack() for prompt in suggested],
    }
    if socket:
        manifest["settings"]["socket_mode_enabled"] = True
        del manifest["settings"]["event_subscriptions"]["request_url"]
        del manifest["settings"]["interactivity"]["request_url"]
        del manifest["features"]["slash_commands"][0]["url"]
    if base:
        manifest["oauth_config"]["redirect_urls"] = [base + OAUTH_REDIRECT_PATH]
    return manifest


def _manifest(endpoint: str, *, name: str, command: str) -> dict[str, Any]:
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


def _instructions(base: str) -> str:
    return f"""
Register the Slack app (every request URL above is {base}/webhooks/slack):
  1. https://api.slack.com/apps -> Create New App -> From a manifest -> pick the workspace,
     paste this YAML (save it with: gateway manifest slack --url {base} > slack-manifest.yaml).
     Slack checks the request URL at once and shows it as not verified: the gateway does not
     know the app's signing secret yet, so it refuses Slack's check (401). That is expected.
  2. Basic Information -> App Credentials -> Signing Secret: put it in .env as
     SLACK_SIGNING_SECRET=..., then restart the gateway (gateway dev or gateway serve).
  3. Event Subscriptions -> Request URL -> Retry: it turns Verified. Save Changes.
  4. Install App -> Install to Workspace -> Bot User OAuth Token (xoxb-...): put it in .env as
     SLACK_BOT_TOKEN=..., and restart the worker.
  5. Invite the bot to a channel (/invite @bot) and mention it, or send it a direct message,
     or open it from Slack's top bar (the agent container: paid plans and developer sandboxes);
     its suggested prompts are SLACK_SUGGESTED_PROMPTS.
No public URL? gateway manifest slack --socket: Slack then delivers over Socket Mode."""


def _socket_instructions(base: str) -> str:
    again = f" --url {base}" if base else ""
    return f"""
Register the Slack app (Socket Mode: no request URL, no tunnel, no signing secret):
  1. https://api.slack.com/apps -> Create New App -> From a manifest -> pick the workspace,
     paste this YAML (save it with: gateway manifest slack --socket{again} > slack-manifest.yaml).
  2. Basic Information -> App-Level Tokens -> Generate Token and Scopes: any name, scope
     connections:write -> Generate. Put the token in .env as SLACK_APP_TOKEN=xapp-...
  3. Install App -> Install to Workspace -> Bot User OAuth Token: put it in .env as
     SLACK_BOT_TOKEN=xoxb-...
  4. gateway dev --socket (or, deployed: gateway socket beside gateway worker).
  5. Invite the bot to a channel (/invite @bot) and mention it, or send it a direct message,
     or open it from Slack's top bar (the agent container: paid plans and developer sandboxes);
     its suggested prompts are SLACK_SUGGESTED_PROMPTS."""
