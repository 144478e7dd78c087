"""Slack answers: placeholder, throttled progress, final edit, once — real slack-sdk against the fake."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from gateway.types import Envelope
from handlers.errors import PermanentError
from handlers.slack import handle
from handlers.state import keys
from tests.e2e.support import Ingress, recording, with_form_fields, with_json
from tests.fakes import SlackFake

CHANNEL, THREAD = "C0001", "1795345212.000100"
JOB = "slack-Ev0001AM0001"


@pytest.fixture
def slack(slack: SlackFake, monkeypatch: pytest.MonkeyPatch) -> SlackFake:
    # The placeholder path (SLACK_STREAM=off); streamed answers: tests/handlers/slack/test_stream.py.
    monkeypatch.setenv("SLACK_STREAM", "off")
    return slack


def _mention(gateway: Ingress, *, test: dict[str, Any] | None = None, text: str | None = None) -> Envelope:
    """The app_mention fixture as queued, with a ``test`` script for tests.agents:scripted."""
    rec = recording("slack", "app_mention")
    changes: dict[str, Any] = {"test": test or {}}
    if text is not None:
        changes["event"] = {"text": text}
    assert gateway.post_recording(rec, body=with_json(rec.body, **changes)) == 200
    return gateway.envelope(JOB)


def _thread(slack: SlackFake) -> list[dict[str, Any]]:
    return [m for m in slack.messages(CHANNEL) if m.get("thread_ts") == THREAD]


def test_mention_gets_one_threaded_answer_that_replaced_the_placeholder(
    slack: SlackFake, gateway: Ingress
) -> None:
    result = asyncio.run(handle(_mention(gateway)))
    posts, updates = slack.calls("POST", "/chat.postMessage"), slack.calls("POST", "/chat.update")
    assert len(posts) == 1 and posts[0].body["thread_ts"] == THREAD
    assert "Working on it" in posts[0].body["text"]
    assert posts[0].body["metadata"]["event_payload"] == {"delivery": JOB}
    (answer,) = _thread(slack)
    assert answer["text"] == result["reply"] == f"done {JOB.removeprefix('slack-')} after 0 turns"
    assert updates[-1].body["ts"] == answer["ts"]


def test_a_rerun_after_success_posts_nothing_and_skips_the_agent(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    envelope = _mention(gateway)
    asyncio.run(handle(envelope))
    before = len(slack.calls())
    again = asyncio.run(handle(envelope))
    assert again["already_delivered"] is True
    assert len(slack.calls()) == before
    assert redis_client.ttl(keys.reply(JOB)) >= 3 * 24 * 3600 - 5


def test_a_permanent_failure_replaces_the_placeholder_with_a_failure_note(
    slack: SlackFake, gateway: Ingress
) -> None:
    with pytest.raises(PermanentError):
        asyncio.run(handle(_mention(gateway, test={"permanent": "secret internals"})))
    (note,) = _thread(slack)
    assert note["text"].startswith(":x: Sorry, this failed") and f"gateway runs show {JOB}" in note["text"]
    assert "secret internals" not in note["text"], "the reason is for the run record, not the channel"


def test_a_failure_note_that_cannot_be_posted_does_not_hide_the_runs_error(
    slack: SlackFake, gateway: Ingress
) -> None:
    slack.fail_next("POST", "/chat.update", 200, body={"ok": False, "error": "message_not_found"})
    with pytest.raises(PermanentError, match="agent broke"):
        asyncio.run(handle(_mention(gateway, test={"permanent": "agent broke"})))


def test_a_rerun_after_a_failed_attempt_edits_the_same_placeholder(
    slack: SlackFake, gateway: Ingress
) -> None:
    failing = _mention(gateway, test={"permanent": "agent broke"})
    with pytest.raises(PermanentError):
        asyncio.run(handle(failing))
    (placeholder,) = _thread(slack)
    fixed: Envelope = {**failing, "payload": {**failing["payload"], "test": {}}}
    asyncio.run(handle(fixed))
    (answer,) = _thread(slack)
    assert answer["ts"] == placeholder["ts"] and answer["text"].startswith("done")
    assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_progress_is_throttled_and_the_answer_is_the_last_edit(slack: SlackFake, gateway: Ingress) -> None:
    steps = [f"step {i}" for i in range(8)]
    asyncio.run(handle(_mention(gateway, test={"progress": steps, "sleep": 2.0})))
    updates = slack.calls("POST", "/chat.update")
    progress = [u for u in updates if "step" in u.body["text"]]
    assert 1 <= len(progress) <= 3, [u.body["text"] for u in updates]
    assert all(b.at - a.at >= 1.4 for a, b in zip(progress, progress[1:], strict=False))
    assert updates[-1].body["text"].startswith("done")
    assert _thread(slack)[0]["text"].startswith("done")


def test_rate_limited_post_waits_for_retry_after_and_posts_once(slack: SlackFake, gateway: Ingress) -> None:
    slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "1"})
    asyncio.run(handle(_mention(gateway)))
    posts = slack.calls("POST", "/chat.postMessage")
    assert [p.status for p in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 1.0
    assert len(_thread(slack)) == 1


def test_a_5xx_on_the_placeholder_is_not_retried_in_place(slack: SlackFake, gateway: Ingress) -> None:
    """The post may have landed: the job's rerun (which looks for it) decides, not a blind re-post."""
    slack.fail_next("POST", "/chat.postMessage", 500)
    with pytest.raises(Exception, match="Slack"):
        asyncio.run(handle(_mention(gateway)))
    assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_slash_command_is_answered_in_its_channel_with_the_question(
    slack: SlackFake, gateway: Ingress
) -> None:
    rec = recording("slack", "slash_command")
    body = with_form_fields(rec.body, response_url=slack.response_url("R1"))
    assert gateway.post_recording(rec, body=body) == 200
    asyncio.run(handle(gateway.envelope("slack-13345224609_2e738474920_2e8088930838d88f008e0")))
    (answer,) = slack.messages(CHANNEL)
    assert "thread_ts" not in answer
    assert answer["text"].startswith("<@U0001> `/triage why is the nightly build failing?`\ndone")
    assert slack.responses("R1") == []


