"""Traces end to end: a real ``gateway serve`` and a real worker export OTLP to a fake collector.

A signed Slack mention goes over HTTP to ``gateway serve``; a worker runs the ``llm`` agent
against the fake model (one tool call, then the answer) and replies in the fake Slack. The spans
of both processes must form one trace with the parents the README promises, carry the GenAI
attributes, and hold no payload, prompt, answer or key. With tracing off nothing is exported.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from handlers.state import runs
from tests.fakes import SlackFake
from tests.fakes.otlp import ExportedSpan, OtlpCollector
from tests.handlers.llm.fake_model import ModelFake
from tests.handlers.llm.model import answer, calls
from tests.handlers.support import FAST, WorkerProcess, enqueue, slack_envelope, wait_until
from tests.support.served import served
from tests.support.signing import slack_headers

pytestmark = pytest.mark.timeout(120)

SECRET = "trace-e2e-slack-secret"
API_KEY = "sk-trace-e2e-secret"
THREAD = "1763799000.000100"
QUESTION = "why is the deploy stuck?"
THREAD_TEXT = "deploy of api stuck at 40% on host db-7"
ANSWER = "The deploy waits on the db migration; rerun it after the lock clears."
RECORDED = json.loads((Path(__file__).parents[1] / "data" / "previous_release_job.json").read_text())


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as fake:
        yield fake


def _otel(collector: OtlpCollector) -> dict[str, str]:
    """The SDK's own settings, pointed at the fake; spans leave within 50 ms of ending."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def _mention(slack: SlackFake, event_id: str) -> bytes:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{slack.bot['user_id']}> {QUESTION}",
        "channel": "C1",
        "ts": "1763799100.000200",
        "thread_ts": THREAD,
    }
    body = {"type": "event_callback", "event_id": event_id, "team_id": slack.bot["team_id"], "event": event}
    return json.dumps(body).encode()


def _post(base: str, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json", **slack_headers(SECRET, body, int(time.time()))}
    return httpx.post(f"{base}/webhooks/slack", content=body, headers=headers, timeout=10)


def _worker_env(slack: SlackFake, model: ModelFake, tracing: dict[str, str]) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "LLM_BASE_URL": model.base_url,
        "LLM_MODEL": "trace-model",
        "LLM_API_KEY": API_KEY,
        **tracing,
    }


def _pair(span: ExportedSpan, first: str, second: str) -> tuple[object, object]:
    return span.attributes.get(first), span.attributes.get(second)


def _one(spans: list[ExportedSpan], name: str) -> ExportedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


