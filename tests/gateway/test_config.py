"""Web-side settings: defaults, validation naming the variable, rotation, redaction."""

from __future__ import annotations

import pytest

from gateway.config import VARIABLES, Settings, redacted
from gateway.errors import ConfigError
from gateway.platforms import PLATFORMS


def test_defaults_match_the_documented_contract() -> None:
    settings = Settings.from_environ({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert (settings.queue_name, settings.dedupe_ttl) == ("gateway", 259200)
    assert (settings.max_body("slack"), settings.max_body("stripe"), settings.max_body("github")) == (
        2**20,
        2**20,
        25 * 2**20,
    )
    assert settings.enabled_platforms == ()


def test_a_platform_is_on_when_its_secret_is_set_and_takes_several_secrets() -> None:
    settings = Settings.from_environ(
        {"STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b", "SLACK_SIGNING_SECRET": "s"}
    )
    assert settings.enabled_platforms == ("slack", "stripe")
    assert settings.signing_secrets("stripe") == ("whsec_a", "whsec_b")


def test_every_platforms_settings_are_listed_and_read() -> None:
    for platform in PLATFORMS.values():
        assert (
            {platform.secret_variable, platform.max_body_variable}
            <= set(platform.variables)
            <= set(VARIABLES)
        )
        settings = Settings.from_environ({platform.secret_variable: "x", platform.max_body_variable: "7"})
        assert settings.enabled_platforms == (platform.name,) and settings.max_body(platform.name) == 7


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"GATEWAY_DEDUPE_TTL": "3600"}, "GATEWAY_DEDUPE_TTL"),
        ({"GATEWAY_DEDUPE_TTL": "three days"}, "GATEWAY_DEDUPE_TTL"),
        ({"SLACK_MAX_BODY": "0"}, "SLACK_MAX_BODY"),
        ({"SLACK_SIGNING_SECRET": "a,,b"}, "SLACK_SIGNING_SECRET"),
        ({"GATEWAY_QUEUE": "has space"}, "GATEWAY_QUEUE"),
        ({"GATEWAY_LOG_LEVEL": "LOUD"}, "GATEWAY_LOG_LEVEL"),
    ],
)
def test_bad_or_contradictory_settings_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ(environ)
    assert caught.value.variable == variable and str(caught.value).startswith(variable)


def test_redacted_view_hides_every_secret_and_redis_password() -> None:
    environ = {
        "SLACK_SIGNING_SECRET": "slack-signing-value",
        "GITHUB_WEBHOOK_SECRET": "github-hook-value",
        "STRIPE_WEBHOOK_SECRET": "whsec_value",
        "REDIS_URL": "redis://:redis-password@db:6379/0",
    }
    view = redacted(Settings.from_environ(environ))
    assert set(view) == set(VARIABLES)
    shown = repr(view) + repr(Settings.from_environ(environ))
    for value in environ.values():
        assert value.split("@")[0].split(":")[-1] not in shown
    assert view["SLACK_SIGNING_SECRET"] == "<set>" and view["GATEWAY_QUEUE"] == "gateway"
    assert view["REDIS_URL"] == "redis://:***@db:6379/0"
