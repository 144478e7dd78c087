"""``gateway runs list`` and ``gateway runs watch``: the commands as a user runs them, on a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from gateway.runs import index_member
from handlers.state import runs

ROOT = Path(__file__).resolve().parents[2]


def _gateway(redis_url: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "gateway.cli", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _run(connection: redis.Redis, job_id: str, at_ms: int, **fields: object) -> None:
    connection.zadd("gateway:runs", {index_member(job_id, at_ms): 0})
    with connection.pipeline() as pipe:
        runs.write(pipe, job_id, **fields)
        pipe.execute()


def test_list_prints_the_newest_runs_filtered(redis_url: str, redis_client: redis.Redis) -> None:
    _run(redis_client, "slack-Ev1", 1000, status="succeeded", platform="slack", event="app_mention")
    _run(redis_client, "github-d2", 2000, status="failed", platform="github", event="issues")
    shown = _gateway(redis_url, "runs", "list")
    assert shown.returncode == 0
    assert [line.split("\t")[:3] for line in shown.stdout.splitlines()] == [
        ["github-d2", "failed", "github"],
        ["slack-Ev1", "succeeded", "slack"],
    ]
    failed = _gateway(redis_url, "runs", "list", "--status", "failed").stdout
    assert failed.startswith("github-d2\t") and "slack-Ev1" not in failed
    assert "slack-Ev1" in _gateway(redis_url, "runs", "list", "--platform", "slack").stdout
    assert _gateway(redis_url, "runs", "list", "--status", "lost").returncode == 2


def test_watch_follows_a_run_to_its_end_and_exits_by_its_outcome(
    redis_url: str, redis_client: redis.Redis
) -> None:
    _run(redis_client, "slack-Ev3", 3000, status="running", platform="slack")

    def finish() -> None:
        time.sleep(1.0)
        runs.add_progress(redis_client, "slack-Ev3", "reading the thread")
        with redis_client.pipeline() as pipe:
            runs.write(pipe, "slack-Ev3", status="timed_out", error="run passed its 600s deadline")
            pipe.execute()

    thread = threading.Thread(target=finish)
    thread.start()
    watched = _gateway(redis_url, "runs", "watch", "slack-Ev3")
    thread.join()
    lines = watched.stdout.splitlines()
    assert watched.returncode == 1
    assert [line.split("] ", 1)[1] for line in lines] == [
        "running",
        "… reading the thread",
        "timed_out: run passed its 600s deadline",
        "ended: timed_out",
    ]
    _run(redis_client, "slack-Ev4", 4000, status="succeeded", reply="ok")
    assert _gateway(redis_url, "runs", "watch", "slack-Ev4").returncode == 0


def test_watch_of_an_unknown_run_says_so(redis_url: str) -> None:
    unknown = _gateway(redis_url, "runs", "watch", "slack-Ev0NOPE")
    assert unknown.returncode == 1 and "no run slack-Ev0NOPE" in unknown.stderr