@pytest.mark.timeout(120)
def test_one_trace_runs_from_the_ingress_through_the_model_and_tool_calls_to_the_reply(
    redis_url: str, collector: OtlpCollector
) -> None:
    tracing = {"GATEWAY_TRACING": "otlp", **_otel(collector)}
    with SlackFake() as slack, ModelFake() as model:
        model_port = model.port
        slack.seed_message("C1", THREAD_TEXT, ts=THREAD)
        model.script(calls(("slack_thread", "{}"), usage=(120, 15)), answer(ANSWER, usage=(300, 40)))
        with served(redis_url, {"SLACK_SIGNING_SECRET": SECRET, **tracing}) as base:
            assert _post(base, _mention(slack, "Ev0TRACE1")).status_code == 200
            ingress = collector.wait_for_spans(lambda span: span.kind == "server")[0]
        env = _worker_env(slack, model, tracing)
        with WorkerProcess(redis_url, *FAST, "--burst", agent="llm", env=env) as worker:
            wait_until(lambda: [m for m in slack.thread("C1", THREAD) if m.get("text") == ANSWER], timeout=30)
            assert worker.wait(timeout=30) == 0
        spans = collector.wait_for_spans(lambda span: span.service == "gateway-worker", count=5)

    assert ingress.name == "POST /webhooks/{platform}" and ingress.service == "gateway"
    assert ingress.parent_id == "" and ingress.status == "unset"
    assert ingress.attributes == {
        "http.request.method": "POST",
        "http.route": "/webhooks/{platform}",
        "http.response.status_code": 200,
        "gateway.platform": "slack",
        "gateway.outcome": "queued",
        "gateway.event": "app_mention",
        "gateway.job_id": "slack-Ev0TRACE1",
    }
    run = _one(spans, "process gateway")
    assert {span.trace_id for span in spans} == {ingress.trace_id}, "one trace from the ingress to the reply"
    assert run.kind == "consumer" and run.parent_id == ingress.span_id
    assert run.attributes["messaging.message.id"] == "slack-Ev0TRACE1"
    assert run.attributes["gateway.run.status"] == "succeeded" and run.attributes["gateway.attempt"] == 1
    assert run.status == "unset"

    first, second = sorted((s for s in spans if s.name == "chat trace-model"), key=lambda s: s.start_ns)
    for chat in (first, second):
        assert chat.kind == "client" and chat.parent_id == run.span_id and chat.status == "unset"
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.request.model"] == "trace-model"
        assert chat.attributes["gen_ai.request.max_tokens"] == 2048
        assert chat.attributes["gen_ai.request.stream"] is True
        assert _pair(chat, "server.address", "server.port") == ("127.0.0.1", model_port)
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert _pair(first, "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens") == (120, 15)
    assert second.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert _pair(second, "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens") == (300, 40)

    tool = _one(spans, "execute_tool slack_thread")
    assert tool.parent_id == run.span_id and tool.kind == "internal" and tool.status == "unset"
    assert first.end_ns <= tool.start_ns and tool.end_ns <= second.start_ns  # between the two calls
    assert tool.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "slack_thread",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "call_0",
    }
    reply = _one(spans, "deliver slack")
    assert reply.parent_id == run.span_id and second.end_ns <= reply.start_ns
    assert reply.attributes == {"gateway.platform": "slack", "gateway.reply.posted": True}

    exported = b"".join(call.raw for call in collector.calls("POST", "/v1/traces"))
    for private in (QUESTION, THREAD_TEXT, ANSWER, API_KEY, SECRET, slack.token):
        assert private.encode() not in exported, f"{private!r} reached the collector"


def test_with_tracing_off_nothing_is_exported(redis_url: str, collector: OtlpCollector) -> None:
    """The OTEL_* settings alone turn nothing on: GATEWAY_TRACING is unset."""
    with SlackFake() as slack:
        with served(redis_url, {"SLACK_SIGNING_SECRET": SECRET, **_otel(collector)}) as base:
            assert _post(base, _mention(slack, "Ev0TRACEOFF")).status_code == 200
        env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url, **_otel(collector)}
        with WorkerProcess(redis_url, *FAST, "--burst", agent="triage", env=env) as worker:
            assert worker.wait(timeout=30) == 0
        record = runs.get_run(redis.Redis.from_url(redis_url), "slack-Ev0TRACEOFF")
        assert record is not None and record["status"] == "succeeded"
    time.sleep(0.3)  # six export intervals, had anything been buffered
    assert collector.calls() == []


def test_a_job_queued_without_trace_context_runs_and_starts_its_own_trace(
    redis_url: str, redis_client: redis.Redis, collector: OtlpCollector
) -> None:
    """An envelope of the previous release (no trace field) under a worker with tracing on."""
    job_id, queue = RECORDED["job_id"], RECORDED["queue"]
    assert '"trace"' not in RECORDED["hash"]["data"]
    redis_client.hset(f"rq:job:{job_id}", mapping=RECORDED["hash"])
    redis_client.rpush(f"rq:queue:{queue}", job_id)
    redis_client.sadd("rq:queues", f"rq:queue:{queue}")
    env = {"GATEWAY_TRACING": "otlp", **_otel(collector)}
    with WorkerProcess(redis_url, *FAST, "--burst", agent="triage", env=env) as worker:
        assert worker.wait(timeout=60) == 0
    record = wait_until(lambda: runs.get_run(redis_client, job_id))
    assert record["status"] == "succeeded"
    run = collector.wait_for_spans(lambda span: span.name == f"process {queue}")[0]
    assert run.parent_id == "" and run.attributes["messaging.message.id"] == job_id
    reply = collector.wait_for_spans(lambda span: span.name == "deliver slack")[0]
    assert reply.trace_id == run.trace_id and reply.parent_id == run.span_id


