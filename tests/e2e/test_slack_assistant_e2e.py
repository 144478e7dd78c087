"""Slack's agent surface end to end: signed delivery → app → Redis → worker process → fake Slack.

Feedback clicks on an answer are recorded with its run (who, which way, one rating per person)
and shown by the runs API and ``gateway runs show``; they never run the agent. The agent
container's ``assistant_thread_*`` events keep the channel the user looks at, newest event
first, for the agent on that thread's messages (``facts["assistant_context"]``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus

import pytest
import redis

from gateway import runs
from handlers.slack import feedback
from tests.e2e.holding import HoldingSlackFake
from tests.e2e.support import API, Ingress, ingress, recording, with_json
from tests.handlers.support import FAST, WorkerProcess, agent_log, job_status

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
JOB = "slack-Ev0001AM0001"  # the recorded mention, whose answer the recorded click rates
DM, ASSISTANT_THREAD = "D0001", "1795345400.000100"  # fixtures/slack/assistant_thread_*


@pytest.fixture
def gateway(redis_url: str) -> Any:
    with ingress(redis_url, api=True) as app:
        yield app


def _work(redis_url: str, slack: HoldingSlackFake, **env: str) -> None:
    """One burst worker process over everything queued."""
    environ = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url, **env}
    with WorkerProcess(redis_url, *FAST, "--burst", env=environ) as worker:
        assert worker.wait(timeout=60) == 0, worker.output()


def _click(gateway: Ingress, n: int, *, rating: str = "good", user: str = "U0001", job: str = JOB) -> str:
    """The recorded feedback click, as ``user`` pressing ``rating`` on run ``job``'s answer; its job id."""
    rec = recording("slack", "block_actions.feedback")
    payload = json.loads(parse_qs(rec.body.decode())["payload"][0])
    trigger = f"13345224701.738474923.{n:020d}"
    payload["trigger_id"] = trigger
    payload["user"] = {**payload["user"], "id": user}
    payload["actions"][0] = {
        **payload["actions"][0],
        "value": f"{rating}:{job}",
        "action_ts": f"1795345290.{n:06d}",
    }
    body = ("payload=" + quote_plus(json.dumps(payload))).encode()
    assert gateway.post_recording(rec, body=body) == 200
    return "slack-" + trigger.replace(".", "_2e")


def _mention(gateway: Ingress) -> None:
    assert gateway.post_recording(recording("slack", "app_mention")) == 200


def _posted(slack: HoldingSlackFake) -> int:
    return len(slack.calls("POST", "/chat.postMessage")) + len(slack.calls("POST", "/chat.update"))


def test_feedback_clicks_are_recorded_with_the_run_one_rating_per_person(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway)
    _work(redis_url, slack)
    assert job_status(redis_client, JOB) == "finished"
    answered = _posted(slack)
    clicks = [
        _click(gateway, 1, rating="good", user="U0001"),
        _click(gateway, 2, rating="good", user="U0009"),
        _click(gateway, 3, rating="bad", user="U0001"),  # changes their mind: replaces their first
    ]
    _work(redis_url, slack)
    assert [job_status(redis_client, job) for job in clicks] == ["finished"] * 3
    shown = gateway.client.get(f"/api/runs/{JOB}", headers=API).json()
    assert [(f["user"], f["rating"]) for f in shown["feedback"]] == [("U0009", "good"), ("U0001", "bad")]
    assert shown["feedback"][1]["at"].startswith("2026-11-22T")  # the click's action_ts, in UTC
    assert shown["status"] == "succeeded" and shown["reply"]  # the run itself is untouched
    # A click is no run: no agent started, nothing posted, no follow-up or Stop taken.
    assert _posted(slack) == answered
    assert {line["delivery_id"] for line in agent_log(redis_client)} == {"Ev0001AM0001"}
    assert "feedback recorded: U0001 rated run" in (runs.get_run(redis_client, clicks[2]) or {})["note"]
    # gateway runs show prints the same record.
    environ = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "runs", "show", JOB],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert [(f["user"], f["rating"]) for f in json.loads(out)["feedback"]] == [
        ("U0009", "good"),
        ("U0001", "bad"),
    ]


