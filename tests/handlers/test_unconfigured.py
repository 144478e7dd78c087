"""A worker without a platform's credentials: the run succeeds, says what it skipped, shows the reply.

This is how ``gateway dev`` runs with no tokens: the record and the log must say that nothing
was fetched for the agent (so a pull request gets no file summary) and that the reply was not
posted, and the log must show the reply that would have been.
"""

from __future__ import annotations

import json

import pytest
import redis

from handlers.state import runs
from tests.e2e.support import ingress, recording
from tests.handlers.support import WorkerProcess

pytestmark = pytest.mark.timeout(90)


def test_a_pull_request_without_github_credentials_says_enrichment_was_skipped(
    redis_url: str, redis_client: redis.Redis
) -> None:
    rec = recording("github", "pull_request.opened")
    with ingress(redis_url) as gateway:
        assert gateway.post_recording(rec) == 200
    job_id = rec.expect["job_id"] if rec.expect else ""
    env = {"GITHUB_TOKEN": "", "GITHUB_APP_ID": "", "GATEWAY_ENV_FILE": "/dev/null"}
    with WorkerProcess(redis_url, "--burst", agent="triage", env=env) as worker:
        assert worker.wait(60) == 0
        log = worker.output()
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "succeeded", record
    assert "GITHUB_TOKEN or a GitHub App is not set" in record["note"]
    assert "nothing was fetched" in record["note"] and "not posted" in record["note"]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    warned = [line for line in lines if "nothing is fetched or posted" in line["message"]]
    shown = [line for line in lines if line["message"].startswith("reply not posted")]
    assert warned and shown and shown[0]["reply"] == record["reply"] and record["reply"]


def test_a_configured_run_has_no_note(redis_url: str, redis_client: redis.Redis) -> None:
    rec = recording("stripe", "charge.failed")
    with ingress(redis_url) as gateway:
        assert gateway.post_recording(rec) == 200
    job_id = rec.expect["job_id"] if rec.expect else ""
    runs.write(redis_client, job_id, note="a stale note")
    with WorkerProcess(redis_url, "--burst", agent="triage", env={"STRIPE_API_KEY": ""}) as worker:
        assert worker.wait(60) == 0
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "succeeded"
    assert record["note"].startswith("STRIPE_API_KEY is not set")
