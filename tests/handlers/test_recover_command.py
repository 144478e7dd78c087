"""``gateway recover`` and ``gateway check``'s recovery lines: arguments, exit codes, what is printed."""

from __future__ import annotations

import pytest
import redis

from gateway.cli import main
from handlers.state import keys


@pytest.fixture(autouse=True)
def _environ(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_TOKEN", "GITHUB_APP_ID", "STRIPE_API_KEY", "GITHUB_RECOVER_HOOKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_s")


def test_a_duration_it_cannot_read_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["recover", "stripe", "--since", "yesterday"])
    assert exited.value.code == 2
    assert "not a duration such as 90s, 30m, 6h or 3d" in capsys.readouterr().err


def test_a_platform_without_credentials_names_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "stripe"]) == 2
    assert "STRIPE_API_KEY" in capsys.readouterr().err


def test_only_platforms_that_can_be_swept_are_offered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["recover", "slack"])
    assert "invalid choice: 'slack'" in capsys.readouterr().err


def test_a_sweep_already_running_is_exit_1_naming_its_holder(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_x")
    redis_client.set(keys.recover_lock("stripe"), "worker-7|token", px=60_000)
    assert main(["recover", "stripe"]) == 1
    assert "another sweep of stripe is running (worker-7)" in capsys.readouterr().err


def test_check_shows_each_platforms_recovery(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_x")
    sweep = {"state": "incomplete", "finished_at": "2026-11-22T11:00:02+00:00", "by": "w1", "found": "4"}
    redis_client.hset(
        keys.last_sweep("stripe"), mapping=sweep | {"requeued": "3", "errors": "1", "error": "Stripe 500"}
    )
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "recovery github: off (GitHub is off: GITHUB_WEBHOOK_SECRET is not set)" in out
    assert (
        "recovery stripe: last sweep 2026-11-22T11:00:02+00:00 by w1, incomplete: found 4, requeued 3, "
        "errors 1; last error: Stripe 500 (the workers sweep every 300s)"
    ) in out
