"""Due retries move back to the queue within seconds, also when the worker moving them has died."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from handlers.state import keys
from tests.handlers.support import (
    FAST,
    QUEUE,
    WorkerProcess,
    agent_log,
    job_status,
    slack_envelope,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


def _schedule_due_retry(connection: redis.Redis, delivery_id: str) -> str:
    """A job waiting in RQ's ScheduledJobRegistry and due now, as a transient failure leaves it."""
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    envelope = slack_envelope(delivery_id)
    job = queue.create_job(
        "handlers.slack.handle", args=(envelope,), job_id=f"slack-{delivery_id}", timeout=660
    )
    queue.schedule_job(job, datetime.now(UTC))
    return job.id


def test_a_dead_workers_mover_lock_delays_due_retries_by_seconds_not_a_minute(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """RQ's scheduler lock outlives a killed holder by 61 s; the mover lock by at most 3 s."""
    with WorkerProcess(redis_url, *FAST, "--name", "doomed") as doomed:
        wait_until(lambda: redis_client.get(keys.retry_mover(QUEUE)) == b"doomed", timeout=10)
        doomed.signal(signal.SIGKILL)
        doomed.wait()
    assert redis_client.get(keys.retry_mover(QUEUE)) == b"doomed", "the dead worker still holds the lock"
    job_id = _schedule_due_retry(redis_client, "E-retry")
    with WorkerProcess(redis_url, *FAST, "--name", "heir"):
        # Under RQ's own lock this took up to 61 s; the bound leaves room for a loaded machine.
        wait_until(lambda: job_status(redis_client, job_id) == "finished", timeout=15)
        assert redis_client.get(keys.retry_mover(QUEUE)) == b"heir"
    assert [line["delivery_id"] for line in agent_log(redis_client) if line["phase"] == "end"] == ["E-retry"]


def test_one_worker_moves_due_retries_at_a_time(redis_url: str, redis_client: redis.Redis) -> None:
    """Two live workers: one holds the mover lock, renewing it; a due retry runs once."""
    with WorkerProcess(redis_url, *FAST, "--name", "one"), WorkerProcess(redis_url, *FAST, "--name", "two"):
        holder = wait_until(lambda: redis_client.get(keys.retry_mover(QUEUE)), timeout=10)
        job_id = _schedule_due_retry(redis_client, "E-once")
        wait_until(lambda: job_status(redis_client, job_id) == "finished", timeout=15)
        assert redis_client.get(keys.retry_mover(QUEUE)) == holder
        assert 0 < redis_client.ttl(keys.retry_mover(QUEUE)) <= 3
    assert len([line for line in agent_log(redis_client) if line["phase"] == "start"]) == 1
