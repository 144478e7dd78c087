"""The fake's agent surface (assistant threads, streamed messages, feedback buttons) answers as Slack
documents it — driven by the real slack-sdk ``WebClient`` (the project's client; ``AsyncWebClient``
needs aiohttp, which the project does not install)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import slack_sdk
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk

from handlers.slack import feedback
from tests.fakes import SlackFake
from tests.fakes.slack_api import BOT_ID, TEAM_ID

DM = "D0AGENT"
CHANNEL = "C0AGENT"
USER = "U0ASKER"


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def _client(fake: SlackFake) -> slack_sdk.WebClient:
    return slack_sdk.WebClient(token=fake.token, base_url=fake.base_url, retry_handlers=[])


def _refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as raised:
        call(**kwargs)
    return dict(raised.value.response.data)


def _thread(fake: SlackFake, channel: str = DM) -> str:
    return fake.seed_message(channel, "what is up?", user=USER)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# -- assistant.threads.setStatus ------------------------------------------------------------------


def test_a_status_shows_until_the_bot_replies_in_the_thread(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    client.assistant_threads_setStatus(
        channel_id=DM, thread_ts=thread, status="is thinking...", loading_messages=["Reading", "Writing"]
    )
    assert slack.status(DM, thread) == {
        "status": "is thinking...",
        "loading_messages": ["Reading", "Writing"],
    }
    client.chat_postMessage(channel=DM, text="elsewhere")  # not in the thread: the status stays
    assert slack.status(DM, thread) is not None
    client.chat_postMessage(channel=DM, thread_ts=thread, text="the answer")
    assert slack.status(DM, thread) is None
    assert [call["status"] for call in slack.statuses(DM, thread)] == ["is thinking..."]


def test_an_empty_status_clears_it_and_every_call_is_recorded(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="is working...")
    client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="")
    assert slack.status(DM, thread) is None
    assert [call["status"] for call in slack.statuses(DM, thread)] == ["is working...", ""]
    assert all("token" not in call for call in slack.statuses(DM, thread))


def test_a_status_times_out_after_two_minutes() -> None:
    clock = _Clock()
    with SlackFake(clock=clock) as fake:
        thread = _thread(fake)
        _client(fake).assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="is thinking...")
        clock.now += 119
        assert fake.status(DM, thread) is not None
        clock.now += 1
        assert fake.status(DM, thread) is None


def test_a_stream_starting_in_the_thread_clears_its_status(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="is thinking...")
    client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="Hel")
    assert slack.status(DM, thread) is None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"channel_id": ""}, "channel_not_found"),
        ({"thread_ts": "not-a-ts"}, "invalid_thread_ts"),
        ({"thread_ts": "1700000000.000001"}, "invalid_thread_ts"),  # no such message in the channel
        ({"loading_messages": [f"m{n}" for n in range(11)]}, "invalid_arguments"),
        ({"loading_messages": ["x" * 51]}, "invalid_arguments"),
        ({"loading_messages": [""]}, "invalid_arguments"),
    ],
)
def test_set_status_refusals(slack: SlackFake, change: dict[str, Any], error: str) -> None:
    args = {"channel_id": DM, "thread_ts": _thread(slack), "status": "is thinking..."} | change
    assert _refused(_client(slack).assistant_threads_setStatus, **args)["error"] == error
    assert slack.status(DM, args["thread_ts"]) is None and slack.statuses(DM, args["thread_ts"]) == []


def test_ten_loading_messages_of_fifty_characters_are_taken(slack: SlackFake) -> None:
    thread = _thread(slack)
    loading = [f"{n}".ljust(50, "x") for n in range(10)]
    _client(slack).assistant_threads_setStatus(
        channel_id=DM, thread_ts=thread, status="is thinking...", loading_messages=loading
    )
    assert slack.status(DM, thread) == {"status": "is thinking...", "loading_messages": loading}


def test_set_status_is_limited_per_channel() -> None:
    with SlackFake(rate_limits={"assistant.threads.setStatus": 2}) as fake:
        client, thread, other = _client(fake), _thread(fake), _thread(fake, "D0OTHER")
        for _ in range(2):
            client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="s")
        client.assistant_threads_setStatus(channel_id="D0OTHER", thread_ts=other, status="s")
        with pytest.raises(SlackApiError) as raised:
            client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="s")
        assert raised.value.response.status_code == 429


# -- setTitle, setSuggestedPrompts ---------------------------------------------------------------


def test_title_and_suggested_prompts_are_kept_per_thread(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    client.assistant_threads_setTitle(channel_id=DM, thread_ts=thread, title="Deploys")
    prompts = [{"title": "Status", "message": "What is deploying?"}, {"title": "Help", "message": "help"}]
    client.assistant_threads_setSuggestedPrompts(
        channel_id=DM, thread_ts=thread, title="Try", prompts=prompts
    )
    client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=prompts[:1])
    assert slack.title(DM, thread) == "Deploys"
    assert slack.suggested_prompts(DM, thread) == {"title": "Try", "prompts": prompts}
    assert slack.suggested_prompts(DM, None) == {"title": None, "prompts": prompts[:1]}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"prompts": [{"title": f"t{n}", "message": "m"} for n in range(5)]}, "invalid_arguments"),
        ({"prompts": [{"title": "t"}]}, "invalid_arguments"),
        ({"prompts": []}, "invalid_arguments"),
        ({"thread_ts": "1700000000.000001"}, "invalid_thread_ts"),
        ({"channel_id": ""}, "channel_not_found"),
    ],
)
def test_suggested_prompts_refusals(slack: SlackFake, change: dict[str, Any], error: str) -> None:
    args = {
        "channel_id": DM,
        "thread_ts": _thread(slack),
        "prompts": [{"title": "t", "message": "m"}],
    } | change
    assert _refused(_client(slack).assistant_threads_setSuggestedPrompts, **args)["error"] == error
    assert slack.suggested_prompts(DM, args["thread_ts"]) is None


def test_an_app_without_the_agent_feature_gets_not_agent_app_for_prompts_only() -> None:
    with SlackFake(agent=False) as fake:
        client, thread = _client(fake), _thread(fake)
        prompts = [{"title": "t", "message": "m"}]
        refused = _refused(client.assistant_threads_setSuggestedPrompts, channel_id=DM, prompts=prompts)
        assert refused["error"] == "not_agent_app"
        client.assistant_threads_setTitle(channel_id=DM, thread_ts=thread, title="Still works")
        client.assistant_threads_setStatus(channel_id=DM, thread_ts=thread, status="still works")
        assert fake.title(DM, thread) == "Still works" and fake.status(DM, thread) is not None


def test_set_title_refuses_an_unknown_thread(slack: SlackFake) -> None:
    refused = _refused(_client(slack).assistant_threads_setTitle, channel_id=DM, thread_ts="1.2", title="x")
    assert refused["error"] == "invalid_thread_ts"


# -- chat.startStream / appendStream / stopStream ------------------------------------------------


def test_a_streamed_message_is_a_bot_reply_in_the_thread(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="Hel")["ts"]
    client.chat_appendStream(channel=DM, ts=ts, markdown_text="lo")
    client.chat_appendStream(channel=DM, ts=ts, chunks=[MarkdownTextChunk(text=" wor")])
    stopped = client.chat_stopStream(
        channel=DM,
        ts=ts,
        markdown_text="ld",
        blocks=[feedback.buttons("job-1")],
        metadata={"event_type": "gateway_reply", "event_payload": {"job": "job-1"}},
    )
    message = slack.message(DM, ts)
    assert message is not None and message["text"] == "Hello world" and message["bot_id"] == BOT_ID
    assert stopped["message"]["text"] == "Hello world" and message["blocks"] == [feedback.buttons("job-1")]
    assert message["metadata"]["event_type"] == "gateway_reply"
    assert [m["ts"] for m in slack.thread(DM, thread)] == [thread, ts]
    replies = client.conversations_replies(channel=DM, ts=thread)["messages"]
    assert replies[1]["text"] == "Hello world"
    assert slack.stream(DM, ts) == {
        "state": "stopped",
        "chunks": [
            {"type": "markdown_text", "text": "Hel"},
            {"type": "markdown_text", "text": "lo"},
            {"type": "markdown_text", "text": " wor"},
            {"type": "markdown_text", "text": "ld"},
        ],
        "appends": 2,
        "recipient_user_id": None,
        "recipient_team_id": None,
        "task_display_mode": None,
    }


def test_a_streamed_message_takes_its_ts_from_the_message_clock(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    before = client.chat_postMessage(channel=DM, thread_ts=thread, text="placeholder")["ts"]
    ts = client.chat_startStream(channel=DM, thread_ts=thread)["ts"]
    after = client.chat_postMessage(channel=DM, thread_ts=thread, text="later")["ts"]
    assert [m["ts"] for m in slack.thread(DM, thread)] == [thread, before, ts, after]
    assert len({before, ts, after}) == 3


def test_streaming_in_a_channel_needs_the_recipient(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack, CHANNEL)
    start = client.chat_startStream
    assert _refused(start, channel=CHANNEL, thread_ts=thread)["error"] == "missing_recipient_user_id"
    refused = _refused(start, channel=CHANNEL, thread_ts=thread, recipient_user_id=USER)
    assert refused["error"] == "missing_recipient_team_id"
    assert slack.thread(DM, thread) == [] and len(slack.messages(CHANNEL)) == 1
    ts = start(
        channel=CHANNEL,
        thread_ts=thread,
        recipient_user_id=USER,
        recipient_team_id=TEAM_ID,
        task_display_mode="plan",
    )["ts"]
    stream = slack.stream(CHANNEL, ts)
    assert stream is not None and (stream["recipient_user_id"], stream["recipient_team_id"]) == (
        USER,
        TEAM_ID,
    )
    assert stream["task_display_mode"] == "plan" and stream["state"] == "streaming"


def test_stop_and_expiry_end_the_streaming_state(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="partial")["ts"]
    slack.expire_stream(DM, ts)
    for call in (client.chat_appendStream, client.chat_stopStream):
        assert (
            _refused(call, channel=DM, ts=ts, markdown_text="more")["error"]
            == "message_not_in_streaming_state"
        )
    assert slack.message(DM, ts)["text"] == "partial"  # type: ignore[index]
    assert slack.stream(DM, ts)["state"] == "stopped"  # type: ignore[index]
    stopped = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="done")["ts"]
    client.chat_stopStream(channel=DM, ts=stopped)
    refused = _refused(client.chat_appendStream, channel=DM, ts=stopped, markdown_text="late")
    assert refused["error"] == "message_not_in_streaming_state"


def test_streams_expire_by_themselves_after_stream_ttl() -> None:
    clock = _Clock()
    with SlackFake(stream_ttl=300, clock=clock) as fake:
        client, thread = _client(fake), _thread(fake)
        ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="a")["ts"]
        clock.now += 299
        client.chat_appendStream(channel=DM, ts=ts, markdown_text="b")
        clock.now += 1
        refused = _refused(client.chat_appendStream, channel=DM, ts=ts, markdown_text="c")
        assert refused["error"] == "message_not_in_streaming_state"
        assert fake.message(DM, ts)["text"] == "ab"  # type: ignore[index]


def test_chat_update_rewrites_a_streamed_message_like_any_other(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="cut off")["ts"]
    slack.expire_stream(DM, ts)
    client.chat_update(channel=DM, ts=ts, text="the whole answer")
    assert slack.message(DM, ts)["text"] == "the whole answer"  # type: ignore[index]


def test_only_the_apps_own_streams_take_appends(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    append = client.chat_appendStream
    assert _refused(append, channel=DM, ts=thread, markdown_text="x")["error"] == "message_not_owned_by_app"
    assert _refused(append, channel=DM, ts="1.000001", markdown_text="x")["error"] == "message_not_found"
    posted = client.chat_postMessage(channel=DM, thread_ts=thread, text="plain")["ts"]
    assert (
        _refused(append, channel=DM, ts=posted, markdown_text="x")["error"]
        == "message_not_in_streaming_state"
    )
    assert _refused(client.chat_stopStream, channel=DM, ts=thread)["error"] == "message_not_owned_by_app"


def test_chunks_of_every_documented_type_are_kept_in_order(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, chunks=[PlanUpdateChunk(title="Plan")])["ts"]
    task = TaskUpdateChunk(
        id="t1",
        title="Search",
        status="in_progress",
        details="looking",
        sources=[{"type": "url", "url": "https://x.test", "text": "x"}],
    )
    client.chat_appendStream(channel=DM, ts=ts, chunks=[task, MarkdownTextChunk(text="found")])
    client.chat_stopStream(
        channel=DM, ts=ts, chunks=[TaskUpdateChunk(id="t1", title="Search", status="complete")]
    )
    stream = slack.stream(DM, ts)
    assert stream is not None
    assert [c["type"] for c in stream["chunks"]] == [
        "plan_update",
        "task_update",
        "markdown_text",
        "task_update",
    ]
    assert slack.message(DM, ts)["text"] == "found"  # type: ignore[index]


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "thought", "text": "x"},
        {"type": "markdown_text"},
        {"type": "markdown_text", "text": "x" * 12_001},
        {"type": "task_update", "id": "t", "title": "x", "status": "done"},
        {"type": "task_update", "title": "x", "status": "complete"},
        {"type": "plan_update"},
        {"type": "blocks", "blocks": [{"type": "no_such_block"}]},
    ],
)
def test_invalid_chunks_are_refused(slack: SlackFake, chunk: dict[str, Any]) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread)["ts"]
    assert _refused(client.chat_appendStream, channel=DM, ts=ts, chunks=[chunk])["error"] == "invalid_chunks"
    assert (
        _refused(client.chat_startStream, channel=DM, thread_ts=thread, chunks=[chunk])["error"]
        == "invalid_chunks"
    )
    assert slack.stream(DM, ts)["appends"] == 0  # type: ignore[index]


def test_text_limits_and_missing_text(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="x" * 12_000)["ts"]
    refused = _refused(client.chat_appendStream, channel=DM, ts=ts, markdown_text="x" * 12_001)
    assert refused["error"] == "invalid_arguments"
    assert _refused(client.chat_appendStream, channel=DM, ts=ts)["error"] == "no_text"
    assert _refused(client.chat_appendStream, channel=DM, ts=ts, chunks=[])["error"] == "no_text"
    assert len(slack.message(DM, ts)["text"]) == 12_000  # type: ignore[index]


def test_stop_stream_checks_blocks_and_metadata(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_startStream(channel=DM, thread_ts=thread, markdown_text="answer")["ts"]
    bad_button = feedback.buttons("j" * 2000)  # the value grows past 2,000 characters
    refused = _refused(client.chat_stopStream, channel=DM, ts=ts, blocks=[bad_button])
    assert refused["error"] == "invalid_blocks"
    assert any("positive_button/value" in error for error in refused["errors"])
    refused = _refused(client.chat_stopStream, channel=DM, ts=ts, metadata={"event_payload": {}})
    assert refused["error"] == "invalid_metadata_format"
    assert slack.stream(DM, ts)["state"] == "streaming"  # type: ignore[index]


def test_the_sdk_chat_stream_helper_works_end_to_end(slack: SlackFake) -> None:
    """slack-sdk's ``chat_stream()`` buffers, starts, appends only chunks, and stops (possibly empty)."""
    client, thread = _client(slack), _thread(slack)
    streamer = client.chat_stream(channel=DM, thread_ts=thread, buffer_size=4)
    for piece in ("Hel", "lo ", "wor", "ld"):
        streamer.append(markdown_text=piece)
    streamer.stop(blocks=[feedback.buttons("job-2")])
    assert slack.message(DM, streamer.ts)["text"] == "Hello world"  # type: ignore[arg-type,index]
    empty = client.chat_stream(channel=DM, thread_ts=thread)
    empty.stop()
    assert slack.stream(DM, empty.ts)["state"] == "stopped"  # type: ignore[arg-type,index]


