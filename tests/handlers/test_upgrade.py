"""A job queued by the previous release (its dotted path, envelope and RQ hash, recorded in
``tests/data/previous_release_job.json``) is run by this release's worker."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from handlers.state import runs
from tests.handlers.support import FAST, WorkerProcess, job_status, wait_until

RECORDED = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "previous_release_job.json").read_text()
)


def test_a_job_queued_by_the_previous_release_runs_and_succeeds(
    redis_url: str, redis_client: redis.Redis
) -> None:
    job_id, queue = RECORDED["job_id"], RECORDED["queue"]
    assert json.loads(RECORDED["hash"]["data"])[0] == "handlers.slack.handle"
    redis_client.hset(f"rq:job:{job_id}", mapping=RECORDED["hash"])
    redis_client.rpush(f"rq:queue:{queue}", job_id)
    redis_client.sadd("rq:queues", f"rq:queue:{queue}")
    with WorkerProcess(redis_url, *FAST, "--burst", agent="triage") as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(redis_client, job_id) == "finished"
    record = wait_until(lambda: runs.get_run(redis_client, job_id))
    assert record["status"] == "succeeded" and record["platform"] == "slack"
    assert "*Queue*" in record["reply"]  # the triage agent answered its "status" question
