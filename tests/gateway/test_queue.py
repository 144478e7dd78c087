"""Delivery ids become job ids, and the gateway's jobs are ordinary RQ jobs: the same hash as RQ's own
enqueue, runnable by a stock worker."""

from __future__ import annotations

import asyncio
import re
import zlib

import orjson
import redis
from hypothesis import given
from hypothesis import strategies as st
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from gateway.queue import FAILURE_TTL, RESULT_TTL, Enqueuer, to_job_id
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


RQ_ID = re.compile(r"[A-Za-z0-9_-]+")


def test_ids_rq_accepts_are_kept_as_they_are() -> None:
    assert (
        to_job_id("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert to_job_id("slack", "Ev0PV52K21") == "slack-Ev0PV52K21"


def test_other_characters_and_underscore_are_escaped() -> None:
    assert to_job_id("slack", "1.2.a") == "slack-1_2e2_2ea"
    assert to_job_id("stripe", "evt_1N") == "stripe-evt_5f1N"
    assert to_job_id("slack", "é") == "slack-_c3_a9"


@given(st.text(min_size=1, max_size=40))
def test_every_job_id_is_one_rq_accepts(delivery_id: str) -> None:
    assert RQ_ID.fullmatch(to_job_id("slack", delivery_id))


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_delivery_ids_never_share_a_job_id(a: str, b: str) -> None:
    if a != b:
        assert to_job_id("stripe", a) != to_job_id("stripe", b)


def test_near_collisions_stay_apart() -> None:
    assert to_job_id("stripe", "a.b") != to_job_id("stripe", "a_2eb")
