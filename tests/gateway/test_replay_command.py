"""``gateway replay`` as a real process against a real ``gateway serve`` process and a real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.recorded import discover, load
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SECRETS = {
    "SLACK_SIGNING_SECRET": "replay-cmd-slack",
    "GITHUB_WEBHOOK_SECRET": "replay-cmd-github",
    "STRIPE_WEBHOOK_SECRET": "whsec_replay_cmd",
}


def _environ(**values: str) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_"))
    }
    return {**base, "GATEWAY_ENV_FILE": os.devnull, **values}


def _replay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", "replay", *args]
    environ = env if env is not None else _environ(**SECRETS)
    return subprocess.run(
        command, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def served(redis_url: str) -> Iterator[str]:
    """``gateway serve`` on a free port with a secret for every platform; yields its base URL."""
    port = free_port()
    env = _environ(REDIS_URL=redis_url, **SECRETS)
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "gateway serve did not become healthy"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


def _queued(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    return [job_id.decode() for job_id in client.lrange("rq:queue:gateway", 0, -1)]


def test_replaying_the_fixtures_folder_queues_every_expected_job(served: str, redis_url: str) -> None:
    recordings = discover(FIXTURES)
    result = _replay(str(FIXTURES), "--url", served)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(recordings)
    for line, recording in zip(lines, recordings, strict=True):
        assert re.search(
            rf" 200 {recording.platform}/{recording.name}( job [\w-]+)? \d+ms (queued|duplicate|handshake)",
            line,
        )
    expected = {r.expect["job_id"] for r in recordings if r.expect and r.expect["job_id"]}
    assert set(_queued(redis_url)) == expected
    total = len(recordings)
    assert f"replay: {total} sent, {total} answered 2xx, 0 did not (" in result.stderr


def test_repeat_sends_copies_that_the_gateway_acknowledges_but_queues_once(
    served: str, redis_url: str
) -> None:
    result = _replay(str(FIXTURES / "slack/app_mention.body"), "--url", served, "--repeat", "3")
    assert result.returncode == 0, result.stderr
    outcomes = [(line.split()[1], line.split()[-1]) for line in result.stdout.splitlines()]
    assert outcomes == [("200", "queued"), ("200", "duplicate"), ("200", "duplicate")]
    assert "(copy 3/3)" in result.stdout
    assert "(2 duplicate, 1 queued)" in result.stderr
    assert _queued(redis_url) == ["slack-Ev0001AM0001"]


@pytest.mark.parametrize(
    "name",
    [
        "slack/app_mention",
        "slack/slash_command",
        "slack/block_actions",
        "github/issues.opened",
        "github/push.form",
        "stripe/charge.failed",
        "stripe/v1.billing.meter.error_report_triggered",
    ],
)
def test_new_ids_make_each_replay_new_work(served: str, redis_url: str, name: str) -> None:
    """Event, command, interactivity, JSON and form GitHub, snapshot and thin Stripe bodies."""
    path = str(FIXTURES / f"{name}.body")
    assert _replay(path, "--url", served).returncode == 0
    original = load(FIXTURES / f"{name}.body").expect
    assert original is not None and _queued(redis_url) == [original["job_id"]]
    printed: list[str] = []
    for _ in range(2):
        result = _replay(path, "--url", served, "--new-ids", "--repeat", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        printed += [line.split(" job ", 1)[1].split()[0] for line in result.stdout.splitlines()]
    queued = _queued(redis_url)
    assert len(queued) == 3 and len(set(queued)) == 3, queued
    assert printed[0::2] == printed[1::2] and set(printed) == set(queued[1:])  # each line names its job
    assert all(job_id.startswith(f"{name.split('/')[0]}-") for job_id in queued)


def test_a_plain_json_payload_is_sent_with_its_platforms_headers(
    served: str, redis_url: str, tmp_path: Path
) -> None:
    stripe_event = tmp_path / "event.json"
    stripe_event.write_text(json.dumps({"id": "evt_plain1", "object": "event", "type": "invoice.paid"}))
    issue = tmp_path / "issue.json"
    issue.write_text(json.dumps({"action": "opened", "issue": {"number": 1}}))
    assert _replay(str(stripe_event), "--platform", "stripe", "--url", served).returncode == 0
    assert _replay(str(issue), "--platform", "github", "--event", "issues", "--url", served).returncode == 0
    stripe_job, github_job = _queued(redis_url)
    assert stripe_job == "stripe-evt_5fplain1" and github_job.startswith("github-")


def test_a_wrong_secret_shows_the_401_and_exits_1(served: str, redis_url: str) -> None:
    env = _environ(**{**SECRETS, "SLACK_SIGNING_SECRET": "not-the-servers-secret"})
    result = _replay(str(FIXTURES / "slack"), "--url", served, env=env)
    assert result.returncode == 1
    statuses = {line.split()[2]: line.split()[1] for line in result.stdout.splitlines()}
    # Slack sends ssl_check unsigned, so the gateway answers it before any signature check.
    assert statuses.pop("slack/ssl_check") == statuses.pop("slack/ssl_check.token-first") == "200"
    assert set(statuses.values()) == {"401"} and len(statuses) >= 8
    assert '{"error":"invalid request"}' in result.stdout
    assert _queued(redis_url) == []


def test_a_platform_without_a_secret_exits_2_naming_the_variable_before_sending(
    served: str, redis_url: str
) -> None:
    env = _environ(SLACK_SIGNING_SECRET=SECRETS["SLACK_SIGNING_SECRET"])
    result = _replay(
        str(FIXTURES / "slack/app_mention.body"), str(FIXTURES / "github"), "--url", served, env=env
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: GITHUB_WEBHOOK_SECRET:")
    assert result.stdout == "" and _queued(redis_url) == []


def test_no_answer_is_reported_and_exits_1() -> None:
    result = _replay(str(FIXTURES / "stripe/charge.failed.body"), "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert " --- stripe/charge.failed " in result.stdout and "ConnectError" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/file.body"], "no such file or folder"),
        (["pyproject.toml"], "needs --platform"),
        (["pyproject.toml", "--platform", "slack"], "must be a JSON object"),
        (["fixtures/slack/app_mention.headers.json"], "give its .body"),
        (["docs"], "no *.body recordings"),
        (["fixtures/slack", "--url", "127.0.0.1:8000"], "--url must be an http"),
        (["fixtures/slack", "--repeat", "0"], "must be at least 1"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    command_args = args if "--url" in args else [*args, "--url", "http://127.0.0.1:9"]
    result = _replay(*command_args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_a_plain_github_payload_needs_its_event(tmp_path: Path) -> None:
    payload = tmp_path / "push.json"
    payload.write_text("{}")
    result = _replay(str(payload), "--platform", "github", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2 and "--event" in result.stderr
