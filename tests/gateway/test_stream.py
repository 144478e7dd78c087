"""Following a run live: its history, then the events workers write, resumable with Last-Event-ID,
from any web process; through the real app, real ``gateway serve`` processes and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway import stream
from handlers.state import runs
from tests.e2e.support import API, API_TOKEN, Ingress, ingress, recording, with_json
from tests.handlers.support import wait_until
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[str, str, str]  # id, kind, data


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url, api=True) as app:
        yield app


def _queued(gateway: Ingress, event_id: str) -> str:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, event_id=event_id)) == 200
    return f"slack-{event_id}"


def _write(connection: redis.Redis, job_id: str, **fields: object) -> None:
    with connection.pipeline() as pipe:
        runs.write(pipe, job_id, **fields)
        pipe.execute()


def _parse(lines: Iterator[str]) -> Iterator[Event | str]:
    """SSE lines as (id, event, data) tuples; comment lines as themselves."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield line
        elif line == "" and fields:
            yield fields.get("id", ""), fields.get("event", ""), fields.get("data", "")
            fields = {}
        elif ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def _collect(client: httpx.Client, url: str, **headers: str) -> list[Event | str]:
    with client.stream("GET", url, headers={**API, **headers}, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(_parse(response.iter_lines()))


def _later(connection: redis.Redis, job_id: str, steps: list[str], *, delay: float = 0.3) -> threading.Thread:
    """Write ``steps`` progress events and then success, from a thread, after ``delay``."""

    def work() -> None:
        time.sleep(delay)
        for text in steps:
            runs.add_progress(connection, job_id, text)
            time.sleep(0.05)
        _write(connection, job_id, status="succeeded", reply="all done")

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_the_history_comes_first_then_the_live_events_until_done(gateway: Ingress) -> None:
    job_id = _queued(gateway, "Ev0STREAM1")
    _write(gateway.connection, job_id, status="running", worker="w1")
    runs.add_progress(gateway.connection, job_id, "reading the thread")
    writer = _later(gateway.connection, job_id, ["thinking", "writing"])
    events = _collect(gateway.client, f"/api/runs/{job_id}/events")  # type: ignore[arg-type]
    writer.join()
    kinds = [event[1] for event in events if isinstance(event, tuple)]
    assert kinds == ["status", "progress", "progress", "progress", "status", "done"]
    texts = [event[2] for event in events if isinstance(event, tuple) and event[1] == "progress"]
    assert ['"reading the thread"' in texts[0], '"thinking"' in texts[1], '"writing"' in texts[2]] == [
        True
    ] * 3
    ids = [event[0] for event in events if isinstance(event, tuple)]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == len(ids)


def test_a_run_not_started_yet_reads_as_queued_and_then_follows(gateway: Ingress) -> None:
    job_id = _queued(gateway, "Ev0STREAM2")
    writer = _later(gateway.connection, job_id, ["started"])
    events = [e for e in _collect(gateway.client, f"/api/runs/{job_id}/events") if isinstance(e, tuple)]  # type: ignore[arg-type]
    writer.join()
    assert events[0][:2] == ("0-1", "status") and '"queued"' in events[0][2]
    assert [e[1] for e in events[1:]] == ["progress", "status", "done"]


def test_last_event_id_resumes_after_it(gateway: Ingress) -> None:
    job_id = _queued(gateway, "Ev0STREAM3")
    for text in ("one", "two", "three"):
        runs.add_progress(gateway.connection, job_id, text)
    _write(gateway.connection, job_id, status="failed", error="boom")
    everything = [e for e in _collect(gateway.client, f"/api/runs/{job_id}/events") if isinstance(e, tuple)]  # type: ignore[arg-type]
    resumed = _collect(gateway.client, f"/api/runs/{job_id}/events", **{"Last-Event-ID": everything[1][0]})  # type: ignore[arg-type]
    assert resumed == everything[2:]
    assert [e[1] for e in resumed] == ["progress", "status", "done"]


def test_an_idle_stream_gets_a_keepalive_comment(gateway: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "KEEPALIVE", 0.2)
    job_id = _queued(gateway, "Ev0STREAM4")
    _write(gateway.connection, job_id, status="running")
    writer = _later(gateway.connection, job_id, [], delay=0.7)
    events = _collect(gateway.client, f"/api/runs/{job_id}/events")  # type: ignore[arg-type]
    writer.join()
    assert ": keepalive" in events and events[-1][1] == "done"  # type: ignore[index]


def test_an_unknown_run_and_a_bad_last_event_id_are_refused(gateway: Ingress) -> None:
    assert gateway.client.get("/api/runs/slack-Ev0NOPE/events", headers=API).status_code == 404
    job_id = _queued(gateway, "Ev0STREAM5")
    bad = gateway.client.get(f"/api/runs/{job_id}/events", headers={**API, "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400
    assert gateway.client.get(f"/api/runs/{job_id}/events").status_code == 401


class _Served:
    """``gateway serve`` as a subprocess on a free port, with the runs API on."""

    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, REDIS_URL=redis_url, SLACK_SIGNING_SECRET="s", GATEWAY_API_TOKEN=API_TOKEN)
        command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        wait_until(self._healthy, timeout=20)

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def test_two_web_processes_follow_the_same_run_and_resume_each_others_stream(
    redis_url: str, redis_client: redis.Redis
) -> None:
    one, two = _Served(redis_url), _Served(redis_url)
    try:
        job_id = "api-two-processes"
        _write(redis_client, job_id, status="running", platform="api")
        results: dict[str, list[Event | str]] = {}

        def follow(name: str, served: _Served) -> None:
            with httpx.Client(base_url=served.url) as client:
                results[name] = _collect(client, f"/api/runs/{job_id}/events")  # type: ignore[arg-type]

        followers = [threading.Thread(target=follow, args=(n, s)) for n, s in (("one", one), ("two", two))]
        for thread in followers:
            thread.start()
        time.sleep(0.5)
        writer = _later(redis_client, job_id, ["a", "b", "c"], delay=0)
        for thread in [*followers, writer]:
            thread.join(timeout=30)
        assert results["one"] == results["two"] and len(results["one"]) == 6
        middle = results["one"][2][0]  # type: ignore[index]
        with httpx.Client(base_url=two.url) as client:
            resumed = _collect(client, f"/api/runs/{job_id}/events", **{"Last-Event-ID": middle})
        assert resumed == results["one"][3:]
    finally:
        one.close()
        two.close()
