"""``gateway manifest``: Slack and GitHub manifests hold what each platform requires and point at our routes.

The field rules are Slack's manifest schema v1 (github.com/slackapi/manifest-schema) and GitHub's
"Registering a GitHub App from a manifest" and webhook-event permission tables, written out here
independently of the platforms' ``manifest`` modules. PyYAML parses the YAML (it comes with
uvicorn[standard]).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.platforms.slack.manifest import to_yaml
from gateway.recorded import load
from tests.support.signing import sign

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://gw.example.com/prefix"
NOW = 1_763_800_000

# Slack manifest schema v1: keys each section allows (additionalProperties is false there).
SLACK_KEYS = {
    "": {"_metadata", "display_information", "features", "oauth_config", "settings"},
    "display_information": {"name", "description", "background_color", "long_description"},
    "features": {"app_home", "assistant_view", "bot_user", "shortcuts", "slash_commands", "unfurl_domains"},
    # Slack's agent container (docs.slack.dev "Developing AI apps"; slack-samples' assistant templates).
    "features.assistant_view": {"assistant_description", "suggested_prompts"},
    "features.app_home": {"home_tab_enabled", "messages_tab_enabled", "messages_tab_read_only_enabled"},
    "features.bot_user": {"display_name", "always_online"},
    "oauth_config": {"redirect_urls", "scopes", "token_management_enabled"},
    "oauth_config.scopes": {"bot", "user"},
    "settings": {
        "allowed_ip_address_ranges",
        "event_subscriptions",
        "incoming_webhooks",
        "interactivity",
        "org_deploy_enabled",
        "socket_mode_enabled",
        "token_rotation_enabled",
    },
    "settings.event_subscriptions": {"request_url", "bot_events", "user_events"},
    "settings.interactivity": {"is_enabled", "request_url", "message_menu_options_url"},
}
SLASH_COMMAND_KEYS = {"command", "url", "description", "usage_hint", "should_escape"}
# The bot scope each subscribed event or feature needs.
# Slack's event reference: the scope each event needs ("app events" such as app_uninstalled need none).
SLACK_EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "app_uninstalled": None,
    "tokens_revoked": None,
    "assistant_thread_started": "assistant:write",
    "assistant_thread_context_changed": "assistant:write",
}
# GitHub: the App permissions under which each webhook event can be subscribed to.
GITHUB_EVENT_PERMISSIONS = {
    "issues": {"issues"},
    "issue_comment": {"issues", "pull_requests"},
    "pull_request": {"pull_requests"},
    "pull_request_review": {"pull_requests"},
    "pull_request_review_comment": {"pull_requests"},
    "pull_request_review_thread": {"pull_requests"},
    "check_run": {"checks"},
    "check_suite": {"checks"},
    "push": {"contents"},
    "release": {"contents"},
    "workflow_run": {"actions"},
}


def _manifest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", "manifest", *args]
    environ = {k: v for k, v in os.environ.items() if k != "SLACK_SUGGESTED_PROMPTS"}
    return subprocess.run(
        command,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def slack() -> dict[str, Any]:
    result = _manifest("slack", "--url", BASE + "/")
    assert result.returncode == 0, result.stderr
    assert "api.slack.com/apps" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    manifest: dict[str, Any] = yaml.safe_load(result.stdout)
    return manifest


@pytest.fixture(scope="module")
def github() -> dict[str, Any]:
    result = _manifest("github", "--url", BASE)
    assert result.returncode == 0, result.stderr
    assert "app-manifests/CODE/conversions" in result.stderr and "Add webhook" in result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def _sections(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in SLACK_KEYS:
        section: Any = manifest
        for part in filter(None, path.split(".")):
            section = section.get(part, {})
        yield path, section


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_slack_manifest_has_the_required_fields_and_no_unknown_ones(slack: dict[str, Any]) -> None:
    assert slack["_metadata"]["major_version"] in (1, 2)
    assert 1 <= len(slack["display_information"]["name"]) <= 35
    assert 1 <= len(slack["display_information"].get("description", "x")) <= 140
    assert 1 <= len(slack["features"]["bot_user"]["display_name"]) <= 80
    for path, section in _sections(slack):
        assert set(section) <= SLACK_KEYS[path], path


def test_slack_manifest_subscribes_mentions_and_dms_with_the_scopes_they_need(slack: dict[str, Any]) -> None:
    events = slack["settings"]["event_subscriptions"]["bot_events"]
    scopes = set(slack["oauth_config"]["scopes"]["bot"])
    assert set(events) == {
        "app_mention",
        "message.im",
        "app_uninstalled",
        "tokens_revoked",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    }
    assert {SLACK_EVENT_SCOPES[event] for event in events} - {None} <= scopes
    assert {"chat:write", "commands"} <= scopes  # replies, the slash command
    assert slack["features"]["app_home"]["messages_tab_enabled"] is True
    assert slack["features"]["app_home"]["messages_tab_read_only_enabled"] is False


def test_slack_manifest_makes_the_app_an_agent_with_the_default_prompts(slack: dict[str, Any]) -> None:
    view = slack["features"]["assistant_view"]
    assert 1 <= len(view["assistant_description"]) <= 140
    prompts = view["suggested_prompts"]
    assert 1 <= len(prompts) <= 4  # Slack: up to four suggested prompts
    assert all(set(p) == {"title", "message"} and p["title"] and p["message"] for p in prompts)
    assert "assistant:write" in slack["oauth_config"]["scopes"]["bot"]


@pytest.mark.parametrize("extra", [[], ["--socket"]])
def test_the_suggested_prompts_come_from_the_setting(extra: list[str]) -> None:
    setting = "Summarize = Summarize this thread, briefly | Deploys=What changed in deploys?|status"
    result = _manifest("slack", "--url", BASE, *extra, env={"SLACK_SUGGESTED_PROMPTS": setting})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["features"]["assistant_view"]["suggested_prompts"] == [
        {"title": "Summarize", "message": "Summarize this thread, briefly"},
        {"title": "Deploys", "message": "What changed in deploys?"},
        {"title": "status", "message": "status"},
    ]


def test_suggested_prompts_off_gives_an_agent_without_prompts() -> None:
    result = _manifest("slack", "--socket", env={"SLACK_SUGGESTED_PROMPTS": "off"})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["features"]["assistant_view"]["suggested_prompts"] == []


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("a|b|c|d|e", "at most 4"),
        ("=no title", "needs a title and a message"),
        ("ok=fine||", "prompt 2 needs a title"),
        ("x" * 76 + "=y", "at most 75"),
        ("t=" + "m" * 1001, "at most 1000"),
    ],
)
def test_a_bad_prompts_setting_exits_2_naming_it(setting: str, problem: str) -> None:
    result = _manifest("slack", "--url", BASE, env={"SLACK_SUGGESTED_PROMPTS": setting})
    assert result.returncode == 2 and result.stdout == ""
    assert "SLACK_SUGGESTED_PROMPTS" in result.stderr and problem in result.stderr


def test_slack_manifest_has_a_slash_command_and_interactivity(slack: dict[str, Any]) -> None:
    (command,) = slack["features"]["slash_commands"]
    assert set(command) <= SLASH_COMMAND_KEYS
    assert command["command"].startswith("/") and 2 <= len(command["command"]) <= 32
    assert 1 <= len(command["description"]) <= 2000
    assert slack["settings"]["interactivity"]["is_enabled"] is True
    # Socket Mode replaces every request URL (--socket); org-wide deploy needs an Enterprise Grid.
    assert slack["settings"]["socket_mode_enabled"] is False
    assert slack["settings"]["org_deploy_enabled"] is False


def test_every_slack_url_is_the_gateways_slack_route(slack: dict[str, Any]) -> None:
    urls = [s for s in _strings(slack) if s.startswith(("http://", "https://"))]
    assert len(urls) == 4  # events, interactivity, slash command; the OAuth redirect
    assert set(urls) == {f"{BASE}/webhooks/slack", f"{BASE}/slack/oauth_redirect"}
    assert slack["oauth_config"]["redirect_urls"] == [f"{BASE}/slack/oauth_redirect"]


def test_the_steps_say_to_set_the_secret_restart_and_press_retry() -> None:
    steps = _manifest("slack", "--url", BASE).stderr
    secret, restart, retry = (steps.index(word) for word in ("SLACK_SIGNING_SECRET", "restart", "Retry"))
    assert "not verified" in steps and secret < restart < retry


@pytest.mark.parametrize("extra", [[], ["--url", BASE]])
def test_a_socket_mode_manifest_names_no_request_url(extra: list[str]) -> None:
    result = _manifest("slack", "--socket", *extra)
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    for path, section in _sections(manifest):
        assert set(section) <= SLACK_KEYS[path], path
    assert manifest["settings"]["socket_mode_enabled"] is True
    urls = [s for s in _strings(manifest) if s.startswith(("http://", "https://"))]
    assert urls == ([f"{BASE}/slack/oauth_redirect"] if extra else [])
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert "connections:write" in result.stderr and "SLACK_APP_TOKEN" in result.stderr
    assert "gateway dev --socket" in result.stderr and "SLACK_SIGNING_SECRET" not in result.stderr


def test_github_manifest_has_the_fields_the_manifest_flow_requires(github: dict[str, Any]) -> None:
    assert isinstance(github["name"], str) and github["name"]
    assert github["url"] == BASE
    assert github["hook_attributes"] == {"url": f"{BASE}/webhooks/github", "active": True}
    assert urlsplit(github["redirect_url"]).scheme == "https"
    assert isinstance(github["public"], bool)
    assert set(github["default_permissions"].values()) <= {"read", "write"}
    assert github["default_permissions"]["metadata"] == "read"  # every App has it


def test_every_github_event_is_allowed_by_a_granted_permission(github: dict[str, Any]) -> None:
    granted = set(github["default_permissions"])
    events = github["default_events"]
    assert {"issues", "issue_comment", "pull_request", "check_run", "check_suite"} <= set(events)
    for event in events:
        assert GITHUB_EVENT_PERMISSIONS[event] & granted, event
    # Replies are comments and check runs: those permissions must be writable.
    for permission in ("issues", "pull_requests", "checks"):
        assert github["default_permissions"][permission] == "write"


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: dict[str | None, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append(dict(attrs))
        elif tag == "input":
            fields = dict(attrs)
            self.inputs[fields.get("name")] = fields.get("value")


@pytest.mark.parametrize(
    ("extra", "action"),
    [
        ([], "https://github.com/settings/apps/new"),
        (["--org", "acme"], "https://github.com/organizations/acme/settings/apps/new"),
    ],
)
def test_github_form_posts_the_same_manifest_to_github(
    github: dict[str, Any], extra: list[str], action: str
) -> None:
    result = _manifest("github", "--url", BASE, "--form", *extra)
    assert result.returncode == 0, result.stderr
    reader = _FormReader()
    reader.feed(result.stdout)
    assert reader.forms == [{"action": action, "method": "post"}]
    assert json.loads(reader.inputs["manifest"] or "") == github


def test_the_manifests_urls_reach_the_gateways_routes(
    slack: dict[str, Any], github: dict[str, Any], redis_url: str
) -> None:
    """Slack's url_verification and GitHub's ping, posted to the manifests' paths, are answered."""
    secrets = {"slack": "manifest-slack", "github": "manifest-github"}
    settings = Settings.from_environ(
        {
            "REDIS_URL": redis_url,
            "SLACK_SIGNING_SECRET": secrets["slack"],
            "GITHUB_WEBHOOK_SECRET": secrets["github"],
        }
    )
    targets = {
        "slack": (slack["settings"]["event_subscriptions"]["request_url"], "url_verification"),
        "github": (github["hook_attributes"]["url"], "ping"),
    }
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        for platform, (url, fixture) in targets.items():
            recording = load(ROOT / "fixtures" / platform / f"{fixture}.body")
            path = urlsplit(url).path.removeprefix("/prefix")  # a proxy would strip the prefix
            headers = {**recording.headers, **sign(platform, secrets[platform], recording.body, NOW)}
            response = client.post(path, content=recording.body, headers=headers)
            assert response.status_code == 200, (platform, response.text)