def test_slash_command_falls_back_to_response_url_when_the_bot_is_not_in_the_channel(
    slack: SlackFake, gateway: Ingress
) -> None:
    rec = recording("slack", "slash_command")
    assert (
        gateway.post_recording(rec, body=with_form_fields(rec.body, response_url=slack.response_url("R2")))
        == 200
    )
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "not_in_channel"})
    envelope = gateway.envelope("slack-13345224609_2e738474920_2e8088930838d88f008e0")
    asyncio.run(handle(envelope))
    asyncio.run(handle(envelope))  # a rerun: the marker stops a second response
    (response,) = slack.responses("R2")
    assert response["response_type"] == "in_channel" and "done" in response["text"]


def test_response_urls_outside_slack_are_never_called(slack: SlackFake, gateway: Ingress) -> None:
    rec = recording("slack", "slash_command")
    body = with_form_fields(rec.body, response_url="http://169.254.169.254/latest")
    assert gateway.post_recording(rec, body=body) == 200
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "not_in_channel"})
    started = time.monotonic()
    asyncio.run(handle(gateway.envelope("slack-13345224609_2e738474920_2e8088930838d88f008e0")))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("name", ["message.im.bot", "message.channel.bot_message"])
def test_bot_messages_get_no_reply(name: str, slack: SlackFake, gateway: Ingress) -> None:
    rec = recording("slack", name)
    assert gateway.post_recording(rec) == 200
    result = asyncio.run(handle(gateway.envelope(f"slack-{rec.expect['delivery_id']}")))  # type: ignore[index]
    assert result == {"status": "ignored"}
    assert slack.calls() == []


def test_without_a_bot_token_the_reply_is_only_logged(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    result = asyncio.run(handle(_mention(gateway)))
    assert result["status"] == "succeeded" and slack.calls() == []


def test_triage_status_reports_the_queue(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_AGENT", "triage")
    rec = recording("slack", "message.im")
    assert gateway.post_recording(rec, body=with_json(rec.body, event={"text": "status"})) == 200
    asyncio.run(handle(gateway.envelope("slack-Ev0001MI0001")))
    (answer,) = [m for m in slack.messages("D0001") if m.get("thread_ts") == "1795345330.000400"]
    assert "*Queue*: 1 waiting, 0 running, 0 waiting to retry, 0 failed" in answer["text"]


def test_triage_help_lists_the_commands(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_AGENT", "triage")
    asyncio.run(handle(_mention(gateway, text="<@U0002> help")))
    (answer,) = _thread(slack)
    assert "`status`" in answer["text"] and "`help`" in answer["text"]
