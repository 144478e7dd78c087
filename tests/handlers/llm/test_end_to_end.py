"""A signed Slack mention through the real app, Redis and a worker process running ``GATEWAY_AGENT=llm``,
to the threaded answer at the fake Slack API, with a fake OpenAI-compatible model server."""

from __future__ import annotations

import json

import pytest
import redis
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from handlers.state import runs
from tests.fakes import SlackFake
from tests.handlers.llm.fake_model import ModelFake
from tests.handlers.llm.model import answer, calls
from tests.handlers.support import WorkerProcess, wait_until
from tests.support.signing import slack_headers

SECRET = "llm-e2e-slack-secret"
NOW = 1_763_800_000
THREAD = "1763799000.000100"
ANSWER = "The deploy waits on the db migration; rerun it after the lock clears."


def _mention(slack: SlackFake) -> bytes:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{slack.bot['user_id']}> why is the deploy stuck?",
        "channel": "C1",
        "ts": "1763799100.000200",
        "thread_ts": THREAD,
        "event_ts": "1763799100.000200",
    }
    body = {
        "type": "event_callback",
        "event_id": "Ev0LLME2E",
        "team_id": slack.bot["team_id"],
        "event": event,
        "authorizations": [{"user_id": slack.bot["user_id"], "is_bot": True}],
    }
    return json.dumps(body).encode()


@pytest.mark.timeout(60)
def test_slack_mention_is_answered_in_its_thread_by_the_llm_agent(redis_url: str) -> None:
    with SlackFake() as slack, ModelFake() as model:
        slack.seed_message("C1", "deploy of api stuck at 40%", ts=THREAD)
        model.script(calls(("slack_thread", "{}")), answer(ANSWER))
        settings = Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": SECRET})
        body = _mention(slack)
        headers = {"content-type": "application/json", **slack_headers(SECRET, body, NOW)}
        with TestClient(create_app(settings, clock=lambda: NOW)) as client:
            assert client.post("/webhooks/slack", content=body, headers=headers).status_code == 200
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "LLM_BASE_URL": model.base_url,
            "LLM_MODEL": "e2e-model",
            "LLM_API_KEY": "sk-e2e-secret",
        }
        with WorkerProcess(redis_url, "--burst", agent="llm", env=env) as worker:
            found = wait_until(
                lambda: [m for m in slack.thread("C1", THREAD) if m.get("text") == ANSWER], timeout=30
            )
            assert worker.wait(timeout=30) == 0
            log = worker.output()

    assert found[0].get("thread_ts") == THREAD and found[0].get("bot_id")
    first, second = (call.body for call in model.calls("POST", "/chat/completions"))
    assert first["model"] == "e2e-model" and "why is the deploy stuck?" in first["messages"][-1]["content"]
    assert "deploy of api stuck at 40%" in second["messages"][-1]["content"]  # the thread, via the tool
    assert model.calls()[0].headers["authorization"] == "Bearer sk-e2e-secret"
    assert "sk-e2e-secret" not in log and "why is the deploy stuck" not in log  # no keys, no prompts in logs
    record = runs.get_run(redis.Redis.from_url(redis_url), "slack-Ev0LLME2E")
    assert record is not None and record["status"] == "succeeded"
    accounting = record["accounting"]  # the run record carries the LLM run's accounting
    assert accounting["model"] == "e2e-model" and accounting["steps"] == 2 and accounting["tool_calls"] == 1
