"""The gateway's jobs are ordinary RQ jobs: same hash as RQ's own enqueue, runnable by a stock worker."""

from __future__ import annotations

import asyncio
import zlib

import orjson
import redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from gateway.queue import FAILURE_TTL, RESULT_TTL, Enqueuer
from gateway.types import Envelope

ENVELOPE: Envelope = {
    "platform": "slack",
    "delivery_id": "Ev42",
    "event": "app_mention",
    "action": None,
    "received_at": "2026-11-22T11:00:00+00:00",
    "payload": {"event": {"type": "app_mention", "text": "héllo <@U1>"}},
    "meta": {"kind": "event", "retry_num": None},
}


def _submit(redis_url: str, job_path: str, job_id: str = "slack-Ev42") -> bool:
    async def scenario() -> bool:
        enqueuer = Enqueuer(redis_url, queue_name="gateway", dedupe_ttl=259200, run_deadline=600)
        try:
            return await enqueuer.submit(job_id, job_path, ENVELOPE)
        finally:
            await enqueuer.aclose()

    return asyncio.run(scenario())


def _hash(client: redis.Redis, job_id: str) -> dict[str, bytes]:
    return {k.decode(): v for k, v in client.hgetall(f"rq:job:{job_id}").items()}


def test_job_hash_matches_what_rqs_own_enqueue_writes(redis_url: str, redis_client: redis.Redis) -> None:
    assert _submit(redis_url, "handlers.slack.handle")
    queue = Queue("gateway", connection=redis_client, serializer=JSONSerializer)
    description = "slack app_mention Ev42"
    queue.enqueue_call(
        "handlers.slack.handle",
        args=(ENVELOPE,),
        job_id="rq-own",
        timeout=660,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=description,
    )
    ours, theirs = _hash(redis_client, "slack-Ev42"), _hash(redis_client, "rq-own")
    assert set(ours) == set(theirs)
    for name in set(theirs) - {"data", "created_at", "enqueued_at"}:
        assert ours[name] == theirs[name], name
    assert orjson.loads(ours["data"]) == orjson.loads(zlib.decompress(theirs["data"]))
    assert len(ours["created_at"]) == len(theirs["created_at"])


def test_rq_reads_the_job_back(redis_url: str, redis_client: redis.Redis) -> None:
    _submit(redis_url, "handlers.slack.handle")
    job = Job.fetch("slack-Ev42", connection=redis_client, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.kwargs) == ("handlers.slack.handle", [ENVELOPE], {})
    assert (job.get_status(), job.origin, job.timeout) == (JobStatus.QUEUED, "gateway", 660)
    assert job.enqueued_at is not None and job.created_at is not None
    assert Queue("gateway", connection=redis_client).job_ids == ["slack-Ev42"]
    assert b"rq:queue:gateway" in redis_client.smembers("rq:queues")


def test_a_stock_rq_worker_runs_the_gateways_job(redis_url: str, redis_client: redis.Redis) -> None:
    _submit(redis_url, "tests.support.jobs.echo_event")
    queue = Queue("gateway", connection=redis_client, serializer=JSONSerializer)
    SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer).work(burst=True)
    job = Job.fetch("slack-Ev42", connection=redis_client, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == "slack:app_mention:héllo <@U1>"


def test_second_submit_of_a_delivery_is_a_duplicate(redis_url: str, redis_client: redis.Redis) -> None:
    assert _submit(redis_url, "handlers.slack.handle") is True
    assert _submit(redis_url, "handlers.slack.handle") is False
    assert redis_client.llen("rq:queue:gateway") == 1
