"""The fake Slack refuses, truncates and rate-limits what Slack does — driven by the real slack-sdk."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import slack_sdk
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakes import SlackFake
from tests.fakes.slack_rules import rendered


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def _client(fake: SlackFake) -> slack_sdk.WebClient:
    return slack_sdk.WebClient(token=fake.token, base_url=fake.base_url, retry_handlers=[])


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([_section("x")] * 51, "/blocks"),
        ([_section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}], "/blocks/0/elements"),
        ([{"type": "actions", "elements": [{"type": "button"}] * 26}], "/blocks/0/elements"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}], "/blocks/0/fields"),
        ([{"type": "no_such_block"}], "/blocks/0"),
    ],
)
def test_blocks_past_slacks_limits_are_refused_as_invalid_blocks(
    slack: SlackFake, blocks: list[object], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        _client(slack).chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    body = raised.value.response.data
    assert body["error"] == "invalid_blocks" and any(f"[json-pointer:{pointer}]" in e for e in body["errors"])
    assert slack.messages("C1") == []


def test_blocks_within_the_limits_are_stored(slack: SlackFake) -> None:
    blocks = [_section("x" * 3000)] * 50
    ts = _client(slack).chat_postMessage(channel="C1", text="fallback", blocks=blocks)["ts"]
    assert len(slack.message("C1", ts)["blocks"]) == 50  # type: ignore[index]


def test_text_past_40000_characters_is_cut_with_a_warning(slack: SlackFake) -> None:
    answer = _client(slack).chat_postMessage(channel="C1", text="é" * 40_001)
    assert answer["response_metadata"]["warnings"] == ["message_truncated"]
    assert len(slack.message("C1", answer["ts"])["text"]) == 40_000  # type: ignore[index]


def test_a_method_past_its_tier_gets_429_with_retry_after(slack: SlackFake) -> None:
    client = _client(slack)
    ts = client.chat_postMessage(channel="C1", text="x")["ts"]
    for _ in range(50):
        client.chat_update(channel="C1", ts=ts, text="y")
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C1", ts=ts, text="z")
    response = raised.value.response
    assert response.status_code == 429 and response["error"] == "ratelimited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert slack.message("C1", ts)["text"] == "y"  # type: ignore[index]


def test_chat_post_message_is_limited_per_channel() -> None:
    with SlackFake(rate_limits={"chat.postMessage": 2}) as fake:
        client = _client(fake)
        client.chat_postMessage(channel="C1", text="1")
        client.chat_postMessage(channel="C1", text="2")
        client.chat_postMessage(channel="C2", text="other channel")
        with pytest.raises(SlackApiError, match="ratelimited"):
            client.chat_postMessage(channel="C1", text="3")


def _thread(fake: SlackFake, replies: int) -> str:
    parent = fake.seed_message("C1", "parent", ts="1700000000.000000")
    for n in range(1, replies + 1):
        fake.seed_message("C1", f"reply {n}", ts=f"17000000{n:02d}.000000", thread_ts=parent)
    return parent


def test_replies_are_paged_oldest_first_with_a_cursor(slack: SlackFake) -> None:
    parent = _thread(slack, 5)
    client, texts, cursor = _client(slack), [], None
    for _ in range(10):
        page = client.conversations_replies(channel="C1", ts=parent, limit=2, cursor=cursor)
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            assert page["has_more"] is False
            break
    assert texts == ["parent", *(f"reply {n}" for n in range(1, 6))]
    with pytest.raises(SlackApiError, match="invalid_cursor"):
        client.conversations_replies(channel="C1", ts=parent, cursor="not-ours")


def test_replies_honour_oldest_and_any_thread_ts(slack: SlackFake) -> None:
    parent = _thread(slack, 4)
    page = _client(slack).conversations_replies(channel="C1", ts="1700000002.000000", oldest="1700000002.0")
    assert [m["text"] for m in page["messages"]] == ["parent", "reply 3", "reply 4"]
    assert parent == page["messages"][0]["ts"]


def test_replies_show_metadata_only_when_asked(slack: SlackFake) -> None:
    client = _client(slack)
    parent = client.chat_postMessage(channel="C1", text="p")["ts"]
    metadata = {"event_type": "gateway_reply", "event_payload": {"delivery": "x"}}
    client.chat_postMessage(channel="C1", text="r", thread_ts=parent, metadata=metadata)
    plain = client.conversations_replies(channel="C1", ts=parent)["messages"]
    full = client.conversations_replies(channel="C1", ts=parent, include_all_metadata=True)["messages"]
    assert "metadata" not in plain[1] and full[1]["metadata"] == metadata


def test_an_unlisted_app_reads_15_messages_a_page_once_a_minute() -> None:
    with SlackFake(distribution="unlisted") as fake:
        parent = _thread(fake, 20)
        client = _client(fake)
        page = client.conversations_replies(channel="C1", ts=parent, limit=200)
        assert len(page["messages"]) == 15 and page["has_more"] is True
        cursor = page["response_metadata"]["next_cursor"]
        with pytest.raises(SlackApiError) as raised:
            client.conversations_replies(channel="C1", ts=parent, cursor=cursor)
        assert raised.value.response.status_code == 429


def test_a_response_url_takes_five_posts_within_thirty_minutes(slack: SlackFake) -> None:
    url = slack.response_url("R1")
    statuses = [WebhookClient(url).send_dict({"text": str(n)}).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    old = slack.response_url("R2", issued_at=time.time() - 31 * 60)
    expired = WebhookClient(old).send_dict({"text": "late"})
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert len(slack.responses("R1")) == 5 and slack.responses("R2") == []


def test_rendering_reads_control_sequences_and_entities_as_slack_does() -> None:
    raw = rendered("see <!channel> <@U1> <https://x.test|here> Vec<String> a &amp; b")
    assert raw.broadcasts == ("channel",) and raw.mentions == ("U1",)
    assert ("https://x.test", "here") in raw.links and "Vec<String>" not in raw.display
    escaped = rendered("Vec&lt;String&gt; &lt;!channel&gt; a &amp; b")
    assert escaped.display == "Vec<String> <!channel> a & b"
    assert escaped.broadcasts == () and escaped.links == ()
