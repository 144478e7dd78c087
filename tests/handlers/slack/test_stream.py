"""Streamed Slack answers and assistant-thread status — real slack-sdk against the fake Slack.

The agent is tests.agents:scripted, streaming with ``run.stream`` as its ``test.stream`` says.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from gateway.types import Envelope
from handlers.errors import PermanentError, RunTimedOut
from handlers.slack import feedback, handle
from handlers.slack.render import METADATA_TYPE
from handlers.slack.status import STATUS
from handlers.state import keys
from tests.e2e.support import Ingress, recording, with_json
from tests.fakes import SlackFake
from tests.fakes.slack_rules import rendered

CHANNEL, THREAD = "C0001", "1795345212.000100"
DM, DM_THREAD = "D0001", "1795345300.000100"
JOB, DM_JOB = "slack-Ev0001AM0001", "slack-Ev0001MI0001"


def _mention(gateway: Ingress, test: dict[str, Any]) -> Envelope:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=test)) == 200
    return gateway.envelope(JOB)


def _assistant_message(slack: SlackFake, gateway: Ingress, test: dict[str, Any]) -> Envelope:
    """The recorded DM, sent in an assistant thread (it has a ``thread_ts``)."""
    rec = recording("slack", "message.im")
    body = with_json(rec.body, test=test, event={"thread_ts": DM_THREAD})
    slack.seed_message(DM, "hello", ts=DM_THREAD, user="U0001")  # the thread the user opened
    assert gateway.post_recording(rec, body=body) == 200
    return gateway.envelope(DM_JOB)


def _answers(slack: SlackFake, channel: str = CHANNEL, thread: str = THREAD) -> list[dict[str, Any]]:
    return [m for m in slack.messages(channel) if m.get("thread_ts") == thread and m.get("bot_id")]


def _has_feedback(message: dict[str, Any]) -> bool:
    return any(block.get("type") == "context_actions" for block in message.get("blocks") or [])


def test_an_assistant_thread_shows_a_status_then_streams_and_stops_with_feedback_and_metadata(
    slack: SlackFake, gateway: Ingress
) -> None:
    steps = {"progress": ["Reading the logs", "Comparing builds"], "progress_every": 1.2}
    script = {**steps, "stream": ["The build ", "broke in ", "step 3."]}
    asyncio.run(handle(_assistant_message(slack, gateway, script)))
    statuses = slack.statuses(DM, DM_THREAD)
    assert statuses[0]["status"] == STATUS and statuses[0]["loading_messages"]
    assert any("Comparing builds" in s.get("loading_messages", []) for s in statuses), statuses
    (answer,) = _answers(slack, DM, DM_THREAD)
    assert answer["text"] == "The build broke in step 3."
    stream = slack.stream(DM, answer["ts"])
    assert stream is not None and stream["state"] == "stopped"
    assert stream["recipient_user_id"] is None, "a DM needs no recipient"
    assert _has_feedback(answer)
    assert answer["metadata"]["event_type"] == METADATA_TYPE
    assert answer["metadata"]["event_payload"] == {"delivery": DM_JOB}
    assert slack.status(DM, DM_THREAD) is None
    assert not slack.calls("POST", "/chat.postMessage") and not slack.calls("POST", "/chat.update")


def test_an_assistant_thread_whose_agent_streams_nothing_gets_its_answer_posted(
    slack: SlackFake, gateway: Ingress
) -> None:
    asyncio.run(handle(_assistant_message(slack, gateway, {"reply": "plain answer"})))
    (answer,) = _answers(slack, DM, DM_THREAD)
    assert answer["text"] == "plain answer" and _has_feedback(answer)
    assert answer["metadata"]["event_payload"] == {"delivery": DM_JOB}
    assert slack.status(DM, DM_THREAD) is None


def test_a_channel_mention_streams_with_its_recipient_and_shows_steps_as_tasks(
    slack: SlackFake, gateway: Ingress
) -> None:
    script = {"progress": ["Reading the logs"], "progress_every": 1.2, "stream": ["Hello ", "there"]}
    asyncio.run(handle(_mention(gateway, script)))
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello there"
    stream = slack.stream(CHANNEL, answer["ts"])
    assert stream is not None and stream["state"] == "stopped"
    assert (stream["recipient_user_id"], stream["recipient_team_id"]) == ("U0001", "T0001")
    tasks = [chunk for chunk in stream["chunks"] if chunk["type"] == "task_update"]
    assert any(task.get("title") == "Reading the logs" for task in tasks), tasks
    assert tasks[-1]["status"] == "complete"
    assert _has_feedback(answer) and not slack.calls("POST", "/chat.postMessage")


def test_with_streaming_off_a_mention_gets_the_placeholder_as_before(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_STREAM", "off")
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    (post,) = slack.calls("POST", "/chat.postMessage")
    assert "Working on it" in post.body["text"] and not slack.calls("POST", "/chat.startStream")
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello" and _has_feedback(answer)


def test_feedback_off_leaves_the_buttons_out(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_FEEDBACK", "off")
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello" and not _has_feedback(answer)


def test_a_refused_stream_falls_back_to_the_placeholder(slack: SlackFake, gateway: Ingress) -> None:
    refusal = {"ok": False, "error": "channel_type_not_supported"}
    slack.fail_next("POST", "/chat.startStream", 200, body=refusal)
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello" and len(slack.calls("POST", "/chat.postMessage")) == 1


def test_a_rate_limited_start_takes_the_placeholder_at_once(slack: SlackFake, gateway: Ingress) -> None:
    """A 429 on chat.startStream (Tier 2) is not waited out: the placeholder answers now."""
    slack.fail_next("POST", "/chat.startStream", 429, headers={"Retry-After": "30"})
    started = time.monotonic()
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    assert time.monotonic() - started < 10, "the Retry-After was waited out"
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello" and len(slack.calls("POST", "/chat.postMessage")) == 1
    assert len(slack.calls("POST", "/chat.startStream")) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_a_failed_append_is_dropped_and_the_answer_is_still_whole(
    status: int, slack: SlackFake, gateway: Ingress
) -> None:
    slack.fail_next("POST", "/chat.appendStream", status, headers={"Retry-After": "1"})
    asyncio.run(handle(_mention(gateway, {"stream": ["one ", "two ", "three"], "stream_every": 1.2})))
    (answer,) = _answers(slack)
    assert rendered(answer["text"]).display == "one two three"
    appends = slack.calls("POST", "/chat.appendStream")
    assert [call.status for call in appends].count(status) == 1, "an append is never retried"
    assert slack.calls("POST", "/chat.update")[-1].body["ts"] == answer["ts"]


def test_an_answer_unlike_what_was_streamed_replaces_it(slack: SlackFake, gateway: Ingress) -> None:
    asyncio.run(handle(_mention(gateway, {"stream": ["draft words"], "reply": "the real answer"})))
    (answer,) = _answers(slack)
    assert answer["text"] == "the real answer" and _has_feedback(answer)
    assert answer["metadata"]["event_payload"] == {"delivery": JOB}


def test_streamed_text_is_escaped_and_pings_nobody(slack: SlackFake, gateway: Ingress) -> None:
    asyncio.run(handle(_mention(gateway, {"stream": ["<!channel> look ", "at <@U0009>"]})))
    (answer,) = _answers(slack)
    shown = rendered(answer["text"])
    assert shown.broadcasts == () and shown.mentions == ()
    assert shown.display == "<!channel> look at <@U0009>"


def test_a_reply_asking_for_a_mention_gets_it_after_the_stream(slack: SlackFake, gateway: Ingress) -> None:
    script = {"stream": ["see this"], "reply": "see this", "data": {"slack": {"mentions": ["U0007"]}}}
    asyncio.run(handle(_mention(gateway, script)))
    (answer,) = _answers(slack)
    assert rendered(answer["text"]).mentions == ("U0007",)


def test_a_stream_slack_ended_is_finished_by_editing_the_same_message(
    slack_api: SlackFake, redis_url: str, monkeypatch: pytest.MonkeyPatch, gateway: Ingress
) -> None:
    with SlackFake(stream_ttl=1.0) as short:
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", short.token)
        monkeypatch.setenv("SLACK_API_URL", short.base_url)
        monkeypatch.setenv("GATEWAY_AGENT", "tests.agents:scripted")
        asyncio.run(handle(_mention(gateway, {"stream": ["a ", "b ", "c ", "d"], "stream_every": 0.6})))
        (answer,) = _answers(short)
        assert answer["text"] == "a b c d" and _has_feedback(answer)
        assert short.calls("POST", "/chat.update")[-1].body["ts"] == answer["ts"]
        assert not short.calls("POST", "/chat.postMessage")


def test_a_failure_mid_stream_shows_the_note_without_feedback(slack: SlackFake, gateway: Ingress) -> None:
    with pytest.raises(PermanentError):
        asyncio.run(handle(_mention(gateway, {"stream": ["half an"], "permanent": "broke"})))
    (note,) = _answers(slack)
    assert note["text"].startswith(":x: Sorry, this failed") and not _has_feedback(note)


def test_a_failure_in_an_assistant_thread_clears_the_status_and_says_so(
    slack: SlackFake, gateway: Ingress
) -> None:
    with pytest.raises(PermanentError):
        asyncio.run(handle(_assistant_message(slack, gateway, {"permanent": "broke"})))
    assert slack.statuses(DM, DM_THREAD)[-1]["status"] == ""
    (note,) = _answers(slack, DM, DM_THREAD)
    assert note["text"].startswith(":x: Sorry, this failed")


def test_a_rerun_after_success_posts_nothing(slack: SlackFake, gateway: Ingress) -> None:
    envelope = _mention(gateway, {"stream": ["Hello"]})
    asyncio.run(handle(envelope))
    before = len(slack.calls())
    assert asyncio.run(handle(envelope))["already_delivered"] is True
    assert len(slack.calls()) == before


def test_feedback_buttons_name_the_run(slack: SlackFake, gateway: Ingress) -> None:
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    (answer,) = _answers(slack)
    clicked = slack.press_feedback(CHANNEL, answer["ts"], "good")
    (action,) = clicked["actions"]
    assert action["action_id"] == feedback.ACTION_ID
    assert feedback.read_value(action["value"]) == ("good", JOB)


def test_with_no_start_stream_budget_left_a_mention_gets_the_placeholder(
    slack: SlackFake, gateway: Ingress, redis_url: str
) -> None:
    connection = redis.Redis.from_url(redis_url)
    bucket = keys.slack_budget("T0001", "chat.startStream")
    connection.hset(bucket, mapping={"tokens": "0", "at": str(10**13)})  # empty, refilling never
    asyncio.run(handle(_mention(gateway, {"stream": ["Hello"]})))
    assert not slack.calls("POST", "/chat.startStream")
    (answer,) = _answers(slack)
    assert answer["text"] == "Hello" and len(slack.calls("POST", "/chat.postMessage")) == 1


def test_a_timeout_mid_stream_shows_the_note_in_the_streamed_message(
    slack: SlackFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_RUN_DEADLINE", "3")
    with pytest.raises(RunTimedOut):
        asyncio.run(handle(_mention(gateway, {"stream": ["half "], "sleep": 10})))
    (note,) = _answers(slack)
    assert "took too long" in note["text"] and not _has_feedback(note)
    assert slack.stream(CHANNEL, note["ts"])["state"] == "stopped"  # type: ignore[index]
