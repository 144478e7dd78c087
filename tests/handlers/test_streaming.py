"""Streamed answers through a real worker process: ``run.stream`` → ``StreamRelay`` → ``on_stream``.

The platform and agents are ``tests.handlers.streaming_platform``; every hook call is logged in
Redis with its start and end, so the tests check order, coalescing, overlap and the flush before
the run's ending from the outside.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.serializers import JSONSerializer

from gateway.queue import FAILURE_TTL, RESULT_TTL
from handlers.state import runs
from tests.handlers.streaming_platform import INTERVAL, STREAM_LOG
from tests.handlers.support import FAST, QUEUE, WorkerProcess, slack_envelope, wait_until

pytestmark = pytest.mark.timeout(90)

ASYNC = "tests.handlers.streaming_platform:streaming"
SYNC = "tests.handlers.streaming_platform:streaming_sync"
PIECES = [f"word{index} " for index in range(40)]


def _enqueue(connection: redis.Redis, test: dict[str, Any], *, delivery_id: str = "E1") -> str:
    envelope = slack_envelope(delivery_id, test=test)
    job_id = f"slack-{delivery_id}"
    Queue(QUEUE, connection=connection, serializer=JSONSerializer).enqueue_call(
        "tests.handlers.streaming_platform.handle",
        args=(envelope,),
        job_id=job_id,
        timeout=660,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )
    return job_id


def _status(connection: redis.Redis, job_id: str) -> str:
    record = runs.get_run(connection, job_id)
    return str(record["status"]) if record else ""


def _hooks(connection: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(line) for line in connection.lrange(STREAM_LOG, 0, -1)]


def _check_stream_calls(calls: list[dict[str, Any]], *, hook_seconds: float = 0.0) -> None:
    """Never empty, never two at once, at most one per interval."""
    assert calls and all(call["text"] for call in calls)
    for previous, following in zip(calls, calls[1:], strict=False):
        assert following["started"] >= previous["ended"], "two on_stream calls overlapped"
        assert following["started"] - previous["started"] >= INTERVAL - 0.02


@pytest.mark.parametrize("agent", [ASYNC, SYNC])
def test_streamed_text_reaches_on_stream_coalesced_in_order_and_all_before_deliver(
    agent: str, redis_url: str, redis_client: redis.Redis
) -> None:
    job_id = _enqueue(redis_client, {"stream": PIECES, "every": 0.02, "reply": "The answer of record."})
    with WorkerProcess(redis_url, "--burst", agent=agent) as worker:
        assert worker.wait() == 0
    hooks = _hooks(redis_client)
    streams = [hook for hook in hooks if hook["hook"] == "on_stream"]
    assert [hook["hook"] for hook in hooks] == ["on_stream"] * len(streams) + ["deliver"]
    assert "".join(call["text"] for call in streams) == "".join(PIECES)
    assert 1 < len(streams) < len(PIECES), "pieces were coalesced, and streamed while the agent worked"
    _check_stream_calls(streams)
    deliver = hooks[-1]
    assert deliver["text"] == "The answer of record." and deliver["streamed"] == "".join(PIECES)
    assert deliver["started"] >= streams[-1]["ended"]
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "succeeded"
    assert int(record["streamed_chars"]) == len("".join(PIECES))


def test_a_slow_platform_does_not_slow_the_agent_and_still_gets_everything(
    redis_url: str, redis_client: redis.Redis
) -> None:
    _enqueue(redis_client, {"stream": PIECES, "every": 0.01, "hook_seconds": 0.5})
    with WorkerProcess(redis_url, "--burst", agent=SYNC) as worker:
        assert worker.wait() == 0
    hooks = _hooks(redis_client)
    streams = [hook for hook in hooks if hook["hook"] == "on_stream"]
    assert "".join(call["text"] for call in streams) == "".join(PIECES)
    _check_stream_calls(streams)
    assert len(streams) <= 3, "the agent streamed everything while the first call was on the wire"
    assert hooks[-1]["hook"] == "deliver" and hooks[-1]["started"] >= streams[-1]["ended"]


def test_a_failing_on_stream_is_logged_and_the_run_still_delivers(
    redis_url: str, redis_client: redis.Redis
) -> None:
    job_id = _enqueue(redis_client, {"stream": PIECES, "every": 0.02, "fail": [0], "reply": "Whole answer."})
    with WorkerProcess(redis_url, "--burst", agent=ASYNC) as worker:
        assert worker.wait() == 0
        log = worker.output()
    hooks = _hooks(redis_client)
    streams = [hook for hook in hooks if hook["hook"] == "on_stream"]
    assert streams[0]["failed"] and not any(call["failed"] for call in streams[1:])
    assert len(streams) > 1, "streaming went on after the failed call"
    assert hooks[-1]["hook"] == "deliver" and hooks[-1]["text"] == "Whole answer."
    assert "streamed text not forwarded" in log
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "succeeded"


@pytest.mark.parametrize("agent", [ASYNC, SYNC])
def test_on_timeout_comes_after_everything_streamed(
    agent: str, redis_url: str, redis_client: redis.Redis
) -> None:
    job_id = _enqueue(redis_client, {"stream": PIECES[:5], "sleep_after": 30, "hook_seconds": 0.3})
    with WorkerProcess(redis_url, *FAST, "--burst", "--deadline", "1", agent=agent) as worker:
        assert worker.wait() == 0
    hooks = _hooks(redis_client)
    assert hooks[-1]["hook"] == "on_timeout" and hooks[-1]["streamed"] == "".join(PIECES[:5])
    streams = [hook for hook in hooks if hook["hook"] == "on_stream"]
    assert "".join(call["text"] for call in streams) == "".join(PIECES[:5])
    assert hooks[-1]["started"] >= streams[-1]["ended"]
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "timed_out"
    assert int(record["streamed_chars"]) == len("".join(PIECES[:5]))


def test_on_cancel_comes_after_everything_streamed_and_nothing_streams_after_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    job_id = _enqueue(redis_client, {"stream": PIECES[:3], "sleep_after": 30, "hook_seconds": 0.3})
    with WorkerProcess(redis_url, *FAST, agent=SYNC):
        wait_until(lambda: [h for h in _hooks(redis_client) if h["hook"] == "on_stream"])
        send_stop_job_command(redis_client, job_id, serializer=JSONSerializer)
        wait_until(lambda: _status(redis_client, job_id) == "cancelled", timeout=10)
    hooks = _hooks(redis_client)
    assert hooks[-1]["hook"] == "on_cancel"
    streams = [hook for hook in hooks if hook["hook"] == "on_stream"]
    assert "".join(call["text"] for call in streams) == "".join(PIECES[:3])
    assert hooks[-1]["started"] >= streams[-1]["ended"]
