"""Worker settings: defaults, validation naming the variable, files read once, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import VARIABLES as WEB_VARIABLES
from gateway.errors import ConfigError
from gateway.platforms.slack import prompts
from handlers.config import VARIABLES, WorkerSettings, redacted


def test_defaults_match_the_documented_contract() -> None:
    settings = WorkerSettings.from_environ({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.github.api_url == "https://api.github.com"
    assert settings.stripe.api_base == "https://api.stripe.com"
    assert (settings.agent, settings.queue_name, settings.dedupe_ttl) == ("triage", "gateway", 259200)
    assert settings.concurrency == 100


def test_no_setting_is_read_by_both_sides() -> None:
    assert not set(VARIABLES) & set(WEB_VARIABLES)


def _pem(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def test_github_app_key_is_read_from_a_file(tmp_path: Path) -> None:
    settings = WorkerSettings.from_environ(
        {"GITHUB_APP_ID": "123", "GITHUB_APP_PRIVATE_KEY_PATH": str(_pem(tmp_path))}
    )
    assert settings.github.app_private_key and "PRIVATE KEY" in settings.github.app_private_key
    assert settings.github.is_app


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"GATEWAY_DEDUPE_TTL": "3600"}, "GATEWAY_DEDUPE_TTL"),
        ({"GATEWAY_AGENT": "not a spec"}, "GATEWAY_AGENT"),
        ({"GATEWAY_CONCURRENCY": "many"}, "GATEWAY_CONCURRENCY"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
        ({"GITHUB_TOKEN": "t", "GITHUB_APP_ID": "1"}, "GITHUB_TOKEN"),
        ({"GITHUB_APP_ID": "1"}, "GITHUB_APP_PRIVATE_KEY"),
        ({"GITHUB_APP_ID": "abc", "GITHUB_APP_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----"}, "GITHUB_APP_ID"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "not a key"}, "GITHUB_APP_PRIVATE_KEY"),
        ({"GITHUB_APP_PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "GITHUB_APP_PRIVATE_KEY_PATH"),
        ({"GITHUB_APP_PRIVATE_KEY": "k", "GITHUB_APP_PRIVATE_KEY_PATH": "/k"}, "GITHUB_APP_PRIVATE_KEY_PATH"),
        ({"STRIPE_SLACK_CHANNEL": "C1"}, "SLACK_BOT_TOKEN"),
        ({"GATEWAY_AGENT": "llm", "LLM_MODEL": "m"}, "LLM_BASE_URL"),
        ({"GATEWAY_AGENT": "llm", "LLM_BASE_URL": "http://llm"}, "LLM_MODEL"),
    ],
)
def test_bad_or_contradictory_settings_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_environ(environ)
    assert caught.value.variable == variable and str(caught.value).startswith(variable)


def test_redacted_view_hides_every_secret_and_redis_password() -> None:
    environ = {
        "SLACK_SIGNING_SECRET": "slack-signing-value",
        "SLACK_BOT_TOKEN": "xoxb-bot-token-value",
        "GITHUB_WEBHOOK_SECRET": "github-hook-value",
        "GITHUB_TOKEN": "github-token-value",
        "STRIPE_WEBHOOK_SECRET": "whsec_value",
        "STRIPE_API_KEY": "sk_test_value",
        "LLM_API_KEY": "llm-key-value",
        "REDIS_URL": "redis://:redis-password@db:6379/0",
    }
    view = redacted(WorkerSettings.from_environ(environ))
    assert set(view) == set(VARIABLES) | set(WEB_VARIABLES)
    shown = repr(view) + repr(WorkerSettings.from_environ(environ))
    for value in environ.values():
        assert value.split("@")[0].split(":")[-1] not in shown
    assert view["SLACK_SIGNING_SECRET"] == "<set>" and view["GITHUB_APP_ID"] == "<unset>"
    assert view["SLACK_BOT_TOKEN"] == "<set>" and view["REDIS_URL"] == "redis://:***@db:6379/0"


def test_recovery_settings_default_to_a_sweep_every_five_minutes_and_nothing_named() -> None:
    settings = WorkerSettings.from_environ({})
    assert settings.recover_interval == 300
    assert (settings.github.recover_hooks, settings.stripe.thin_event_types) == ((), ())


def test_recover_hooks_name_repository_and_organization_webhooks() -> None:
    environ = {"GITHUB_TOKEN": "t", "GITHUB_RECOVER_HOOKS": "acme/api:12, acme:7"}
    hooks = WorkerSettings.from_environ(environ).github.recover_hooks
    assert [(str(ref), ref.is_repository) for ref in hooks] == [("acme/api:12", True), ("acme:7", False)]


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"GITHUB_TOKEN": "t", "GITHUB_RECOVER_HOOKS": "acme/api"}, "GITHUB_RECOVER_HOOKS"),
        ({"GITHUB_TOKEN": "t", "GITHUB_RECOVER_HOOKS": "a/b/c:1"}, "GITHUB_RECOVER_HOOKS"),
        ({"GITHUB_RECOVER_HOOKS": "acme/api:12"}, "GITHUB_RECOVER_HOOKS"),
        ({"GATEWAY_RECOVER_INTERVAL": "-1"}, "GATEWAY_RECOVER_INTERVAL"),
        ({"STRIPE_THIN_EVENT_TYPES": "not a type"}, "STRIPE_THIN_EVENT_TYPES"),
        ({"STRIPE_THIN_EVENT_TYPES": ",".join(f"v1.t.e{i}" for i in range(21))}, "STRIPE_THIN_EVENT_TYPES"),
    ],
)
def test_unusable_recovery_settings_are_refused_naming_the_variable(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        WorkerSettings.from_environ(environ)
    assert raised.value.variable == variable


def test_suggested_prompts_default_to_two_and_read_title_equals_message() -> None:
    assert WorkerSettings.from_environ({}).slack.suggested_prompts == prompts.DEFAULT
    assert 1 <= len(prompts.DEFAULT) <= prompts.MAX_PROMPTS
    setting = " Summarize = Sum up = briefly |status "
    read = WorkerSettings.from_environ({"SLACK_SUGGESTED_PROMPTS": setting}).slack.suggested_prompts
    assert read == (prompts.Prompt("Summarize", "Sum up = briefly"), prompts.Prompt("status", "status"))
    assert prompts.parse(prompts.to_setting(read)) == read
    off = WorkerSettings.from_environ({"SLACK_SUGGESTED_PROMPTS": "OFF"})
    assert off.slack.suggested_prompts == () and redacted(off)["SLACK_SUGGESTED_PROMPTS"] == "off"


@pytest.mark.parametrize(
    "setting",
    ["1|2|3|4|5", "a=b|", " = message", "title=", "t" * 76, "t=" + "m" * 1001],
)
def test_unusable_suggested_prompts_are_refused_naming_the_setting(setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_environ({"SLACK_SUGGESTED_PROMPTS": setting})
    assert caught.value.variable == "SLACK_SUGGESTED_PROMPTS"


def test_four_prompts_at_the_length_limits_are_accepted() -> None:
    one = "t" * prompts.MAX_TITLE + "=" + "m" * prompts.MAX_MESSAGE
    assert len(prompts.parse("|".join([one] * prompts.MAX_PROMPTS))) == 4
