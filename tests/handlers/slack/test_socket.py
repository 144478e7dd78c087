"""``gateway socket`` as a real process: slack-sdk's Socket Mode client against the fake Socket Mode server.

Each envelope must be acknowledged only once its claim and job are in Redis, deduplicated by
the same ids as HTTP, redelivered by Slack when Redis could not take it, and the connection
must come back by itself after Slack asks it to reconnect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.fakes import SlackFake
from tests.fakes.otlp import OtlpCollector
from tests.fakes.socket_mode import DEFAULT_APP_TOKEN, SocketModeFake
from tests.handlers.support import wait_until

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(120)


class SocketProcess:
    """``python -m gateway.cli socket`` with its stderr kept in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str = "socket") -> None:
        self.err = tmp_path / f"{name}.err"
        with self.err.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "socket"], cwd=ROOT, env=env, stderr=stderr
            )

    @property
    def log(self) -> list[dict[str, Any]]:
        lines = self.err.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=20)


def _env(redis_url: str, slack: SlackFake, **values: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GATEWAY_", "REDIS_URL"))}
    return {
        **kept,
        "GATEWAY_ENV_FILE": os.devnull,
        "REDIS_URL": redis_url,
        "SLACK_API_URL": slack.base_url,
        "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
        **values,
    }


@pytest.fixture
def socket_fake() -> Iterator[SocketModeFake]:
    with SocketModeFake(ack_timeout=1.0) as fake:
        yield fake


@pytest.fixture
def slack(socket_fake: SocketModeFake) -> Iterator[SlackFake]:
    with SlackFake() as fake:
        fake.socket_mode = socket_fake
        yield fake


@pytest.fixture
def running(
    tmp_path: Path, redis_url: str, slack: SlackFake, socket_fake: SocketModeFake
) -> Iterator[SocketProcess]:
    process = SocketProcess(tmp_path, _env(redis_url, slack))
    try:
        socket_fake.wait_connected(timeout=30)
        yield process
    finally:
        process.stop()
    assert socket_fake.violations == []


def _mention(event_id: str, text: str = "<@U0FAKEBOT> hi") -> dict[str, Any]:
    event = {"type": "app_mention", "user": "U1", "text": text, "channel": "C1", "ts": "1700000000.000100"}
    return {
        "token": "unused",
        "team_id": "T0FAKE",
        "api_app_id": "A0FAKEAPP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000000,
        "authorizations": [{"team_id": "T0FAKE", "user_id": "U0FAKEBOT", "is_bot": True}],
    }


def _queued(connection: redis.Redis) -> list[str]:
    return [job_id.decode() for job_id in connection.lrange("rq:queue:gateway", 0, -1)]


def test_an_event_is_acknowledged_once_its_job_is_queued(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    envelope_id = socket_fake.send("events_api", _mention("EvSock0001"))
    ack = socket_fake.wait_acked(envelope_id)
    assert ack == {"envelope_id": envelope_id}  # events_api acknowledgements carry no payload
    assert _queued(redis_client) == ["slack-EvSock0001"]
    job = Job.fetch("slack-EvSock0001", connection=redis_client, serializer=JSONSerializer)
    envelope = job.args[0]
    assert job.func_name == "handlers.slack.handle" and envelope["event"] == "app_mention"
    assert envelope["meta"] == {
        "kind": "event",
        "retry_num": None,
        "retry_reason": None,
        "team_id": "T0FAKE",
        "api_app_id": "A0FAKEAPP",
    }
    assert socket_fake.sent(envelope_id).attempts == 1
    line = wait_until(lambda: [entry for entry in running.log if entry.get("delivery_id") == "EvSock0001"])
    assert line[0]["outcome"] == "queued" and line[0]["transport"] == "socket"
    assert DEFAULT_APP_TOKEN not in running.err.read_text()


def test_a_slash_command_is_acknowledged_with_the_message_its_user_sees(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    command = {
        "command": "/agent",
        "text": "status",
        "user_id": "U1",
        "channel_id": "C1",
        "team_id": "T0FAKE",
    }
    envelope_id = socket_fake.send("slash_commands", {**command, "trigger_id": "1.2.abc"})
    ack = socket_fake.wait_acked(envelope_id)
    assert ack["payload"] == {"response_type": "ephemeral", "text": "Working on it…"}
    assert _queued(redis_client) == ["slack-1_2e2_2eabc"]


@pytest.mark.parametrize("name", ["assistant_thread_started", "assistant_thread_context_changed"])
def test_an_assistant_thread_event_is_queued_once_like_any_event(
    name: str, running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    """The agent container's events, in the shape Slack documents (fixtures/slack), claimed and
    queued once however often Socket Mode delivers them."""
    body = json.loads((ROOT / "fixtures" / "slack" / f"{name}.body").read_bytes())
    first, second = (socket_fake.send("events_api", body) for _ in range(2))
    assert socket_fake.wait_acked(first) == {"envelope_id": first}
    socket_fake.wait_acked(second)
    job_id = f"slack-{body['event_id']}"
    assert _queued(redis_client) == [job_id]
    envelope = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer).args[0]
    assert envelope["event"] == name and envelope["meta"]["kind"] == "event"
    assert envelope["payload"]["event"]["assistant_thread"]["thread_ts"] == "1795345400.000100"


def test_copies_of_a_delivery_are_acknowledged_and_queued_once(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    first = socket_fake.send("events_api", _mention("EvSockDup"))
    second = socket_fake.send("events_api", _mention("EvSockDup"))
    socket_fake.wait_acked(first), socket_fake.wait_acked(second)
    assert _queued(redis_client) == ["slack-EvSockDup"]
    outcomes = wait_until(
        lambda: (
            sorted(e["outcome"] for e in running.log if e.get("delivery_id") == "EvSockDup")
            if len([e for e in running.log if e.get("delivery_id") == "EvSockDup"]) == 2
            else None
        )
    )
    assert outcomes == ["duplicate", "queued"]


def test_without_redis_nothing_is_acknowledged_and_slacks_redelivery_is_queued(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    redis_client.config_set("maxmemory", "1")  # noeviction: every write is refused
    try:
        envelope_id = socket_fake.send("events_api", _mention("EvSockDown"))
        wait_until(lambda: socket_fake.sent(envelope_id).attempts >= 2, timeout=10)
        assert socket_fake.sent(envelope_id).acks == [] and _queued(redis_client) == []
    finally:
        redis_client.config_set("maxmemory", "0")
    socket_fake.wait_acked(envelope_id, timeout=10)
    assert _queued(redis_client) == ["slack-EvSockDown"]
    assert any(e.get("outcome") == "unavailable" for e in running.log)


def test_a_malformed_envelope_is_acknowledged_so_slack_stops_resending_it(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    envelope_id = socket_fake.send("events_api", {"type": "event_callback", "event": {"type": "app_mention"}})
    socket_fake.wait_acked(envelope_id)
    assert _queued(redis_client) == []
    refused = wait_until(lambda: [e for e in running.log if e.get("outcome") == "rejected"])
    assert "event_id" in refused[0]["reason"]


def test_it_reconnects_when_slack_asks_and_after_a_dropped_connection(
    running: SocketProcess, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    socket_fake.disconnect("refresh_requested")
    wait_until(lambda: socket_fake.connections_opened >= 2, timeout=15)
    socket_fake.wait_acked(socket_fake.send("events_api", _mention("EvSockAfter1")), timeout=15)
    socket_fake.drop_connections()
    time.sleep(0.2)
    envelope_id = socket_fake.send("events_api", _mention("EvSockAfter2"), timeout=30)
    socket_fake.wait_acked(envelope_id, timeout=15)
    assert sorted(_queued(redis_client)) == ["slack-EvSockAfter1", "slack-EvSockAfter2"]


def test_several_processes_share_the_deliveries_and_each_runs_once(
    tmp_path: Path,
    running: SocketProcess,
    socket_fake: SocketModeFake,
    slack: SlackFake,
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    other = SocketProcess(tmp_path, _env(redis_url, slack), name="other")
    try:
        socket_fake.wait_connected(count=2, timeout=30)
        ids = [socket_fake.send("events_api", _mention(f"EvSockMany{i}")) for i in range(6)]
        ids += [socket_fake.send("events_api", _mention("EvSockMany0"))]  # a retry on another connection
        for envelope_id in ids:
            socket_fake.wait_acked(envelope_id)
        assert sorted(_queued(redis_client)) == sorted(f"slack-EvSockMany{i}" for i in range(6))
        handled = [e for p in (running, other) for e in p.log if e.get("transport") == "socket"]
        assert {e["outcome"] for e in handled} == {"queued", "duplicate"}
    finally:
        assert other.stop() == 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"SLACK_APP_TOKEN": ""}, "error: SLACK_APP_TOKEN: is not set"),
        ({"SLACK_APP_TOKEN": "xoxb-not-an-app-token"}, "error: SLACK_APP_TOKEN: must be an app-level token"),
        ({"SLACK_APP_TOKEN": "xapp-1-unknown"}, "Slack refused apps.connections.open: invalid_auth"),
    ],
)
def test_a_missing_or_refused_app_token_exits_2_naming_it(
    tmp_path: Path, redis_url: str, slack: SlackFake, values: dict[str, str], message: str
) -> None:
    process = SocketProcess(tmp_path, _env(redis_url, slack, **values))
    assert process.process.wait(timeout=30) == 2
    text = process.err.read_text()
    assert message in text and "xapp-1-unknown" not in text


def test_with_tracing_on_each_envelope_is_a_span_whose_context_rides_in_the_job(
    tmp_path: Path, redis_url: str, slack: SlackFake, socket_fake: SocketModeFake, redis_client: redis.Redis
) -> None:
    with OtlpCollector() as collector:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        process = SocketProcess(tmp_path, _env(redis_url, slack, GATEWAY_TRACING="otlp", **otel))
        try:
            socket_fake.wait_connected(timeout=30)
            socket_fake.wait_acked(socket_fake.send("events_api", _mention("EvSockTrace")))
            span = collector.wait_for_spans(lambda s: s.name == "receive slack socket")[0]
        finally:
            assert process.stop() == 0
    envelope = Job.fetch("slack-EvSockTrace", connection=redis_client, serializer=JSONSerializer).args[0]
    assert list(envelope["trace"]) == ["traceparent"]  # no tracestate was set, and never baggage
    version, trace_id, span_id, flags = envelope["trace"]["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", span.trace_id, span.span_id)
    assert int(flags, 16) & 1, "sampled"
    assert (span.kind, span.service, span.parent_id, span.status) == (
        "consumer",
        "gateway-socket",
        "",
        "unset",
    )
    assert span.attributes == {
        "gateway.platform": "slack",
        "gateway.transport": "socket",
        "gateway.acknowledged": True,
        "gateway.event": "app_mention",
        "gateway.job_id": "slack-EvSockTrace",
    }