def test_start_stream_past_tier_2_gets_429(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    for _ in range(20):
        client.chat_startStream(channel=DM, thread_ts=thread)
    with pytest.raises(SlackApiError) as raised:
        client.chat_startStream(channel=DM, thread_ts=thread)
    assert raised.value.response.status_code == 429 and "Retry-After" in raised.value.response.headers


# -- feedback buttons ----------------------------------------------------------------------------


def test_press_feedback_gives_the_block_actions_payload_of_the_click(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    ts = client.chat_postMessage(
        channel=DM, thread_ts=thread, text="answer", blocks=[feedback.buttons("job-3")]
    )["ts"]
    payload = slack.press_feedback(DM, ts, "bad", user="U0RATER")
    (action,) = payload["actions"]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0RATER"
    assert (action["type"], action["action_id"], action["block_id"]) == (
        "feedback_buttons",
        feedback.ACTION_ID,
        feedback.BLOCK_ID,
    )
    assert feedback.read_value(action["value"]) == ("bad", "job-3")
    assert payload["container"]["message_ts"] == ts and payload["container"]["thread_ts"] == thread
    assert feedback.read_value(slack.press_feedback(DM, ts, "good")["actions"][0]["value"]) == (
        "good",
        "job-3",
    )
    with pytest.raises(LookupError):
        slack.press_feedback(DM, thread, "good")


@pytest.mark.parametrize(
    "element",
    [
        {"type": "feedback_buttons", "action_id": "a" * 256},
        {
            "type": "feedback_buttons",
            "negative_button": {"text": {"type": "mrkdwn", "text": "no"}, "value": "v"},
        },
        {"type": "button", "text": {"type": "plain_text", "text": "x"}},
    ],
)
def test_context_actions_blocks_are_checked(slack: SlackFake, element: dict[str, Any]) -> None:
    good = feedback.buttons("job")["elements"][0]
    block = {"type": "context_actions", "elements": [{**good, **element}]}
    refused = _refused(_client(slack).chat_postMessage, channel=DM, text="answer", blocks=[block])
    assert refused["error"] == "invalid_blocks"
    assert _refused(_client(slack).chat_postMessage, channel=DM, text="a", blocks=[{**block, "elements": []}])


def test_context_actions_take_at_most_five_elements(slack: SlackFake) -> None:
    good = feedback.buttons("job")["elements"][0]
    block = {"type": "context_actions", "elements": [good] * 6}
    assert (
        _refused(_client(slack).chat_postMessage, channel=DM, text="a", blocks=[block])["error"]
        == "invalid_blocks"
    )
    _client(slack).chat_postMessage(channel=DM, text="a", blocks=[{**block, "elements": [good] * 5}])


def test_form_encoded_calls_take_json_arrays(slack: SlackFake) -> None:
    """Slack takes these methods as forms too: arrays then travel as JSON text."""
    client, thread = _client(slack), _thread(slack)
    client.api_call(
        "assistant.threads.setStatus",
        data={
            "channel_id": DM,
            "thread_ts": thread,
            "status": "is reading...",
            "loading_messages": '["a", "b"]',
        },
    )
    assert slack.status(DM, thread) == {"status": "is reading...", "loading_messages": ["a", "b"]}
    ts = client.api_call("chat.startStream", data={"channel": DM, "thread_ts": thread})["ts"]
    client.api_call(
        "chat.appendStream",
        data={"channel": DM, "ts": ts, "chunks": '[{"type": "markdown_text", "text": "hi"}]'},
    )
    refused = _refused(
        client.api_call, api_method="chat.appendStream", data={"channel": DM, "ts": ts, "chunks": "[{}]"}
    )
    assert refused["error"] == "invalid_chunks"
    assert slack.message(DM, ts)["text"] == "hi"  # type: ignore[index]


def test_a_streamed_answers_feedback_buttons_can_be_clicked(slack: SlackFake) -> None:
    client, thread = _client(slack), _thread(slack)
    streamer = client.chat_stream(channel=DM, thread_ts=thread)
    streamer.append(markdown_text="the answer")
    streamer.stop(blocks=[feedback.buttons("job-4")])
    assert streamer.ts is not None
    (action,) = slack.press_feedback(DM, streamer.ts, "good")["actions"]
    assert feedback.read_value(action["value"]) == ("good", "job-4")
