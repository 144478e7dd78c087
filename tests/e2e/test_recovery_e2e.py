"""Recovery end to end: GitHub's delivery fails while Redis is down; the workers' sweep has it
redelivered; the real ingress queues it; a worker answers once. Stripe: ``gateway recover``
queues an event Stripe could not deliver, and a worker answers it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.queue import to_job_id
from handlers.state import keys, runs
from handlers.state.replies import hidden_marker
from tests.e2e.holding import HoldingGitHubFake
from tests.e2e.support import APP_ID, APP_KEY, APP_PEM, recording
from tests.fakes import GitHubFake, StripeFake
from tests.handlers.support import FAST, ROOT, WorkerProcess, job_status, wait_until
from tests.support.redis_server import RedisServer
from tests.support.served import served

pytestmark = pytest.mark.timeout(180)

REPO = "Codertocat/Hello-World"
SECRET = "recovery-e2e-github-secret"


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    server = RedisServer(durable=True).start()
    yield server
    server.cleanup()


def _issue_opened() -> dict[str, object]:
    payload = json.loads(recording("github", "issues.opened").body)
    payload["installation"] = {"id": 42, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI="}
    return dict(payload)


def _app_env(fake: GitHubFake) -> dict[str, str]:
    return {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_APP_ID": str(APP_ID),
        "GITHUB_APP_PRIVATE_KEY": APP_PEM,
        "GITHUB_API_URL": fake.base_url,
        "GATEWAY_RECOVER_INTERVAL": "1",
    }


def _check(redis_url: str, env: dict[str, str]) -> str:
    environ = {**os.environ, **env, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "handlers", "check"],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_github_delivery_missed_while_redis_was_down_is_redelivered_and_answered_once(
    durable_redis: RedisServer, tmp_path: Path
) -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=APP_KEY.public_key()) as github:
        github.seed_issue(REPO, 1, title="Spelling error in the README file")
        with served(durable_redis.url, {"GITHUB_WEBHOOK_SECRET": SECRET}) as gateway:
            github.add_hook("app", url=f"{gateway}/webhooks/github", secret=SECRET)
            durable_redis.kill()
            missed = github.deliver("app", "issues", _issue_opened())
            assert (missed["status_code"], missed["status"]) == (503, "Invalid HTTP Response: 503")
            durable_redis.start()
            env = _app_env(github)
            with WorkerProcess(
                durable_redis.url, *FAST, agent="triage", env=env, log=tmp_path / "worker.log"
            ):
                wait_until(lambda: github.comments(REPO, 1), timeout=60)
                connection = redis.Redis.from_url(durable_redis.url)
                job_id = to_job_id("github", missed["guid"])
                wait_until(lambda: job_status(connection, job_id) == "finished", timeout=30)
                first = connection.hget(keys.last_sweep("github"), "started_at")
                wait_until(
                    lambda: connection.hget(keys.last_sweep("github"), "started_at") != first, timeout=30
                )
                wait_until(
                    lambda: connection.hget(keys.last_sweep("github"), "state") == b"complete", timeout=30
                )
                health = httpx.get(f"{gateway}/health", timeout=5).json()
        check = _check(durable_redis.url, env)
    (comment,) = github.comments(REPO, 1)
    assert hidden_marker(job_id) in comment["body"]
    (again,) = github.redeliveries("app")  # the later sweeps found it claimed and answered
    assert (again["guid"], again["status_code"], again["requested_from"]) == (
        missed["guid"],
        200,
        missed["id"],
    )
    record = runs.get_run(connection, job_id)
    assert record is not None
    assert (record["status"], record["outcome"], record["source"]) == ("succeeded", "recovered", "github:app")
    assert health["recovery"]["github"]["state"] == "complete"
    assert "recovery github: last sweep" in check and "complete" in check
    assert "recovery stripe: off (Stripe is off" in check


def test_gateway_recover_stripe_queues_an_undelivered_event_that_a_worker_answers_once(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with StripeFake() as stripe_api:
        invoice = stripe_api.seed("invoice", "in_1RECOVER", customer="cus_1", status="open")
        event = stripe_api.seed(
            "event", type="invoice.payment_failed", data={"object": invoice}, pending_webhooks=1
        )
        env = {
            "STRIPE_WEBHOOK_SECRET": "whsec_recovery",
            "STRIPE_API_KEY": stripe_api.api_key,
            "STRIPE_API_BASE": stripe_api.base_url,
            "GATEWAY_RECOVER_INTERVAL": "0",
        }
        environ = {**os.environ, **env, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "gateway.cli", "recover", "stripe"]
        dry = subprocess.run(
            [*command, "--dry-run"], env=environ, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, dry.stderr
        assert "would bring back" in dry.stdout and redis_client.llen("rq:queue:gateway") == 0
        done = subprocess.run(command, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        job_id = to_job_id("stripe", event["id"])
        assert done.stdout.split("\t")[0] == job_id and "recovered" in done.stdout
        assert "1 missed, brought back 1, 0 error(s); complete" in done.stderr
        again = subprocess.run(command, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and again.stdout == "", "a claimed event is not queued twice"
        with WorkerProcess(
            redis_url, *FAST, "--burst", agent="triage", env=env, log=tmp_path / "w.log"
        ) as worker:
            assert worker.wait(timeout=60) == 0
        assert job_status(redis_client, job_id) == "finished"
        annotated = stripe_api.get("invoice", "in_1RECOVER")
        assert annotated is not None and annotated["metadata"]["gateway_delivery"] == event["id"]
        writes = [c for c in stripe_api.calls("POST", "/v1/invoices/in_1RECOVER") if not c.replayed]
        assert len(writes) == 1


def test_two_workers_never_sweep_at_once(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    """Each listing is held 1.5 s; with two workers sweeping every second, listings still never overlap."""
    with HoldingGitHubFake(app_id=APP_ID, app_public_key=APP_KEY.public_key()) as github:
        github.add_hook("app")
        github.seed_delivery("app", status_code=503)
        for _ in range(4):
            github.hold("GET", "/app/hook/deliveries", seconds=1.5)
        env = _app_env(github)
        workers = [
            WorkerProcess(redis_url, *FAST, agent="triage", env=env, log=tmp_path / f"w{n}.log")
            for n in range(2)
        ]
        try:
            wait_until(lambda: len(github.calls("GET", "/app/hook/deliveries")) >= 4, timeout=60)
        finally:
            for worker in workers:
                worker.close()
    starts = [call.at for call in github.calls("GET", "/app/hook/deliveries")]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 1.4 for gap in gaps[:3]), f"a listing began while another was held: {gaps}"
    assert len(github.redeliveries("app")) == 1, "the missed delivery was redelivered once"
