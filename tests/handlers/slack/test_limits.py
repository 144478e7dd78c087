"""Slack answers within what Slack demands: escaping, structured mentions, Block Kit limits,
response_url uses and expiry — real slack-sdk against the fake that enforces them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from slack_sdk.webhook import WebhookClient

from gateway.types import Envelope
from handlers.slack import handle
from handlers.state import runs
from tests.e2e.support import Ingress, recording, with_form_fields, with_json
from tests.fakes import SlackFake
from tests.fakes.slack_rules import rendered

CHANNEL, THREAD = "C0001", "1795345212.000100"
COMMAND_JOB = "slack-13345224609_2e738474920_2e8088930838d88f008e0"
RUN_ID = "slack-13345224609.738474920.8088930838d88f008e0"  # handle() outside a worker: the plain id


@pytest.fixture
def slack(slack: SlackFake, monkeypatch: pytest.MonkeyPatch) -> SlackFake:
    # The placeholder path (SLACK_STREAM=off); streamed answers: tests/handlers/slack/test_stream.py.
    monkeypatch.setenv("SLACK_STREAM", "off")
    return slack


def _answer(gateway: Ingress, slack: SlackFake, **script: Any) -> dict[str, Any]:
    """Run the recorded mention with a ``tests.agents:scripted`` script; return the one answer."""
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=script)) == 200
    asyncio.run(handle(gateway.envelope("slack-Ev0001AM0001")))
    (answer,) = [m for m in slack.messages(CHANNEL) if m.get("thread_ts") == THREAD]
    return answer


def test_agent_text_reaches_slack_escaped_so_it_pings_mentions_and_links_nothing(
    slack: SlackFake, gateway: Ingress
) -> None:
    said = (
        "Heads up <!channel> <@U0009>: see [the docs](https://evil.test/x), <https://evil.test|here>;"
        " Vec<String> & co"
    )
    shown = rendered(_answer(gateway, slack, reply=said)["text"])
    assert shown.broadcasts == () and shown.mentions == () and shown.links == ()
    assert "Heads up <!channel> <@U0009>: see the docs (https://evil.test/x)" in shown.display
    assert "<https://evil.test|here>; Vec<String> & co" in shown.display


def test_mentions_pings_and_links_the_reply_asks_for_structurally_are_rendered(
    slack: SlackFake, gateway: Ingress
) -> None:
    asked = {
        "mentions": ["U0009", "S0ONCALL"],
        "notify": "here",
        "links": [{"url": "https://ci.example/run/7", "text": "run <7> & logs"}],
    }
    text = _answer(gateway, slack, reply="The build is fixed.", data={"slack": asked})["text"]
    shown = rendered(text)
    assert shown.mentions == ("U0009",) and shown.groups == ("S0ONCALL",) and shown.broadcasts == ("here",)
    assert shown.links == (("https://ci.example/run/7", "run &lt;7&gt; &amp; logs"),)
    assert "The build is fixed." in shown.display and "run <7> & logs" in shown.display


def test_malformed_structured_fields_are_left_out(slack: SlackFake, gateway: Ingress) -> None:
    asked = {"mentions": ["U1> <!channel"], "notify": "all", "links": [{"url": "javascript:alert(1)"}]}
    shown = rendered(_answer(gateway, slack, reply="ok", data={"slack": asked})["text"])
    assert shown.broadcasts == () and shown.mentions == () and shown.links == ()


def test_a_slash_commands_words_are_escaped_in_the_answers_header(slack: SlackFake, gateway: Ingress) -> None:
    rec = recording("slack", "slash_command")
    body = with_form_fields(rec.body, text="ping <!everyone> please", response_url=slack.response_url("R1"))
    assert gateway.post_recording(rec, body=body) == 200
    asyncio.run(handle(gateway.envelope(COMMAND_JOB)))
    (answer,) = slack.messages(CHANNEL)
    shown = rendered(answer["text"])
    assert shown.mentions == ("U0001",) and shown.broadcasts == ()
    assert shown.display.startswith("@U0001 `/triage ping <!everyone> please`")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    "blocks",
    [
        [_section("one of too many")] * 51,
        [_section("x" * 3001)],
        [{"type": "a_block_slack_does_not_have"}],  # past our check; Slack refuses it: text again
    ],
)
@pytest.mark.parametrize("key", ["slack_blocks", "slack"])
def test_blocks_slack_would_refuse_give_way_to_the_text(
    slack: SlackFake, gateway: Ingress, blocks: list[dict[str, Any]], key: str
) -> None:
    data = {"slack_blocks": blocks} if key == "slack_blocks" else {"slack": {"blocks": blocks}}
    answer = _answer(gateway, slack, reply="The answer, as text.", data=data)
    assert answer["text"] == "The answer, as text."
    # None of the agent's blocks. Blocks our check refuses: the text as a section with the feedback
    # buttons (SLACK_FEEDBACK); blocks only Slack refuses: the text alone, sent again without blocks.
    shown = [(block["type"], block.get("text", {}).get("text")) for block in answer.get("blocks", [])]
    refused_by_slack = blocks[0]["type"] == "a_block_slack_does_not_have"
    assert shown == (
        [] if refused_by_slack else [("section", "The answer, as text."), ("context_actions", None)]
    )


def test_blocks_within_the_limits_are_sent_with_the_text_as_fallback(
    slack: SlackFake, gateway: Ingress
) -> None:
    blocks = [_section("*Summary*")] * 50
    answer = _answer(gateway, slack, reply="Summary", data={"slack_blocks": blocks})
    assert answer["blocks"] == blocks and answer["text"] == "Summary"


def _slash_command(gateway: Ingress, slack: SlackFake, *, minutes_ago: float) -> Envelope:
    """The recorded slash command, received ``minutes_ago``, its response_url issued then too."""
    rec = recording("slack", "slash_command")
    issued = time.time() - minutes_ago * 60
    body = with_form_fields(rec.body, response_url=slack.response_url("R9", issued_at=issued))
    assert gateway.post_recording(rec, body=body) == 200
    envelope = gateway.envelope(COMMAND_JOB)
    envelope["received_at"] = datetime.fromtimestamp(issued, UTC).isoformat()
    return envelope


def test_an_expired_response_url_is_not_used_and_the_answer_goes_in_the_channel(
    slack: SlackFake, gateway: Ingress
) -> None:
    envelope = _slash_command(gateway, slack, minutes_ago=31)
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "not_in_channel"})
    asyncio.run(handle(envelope))  # the placeholder could not be posted; the bot was invited since
    assert slack.calls("POST", "/response/*") == []
    (answer,) = slack.messages(CHANNEL)
    assert "done" in answer["text"]


def test_an_expired_response_url_and_no_way_into_the_channel_is_recorded(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    envelope = _slash_command(gateway, slack, minutes_ago=45)
    slack.fail_next("POST", "/chat.postMessage", 200, times=2, body={"ok": False, "error": "not_in_channel"})
    result = asyncio.run(handle(envelope))
    assert result["status"] == "succeeded" and slack.calls("POST", "/response/*") == []
    record = runs.get_run(redis_client, RUN_ID)
    assert record is not None and "response_url expired" in record["undelivered"]
    assert "not_in_channel" in record["undelivered"]


def test_a_response_url_used_five_times_is_not_used_again(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    envelope = _slash_command(gateway, slack, minutes_ago=1)
    redis_client.hset(f"gateway:reply:{RUN_ID}", "slack_response_uses", 5)
    slack.fail_next("POST", "/chat.postMessage", 200, times=2, body={"ok": False, "error": "not_in_channel"})
    asyncio.run(handle(envelope))
    assert slack.calls("POST", "/response/*") == []
    record = runs.get_run(redis_client, RUN_ID)
    assert record is not None and "used 5 times" in record["undelivered"]


def test_a_fresh_response_url_is_used_and_its_use_counted(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    envelope = _slash_command(gateway, slack, minutes_ago=2)
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "not_in_channel"})
    asyncio.run(handle(envelope))
    (response,) = slack.responses("R9")
    assert "done" in response["text"]
    assert redis_client.hget(f"gateway:reply:{RUN_ID}", "slack_response_uses") == b"1"


def test_a_response_url_slack_refuses_after_all_gives_way_to_the_channel(
    slack: SlackFake, gateway: Ingress
) -> None:
    """Our count says it is usable, Slack says it is used up: the answer goes in the channel."""
    envelope = _slash_command(gateway, slack, minutes_ago=1)
    for n in range(5):
        assert WebhookClient(slack.response_url("R9")).send_dict({"text": str(n)}).status_code == 200
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "not_in_channel"})
    asyncio.run(handle(envelope))
    assert [c.status for c in slack.calls("POST", "/response/*")][-1] == 404
    (answer,) = slack.messages(CHANNEL)
    assert "done" in answer["text"]