@pytest.mark.parametrize(
    "args",
    [
        ["slack", "--url", "gw.example.com"],
        ["slack", "--url", "ftp://gw.example.com"],
        ["slack", "--url", "https://gw.example.com/?x=1"],
        ["slack", "--url", BASE, "--command", "agent"],
        ["slack", "--url", BASE, "--name", "x" * 36],
        ["stripe", "--url", BASE],
        ["github"],
        ["slack"],
        ["github", "--url", BASE, "--socket"],
        ["github", "--url", BASE, "--form", "--org", "acme/../evil"],
    ],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    result = _manifest(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert "error" in result.stderr


def test_an_http_url_is_accepted_with_a_warning() -> None:
    result = _manifest("slack", "--url", "http://127.0.0.1:8000")
    assert result.returncode == 0 and "warning:" in result.stderr


_KEYS = st.from_regex(r"[a-z_][a-z0-9_.]{0,12}", fullmatch=True)
_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_to_yaml_round_trips_through_a_yaml_parser(value: dict[str, Any]) -> None:
    assert yaml.safe_load(to_yaml(value)) == (value or None)


def test_to_yaml_quotes_strings_that_yaml_would_read_as_other_types() -> None:
    tricky = {"a": ["yes", "no", "on", "null", "1.0", "0x1F", "a: b", "# c", "- d", "'e'", '"f"', "ünï", ""]}
    assert yaml.safe_load(to_yaml(tricky)) == tricky