def test_failures_are_marked_on_their_spans_with_the_error_class_and_nothing_more(
    redis_url: str, collector: OtlpCollector
) -> None:
    """A tool the platform refuses is a failed tool span in a run that still answers; a model
    server that refuses the key fails the model span and the run for good."""
    tracing = {"GATEWAY_TRACING": "otlp", **_otel(collector)}
    with SlackFake() as slack, ModelFake() as model:
        slack.seed_message("C1", THREAD_TEXT, ts=THREAD)
        model.script(calls(("slack_thread", "{}")), answer(ANSWER))
        refusal = {"ok": False, "error": "channel_not_found"}
        slack.fail_next("POST", "/conversations.replies", 200, body=refusal)
        env = _worker_env(slack, model, tracing)
        with served(redis_url, {"SLACK_SIGNING_SECRET": SECRET, **tracing}) as base:
            with WorkerProcess(redis_url, *FAST, "--concurrency", "1", agent="llm", env=env) as worker:
                assert _post(base, _mention(slack, "Ev0TOOLFAIL")).status_code == 200
                wait_until(
                    lambda: [m for m in slack.thread("C1", THREAD) if m.get("text") == ANSWER], timeout=30
                )
                model.fail_next("POST", "/chat/completions", 401, body={"error": {"message": "bad key"}})
                assert _post(base, _mention(slack, "Ev0MODELFAIL")).status_code == 200
                connection = redis.Redis.from_url(redis_url)
                wait_until(
                    lambda: (runs.get_run(connection, "slack-Ev0MODELFAIL") or {}).get("status") == "failed"
                )
                worker.signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0
        spans = collector.wait_for_spans(lambda span: span.service == "gateway-worker", count=7)

    runs_by_job = {s.attributes["messaging.message.id"]: s for s in spans if s.kind == "consumer"}
    answered, refused = runs_by_job["slack-Ev0TOOLFAIL"], runs_by_job["slack-Ev0MODELFAIL"]
    tool = _one(spans, "execute_tool slack_thread")
    assert tool.parent_id == answered.span_id and tool.status == "error"
    assert tool.attributes["error.type"] == "handlers.errors.PermanentError"
    assert answered.status == "unset" and answered.attributes["gateway.run.status"] == "succeeded"

    chat = next(s for s in spans if s.name == "chat trace-model" and s.parent_id == refused.span_id)
    assert chat.status == "error" and chat.attributes["error.type"] == "handlers.errors.PermanentError"
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert refused.status == "error" and refused.attributes["error.type"] == "failed"
    assert refused.attributes["gateway.run.status"] == "failed"
    assert not [s for s in spans if s.name == "deliver slack" and s.trace_id == refused.trace_id]
    exported = b"".join(call.raw for call in collector.calls("POST", "/v1/traces"))
    assert b"channel_not_found" not in exported and b"LLM_API_KEY" not in exported  # no messages


@pytest.mark.parametrize("agent", ["traced", "traced_in_a_thread"])
def test_the_run_continues_the_trace_in_the_job_and_a_custom_agents_spans_join_it(
    redis_url: str, redis_client: redis.Redis, collector: OtlpCollector, agent: str
) -> None:
    ingress_trace, ingress_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    envelope = slack_envelope("Ev0CUSTOM")
    envelope["trace"] = {"traceparent": f"00-{ingress_trace}-{ingress_span}-01", "tracestate": "vendor=1"}
    job_id = enqueue(redis_client, envelope)
    env = {"GATEWAY_TRACING": "otlp", **_otel(collector)}
    with WorkerProcess(redis_url, *FAST, "--burst", agent=f"tests.e2e.agents:{agent}", env=env) as worker:
        assert worker.wait(timeout=60) == 0
    assert runs.get_run(redis_client, job_id)["status"] == "succeeded"
    run = collector.wait_for_spans(lambda span: span.name == "process gateway")[0]
    custom = collector.wait_for_spans(lambda span: span.name == "custom step")[0]
    assert (run.trace_id, run.parent_id) == (ingress_trace, ingress_span)
    assert custom.trace_id == ingress_trace and custom.parent_id == run.span_id
    assert custom.scope == "custom-agent" and custom.service == "gateway-worker"