def test_a_click_on_the_buttons_under_an_answer_is_recorded_with_that_answers_run(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """The fake Slack's own click (``press_feedback``) on a message carrying ``feedback.buttons``."""
    _mention(gateway)
    _work(redis_url, slack)
    answer = slack.seed_message(
        "C0001", "the answer", thread_ts="1795345212.000100", bot_id="B0001", blocks=[feedback.buttons(JOB)]
    )
    payload = slack.press_feedback("C0001", answer, "bad", user="U0007")
    body = ("payload=" + quote_plus(json.dumps(payload))).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert gateway.post("slack", body, headers) == 200
    _work(redis_url, slack)
    record = runs.get_run(redis_client, JOB) or {}
    assert [(f["user"], f["rating"]) for f in record["feedback"]] == [("U0007", "bad")]


def test_feedback_for_an_unknown_run_is_logged_and_changes_nothing(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    click = _click(gateway, 7, job="slack-EvUNKNOWN0001")
    environ = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    with WorkerProcess(redis_url, *FAST, "--burst", env=environ) as worker:
        assert worker.wait(timeout=60) == 0
        output = worker.output()
    assert job_status(redis_client, click) == "finished"  # not failed, not retried
    assert runs.get_run(redis_client, "slack-EvUNKNOWN0001") is None
    assert "feedback for a run with no record" in output
    assert "feedback for unknown run slack-EvUNKNOWN0001" in (runs.get_run(redis_client, click) or {})["note"]
    assert _posted(slack) == 0 and agent_log(redis_client) == []


def _assistant_event(gateway: Ingress, name: str, **changes: Any) -> str:
    rec = recording("slack", name)
    body = with_json(rec.body, **changes) if changes else rec.body
    assert gateway.post_recording(rec, body=body) == 200
    return f"slack-{json.loads(body)['event_id']}"


def _message_in_the_thread(gateway: Ingress, event_id: str = "Ev0001MI0009") -> str:
    rec = recording("slack", "message.im")
    event = {"thread_ts": ASSISTANT_THREAD, "ts": "1795345500.000100", "event_ts": "1795345500.000100"}
    assert gateway.post_recording(rec, body=with_json(rec.body, event_id=event_id, event=event)) == 200
    return f"slack-{event_id}"


def _facts_seen(connection: redis.Redis, delivery_id: str) -> dict[str, Any]:
    (start,) = [
        line
        for line in agent_log(connection)
        if line["phase"] == "start" and line["delivery_id"] == delivery_id
    ]
    facts: dict[str, Any] = start["facts"]
    return facts


def test_the_agent_sees_the_channel_the_user_looks_at_newest_event_winning(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """The context change (C0003) is delivered before the older start (C0001): it stays."""
    slack.seed_message(DM, "", ts=ASSISTANT_THREAD, user="U0002")
    changed = _assistant_event(gateway, "assistant_thread_context_changed")
    started = _assistant_event(gateway, "assistant_thread_started")
    message = _message_in_the_thread(gateway)
    _work(redis_url, slack, SLACK_SUGGESTED_PROMPTS="off")
    assert [job_status(redis_client, job) for job in (changed, started, message)] == ["finished"] * 3
    assert _facts_seen(redis_client, "Ev0001MI0009")["assistant_context"] == {
        "channel_id": "C0003",
        "team_id": "T0001",
    }
    assert "context not kept: a newer one is" in (runs.get_run(redis_client, started) or {})["note"]
    # Neither event ran the agent.
    assert {line["delivery_id"] for line in agent_log(redis_client)} == {"Ev0001MI0009"}


def test_a_direct_message_outside_an_assistant_thread_has_no_assistant_context(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _assistant_event(gateway, "assistant_thread_context_changed")
    assert gateway.post_recording(recording("slack", "message.im")) == 200  # its own thread
    _work(redis_url, slack, SLACK_SUGGESTED_PROMPTS="off")
    assert "assistant_context" not in _facts_seen(redis_client, "Ev0001MI0001")


def _started(gateway: Ingress, slack: HoldingSlackFake) -> str:
    slack.seed_message(DM, "", ts=ASSISTANT_THREAD, user="U0002")
    return _assistant_event(gateway, "assistant_thread_started")


def test_a_new_assistant_thread_gets_the_suggested_prompts_and_a_title_and_no_run(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    job = _started(gateway, slack)
    _work(redis_url, slack, SLACK_SUGGESTED_PROMPTS="Summarize=Summarize this channel|status")
    assert job_status(redis_client, job) == "finished"
    assert slack.suggested_prompts(DM, ASSISTANT_THREAD) == {
        "title": "Try asking",
        "prompts": [
            {"title": "Summarize", "message": "Summarize this channel"},
            {"title": "status", "message": "status"},
        ],
    }
    assert slack.title(DM, ASSISTANT_THREAD) == "New chat"
    assert _posted(slack) == 0 and agent_log(redis_client) == []
    note = (runs.get_run(redis_client, job) or {})["note"]
    assert "assistant.threads.setSuggestedPrompts: ok" in note and "assistant.threads.setTitle: ok" in note


def test_with_the_prompts_off_a_new_thread_only_gets_its_title(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _started(gateway, slack)
    _work(redis_url, slack, SLACK_SUGGESTED_PROMPTS="off")
    assert slack.calls("POST", "/assistant.threads.setSuggestedPrompts") == []
    assert slack.suggested_prompts(DM, ASSISTANT_THREAD) is None
    assert slack.title(DM, ASSISTANT_THREAD) == "New chat"


def test_an_app_without_the_agent_feature_is_logged_with_the_fix_and_not_retried(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    refusal = {"ok": False, "error": "not_agent_app"}
    slack.fail_next("POST", "/assistant.threads.setSuggestedPrompts", 200, body=refusal, times=5)
    job = _started(gateway, slack)
    environ = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    with WorkerProcess(redis_url, *FAST, "--burst", env=environ) as worker:
        assert worker.wait(timeout=60) == 0
        output = worker.output()
    assert job_status(redis_client, job) == "finished"  # ended, not failed nor scheduled again
    assert len(slack.calls("POST", "/assistant.threads.setSuggestedPrompts")) == 1
    assert "Slack refused assistant.threads.setSuggestedPrompts" in output and "Agents & AI Apps" in output
    assert "refused: not_agent_app" in (runs.get_run(redis_client, job) or {})["note"]
    assert slack.token not in output


def test_a_rate_limited_prompts_call_waits_and_is_made_again(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    slack.fail_next("POST", "/assistant.threads.setSuggestedPrompts", 429, headers={"Retry-After": "1"})
    slack.fail_next("POST", "/assistant.threads.setTitle", 503)
    job = _started(gateway, slack)
    _work(redis_url, slack)
    assert job_status(redis_client, job) == "finished"
    assert len(slack.calls("POST", "/assistant.threads.setSuggestedPrompts")) == 2
    assert slack.suggested_prompts(DM, ASSISTANT_THREAD) is not None
    assert slack.title(DM, ASSISTANT_THREAD) == "New chat"


def test_without_a_bot_token_a_new_thread_is_noted_and_nothing_called(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    job = _started(gateway, slack)
    with WorkerProcess(
        redis_url, *FAST, "--burst", env={"SLACK_BOT_TOKEN": "", "SLACK_API_URL": slack.base_url}
    ) as w:
        assert w.wait(timeout=60) == 0
    assert job_status(redis_client, job) == "finished"
    assert slack.calls("POST", "/assistant.threads.setTitle") == []
    assert "no bot token" in (runs.get_run(redis_client, job) or {})["note"]
