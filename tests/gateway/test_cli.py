"""The ``gateway`` command: ``check`` and a real ``serve`` process under concurrent copies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.redis_server import free_port
from tests.support.signing import slack_headers

SECRET = "cli-test-secret"


def _gateway(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _environ(**values: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_"))
    }
    return {**base, "GATEWAY_ENV_FILE": os.devnull, **values}


def test_check_redacts_secrets_and_reports_redis(redis_url: str) -> None:
    result = _gateway(
        "check", env=_environ(REDIS_URL=redis_url, SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN="xoxb-1")
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout and "xoxb-1" not in result.stdout
    assert "SLACK_SIGNING_SECRET" in result.stdout and "<set>" in result.stdout
    assert "platforms on: slack" in result.stdout and "redis: ok" in result.stdout


def test_check_says_what_dev_would_run_on_development_secrets(redis_url: str) -> None:
    result = _gateway("check", env=_environ(REDIS_URL=redis_url, GITHUB_WEBHOOK_SECRET=SECRET))
    assert result.returncode == 0, result.stderr
    assert "platforms on: github" in result.stdout
    assert "gateway dev would also run slack, stripe on its public development secrets" in result.stdout
    assert "agent: triage (loads)" in result.stdout


def test_check_serve_fails_where_serve_would_refuse_to_start(redis_url: str) -> None:
    result = _gateway("check", "--serve", env=_environ(REDIS_URL=redis_url))
    assert result.returncode == 2 and result.stderr.startswith("error: SLACK_SIGNING_SECRET:")
    ok = _gateway("check", "--serve", env=_environ(REDIS_URL=redis_url, STRIPE_WEBHOOK_SECRET="whsec_x"))
    assert ok.returncode == 0, ok.stderr


def test_check_refuses_an_agent_the_worker_would_refuse(redis_url: str) -> None:
    result = _gateway("check", env=_environ(REDIS_URL=redis_url, GATEWAY_AGENT="no_such_module:agent"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: GATEWAY_AGENT:") and "no_such_module" in result.stderr


@pytest.mark.parametrize("command", ["serve", "dev"])
@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_an_out_of_range_port_exits_2_before_anything_starts(command: str, port: str) -> None:
    result = _gateway(command, "--port", port, env=_environ(SLACK_SIGNING_SECRET=SECRET))
    assert result.returncode == 2, result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_check_exits_1_when_redis_does_not_answer() -> None:
    result = _gateway("check", env=_environ(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert result.returncode == 1 and "redis: unreachable" in result.stdout


def test_bad_setting_exits_2_naming_the_variable() -> None:
    result = _gateway("check", env=_environ(GATEWAY_DEDUPE_TTL="60"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: GATEWAY_DEDUPE_TTL:")


def test_serve_refuses_to_start_with_no_platform_configured() -> None:
    result = _gateway("serve", "--port", str(free_port()), env=_environ())
    assert result.returncode == 2 and "SLACK_SIGNING_SECRET" in result.stderr


@contextmanager
def _serving(redis_url: str, stderr: list[str]) -> Iterator[str]:
    """Run ``gateway serve`` until the block ends, then SIGTERM it and put its stderr in ``stderr``."""
    port = free_port()
    env = _environ(REDIS_URL=redis_url, SLACK_SIGNING_SECRET=SECRET)
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        stderr.append(err)
        # uvicorn re-raises the signal once its shutdown is complete.
        assert process.returncode in (0, -signal.SIGTERM), err
        assert "Application shutdown complete" in err


@pytest.fixture
def served(redis_url: str) -> Iterator[str]:
    with _serving(redis_url, []) as base:
        yield base


def _wait_healthy(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError("gateway serve did not become healthy")


def test_served_gateway_turns_fifty_concurrent_copies_into_one_job(served: str, redis_url: str) -> None:
    body = json.dumps(
        {"type": "event_callback", "event_id": "EvServe1", "event": {"type": "app_mention"}}
    ).encode()
    headers = {"content-type": "application/json", **slack_headers(SECRET, body, int(time.time()))}

    def post(_: int) -> int:
        return httpx.post(f"{served}/webhooks/slack", content=body, headers=headers, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(post, range(50)))
    assert statuses == [200] * 50
    client = redis.Redis.from_url(redis_url)
    assert client.lrange("rq:queue:gateway", 0, -1) == [b"slack-EvServe1"]


def test_every_delivery_line_is_on_stderr_when_serve_stops_on_sigterm(redis_url: str) -> None:
    """Delivery lines wait for the end of their loop tick: none may be missing after a stop."""
    stderr: list[str] = []
    with _serving(redis_url, stderr) as base:
        for number in range(20):
            body = json.dumps(
                {"type": "event_callback", "event_id": f"EvStop{number}", "event": {"type": "app_mention"}}
            ).encode()
            headers = {"content-type": "application/json", **slack_headers(SECRET, body, int(time.time()))}
            assert httpx.post(f"{base}/webhooks/slack", content=body, headers=headers, timeout=10).is_success
    lines = [json.loads(line) for line in stderr[0].splitlines()]
    deliveries = [line["delivery_id"] for line in lines if line["logger"] == "gateway.delivery"]
    assert deliveries == [f"EvStop{number}" for number in range(20)]
    assert lines[-1]["message"].startswith("Finished server process")


def test_commands_read_the_env_file_and_the_environment_wins(tmp_path: Path, redis_url: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# written by gateway setup\n"
        f"REDIS_URL={redis_url}\n"
        "GITHUB_WEBHOOK_SECRET='from-the-file'\n"
        'STRIPE_WEBHOOK_SECRET="whsec_$NOT_EXPANDED"\n'
        "GATEWAY_QUEUE=from-the-file\n"
    )
    env = {**_environ(GATEWAY_QUEUE="from-the-environment"), "GATEWAY_ENV_FILE": str(env_file)}
    result = _gateway("check", env=env)
    assert result.returncode == 0, result.stderr
    assert "platforms on: github, stripe" in result.stdout and "redis: ok" in result.stdout
    assert re.search(r"^GATEWAY_QUEUE\s+from-the-environment$", result.stdout, re.MULTILINE)
    assert f"read REDIS_URL, GITHUB_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET from {env_file}" in result.stderr
    assert "from-the-file" not in result.stdout + result.stderr  # a secret, and the overridden queue


def test_recover_reads_the_env_file(tmp_path: Path, redis_url: str) -> None:
    """Without the file GitHub would be off; with it the sweep names the one setting still missing."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"REDIS_URL={redis_url}\nGITHUB_WEBHOOK_SECRET=s\nGITHUB_TOKEN=ghp_file\n")
    result = _gateway("recover", "github", env={**_environ(), "GATEWAY_ENV_FILE": str(env_file)})
    assert result.returncode == 2
    assert "GITHUB_RECOVER_HOOKS names no webhook to sweep" in result.stderr, result.stderr


def test_env_file_values_are_literal(tmp_path: Path) -> None:
    from gateway.config import load_env_file

    (tmp_path / "settings").write_text('A="x$HOME"\nexport B=2\nC\n')
    environ = {"GATEWAY_ENV_FILE": str(tmp_path / "settings"), "B": "env"}
    path, names = load_env_file(environ)
    assert names == ["A"] and environ["A"] == "x$HOME" and environ["B"] == "env" and "C" not in environ


def test_a_missing_env_file_sets_nothing(tmp_path: Path) -> None:
    from gateway.config import load_env_file

    environ = {"GATEWAY_ENV_FILE": str(tmp_path / "absent")}
    assert load_env_file(environ)[1] == [] and set(environ) == {"GATEWAY_ENV_FILE"}
