"""Helpers for worker tests: envelopes, enqueueing like the ingress, worker subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from gateway.queue import FAILURE_TTL, RESULT_TTL
from tests.agents import LOG_KEY

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "gateway"
FAST = ["--heartbeat-interval", "0.3", "--lease-ttl", "1.5", "--reap-interval", "0.5"]


BOT_USER = "U0BOT"


def slack_envelope(
    delivery_id: str,
    *,
    thread: str = "1.1",
    channel: str = "C1",
    text: str = "hi",
    test: dict[str, Any] | None = None,
    user: str = "U1",
    **event_fields: Any,
) -> dict[str, Any]:
    """A Slack ``app_mention`` envelope in thread ``thread``; ``test`` scripts tests.agents:scripted.

    Our bot is ``BOT_USER`` (in ``authorizations``); ``event_fields`` go into the inner event
    (``bot_id=...`` makes it a bot's message).
    """
    event = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "channel": channel,
        "ts": f"{thread}.9",
        "thread_ts": thread,
        **event_fields,
    }
    authorizations = [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}]
    return {
        "platform": "slack",
        "delivery_id": delivery_id,
        "event": "app_mention",
        "action": None,
        "received_at": "2026-11-22T11:00:00+00:00",
        "payload": {"team_id": "T1", "event": event, "authorizations": authorizations, "test": test or {}},
        "meta": {"kind": "event", "team_id": "T1", "retry_num": None, "retry_reason": None},
    }


def followup_state(connection: redis.Redis, job_id: str) -> str:
    """What became of follow-up ``job_id`` (``handlers.state.inbox``), or ``""``."""
    state = connection.hget(f"gateway:followup:{job_id}", "state")
    return state.decode() if state else ""


def enqueue(connection: redis.Redis, envelope: dict[str, Any], *, deadline: float = 600) -> str:
    """Enqueue exactly as the ingress does (job id, TTLs, JSONSerializer)."""
    job_id = f"{envelope['platform']}-{envelope['delivery_id']}"
    Queue(QUEUE, connection=connection, serializer=JSONSerializer).enqueue_call(
        f"handlers.{envelope['platform']}.handle",
        args=(envelope,),
        job_id=job_id,
        timeout=int(deadline) + 60,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )
    return job_id


def job_status(connection: redis.Redis, job_id: str) -> str:
    """RQ's status of ``job_id``."""
    return Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status().value


def agent_log(connection: redis.Redis) -> list[dict[str, Any]]:
    """The lines tests.agents wrote, oldest first."""
    return [json.loads(line) for line in connection.lrange(LOG_KEY, 0, -1)]


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


class WorkerProcess:
    """``python -m handlers worker ...`` as a subprocess, killed for sure at the end.

    Its log goes to a pipe read by ``output``, or to the file ``log`` when given: a worker that
    logs more than a pipe holds (64 KiB) blocks once it is full, if nobody reads it meanwhile.
    """

    def __init__(
        self,
        redis_url: str,
        *args: str,
        agent: str = "tests.agents:scripted",
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        environ = dict(os.environ, REDIS_URL=redis_url, GATEWAY_AGENT=agent, PYTHONPATH=str(ROOT))
        environ.update(env or {})
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handlers", "worker", *args],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if log is None else log.open("w"),
            text=True,
        )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit; returns the exit code."""
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        """Everything the worker logged (after it exited)."""
        _, err = self.process.communicate(timeout=5)
        return err if self.log is None else self.log.read_text()

    def close(self) -> None:
        """Kill the worker if it still runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
