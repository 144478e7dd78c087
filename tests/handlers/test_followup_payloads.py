"""Which deliveries are follow-ups, as each platform reads them from the recorded fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from handlers import registry
from handlers.config import FollowUpSettings
from handlers.state.replies import hidden_marker

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
OFF, ON = FollowUpSettings(), FollowUpSettings(allow_bots=True)


def _envelope(
    platform: str, name: str, event: str, *, kind: str, action: str | None = None
) -> dict[str, Any]:
    raw = (FIXTURES / platform / f"{name}.body").read_text()
    payload = json.loads(parse_qs(raw)["payload"][0]) if raw.startswith("payload=") else json.loads(raw)
    return {
        "platform": platform,
        "delivery_id": "d-1",
        "event": event,
        "action": action if action is not None else payload.get("action"),
        "received_at": "2026-11-22T11:00:00+00:00",
        "payload": payload,
        "meta": {"kind": kind, "team_id": "T0001"},
    }


def _slack(name: str, event: str, kind: str = "event", **inner: Any) -> dict[str, Any]:
    envelope = _envelope("slack", name, event, kind=kind)
    envelope["payload"].get("event", {}).update(inner)
    return envelope


def _comment(body: str, **sender: Any) -> dict[str, Any]:
    envelope = _envelope("github", "issue_comment.created", "issue_comment", kind="json")
    envelope["payload"]["comment"]["body"] = body
    envelope["payload"]["sender"].update(sender)
    return envelope


def test_a_slack_mention_in_a_thread_is_a_follow_up_without_the_mention() -> None:
    followup = registry.followup(_slack("app_mention.thread", "app_mention"), settings=OFF)
    assert followup is not None and not followup.stop
    message = followup.message
    assert message.text == "can you summarise this thread?" and message.actor == "<@U0001>"
    assert (message.platform, message.delivery_id) == ("slack", "d-1")


@pytest.mark.parametrize("text", ["<@U0002> stop", "<@U0002>  Stop ", "stop"])
def test_a_slack_message_that_is_only_the_stop_word_stops(text: str) -> None:
    followup = registry.followup(_slack("app_mention.thread", "app_mention", text=text), settings=OFF)
    assert followup is not None and followup.stop and followup.target is None


def test_the_stop_word_is_a_setting() -> None:
    envelope = _slack("app_mention.thread", "app_mention", text="<@U0002> halt")
    assert registry.followup(envelope, settings=FollowUpSettings(stop_word="halt")).stop  # type: ignore[union-attr]
    assert not registry.followup(envelope, settings=OFF).stop  # type: ignore[union-attr]


def test_the_stop_button_names_the_run_it_stops() -> None:
    envelope = _envelope(
        "slack", "block_actions.stop", "block_actions", kind="interactive", action="gateway_stop"
    )
    followup = registry.followup(envelope, settings=OFF)
    assert followup is not None and followup.stop and followup.target == "slack-Ev0001AM0001"
    assert followup.message.actor == "<@U0001>"
    other = _envelope("slack", "block_actions", "block_actions", kind="interactive", action="approve_button")
    assert registry.followup(other, settings=OFF) is None


def test_our_own_slack_messages_never_are_follow_ups_even_with_bots_allowed() -> None:
    own = _slack("message.im.bot", "message.im")
    assert registry.followup(own, settings=OFF) is None and registry.followup(own, settings=ON) is None


def test_other_slack_bots_are_follow_ups_only_when_allowed() -> None:
    bot = _slack("app_mention.thread", "app_mention", bot_id="B0OTHER", user="U0OTHER")
    assert registry.followup(bot, settings=OFF) is None
    assert registry.followup(bot, settings=ON) is not None


def test_a_github_comment_is_a_follow_up_and_slash_stop_stops() -> None:
    followup = registry.followup(_comment("Only look at the parser, please."), settings=OFF)
    assert followup is not None and not followup.stop
    assert (
        followup.message.text == "Only look at the parser, please." and followup.message.actor == "Codertocat"
    )
    assert registry.followup(_comment("/stop"), settings=OFF).stop  # type: ignore[union-attr]
    assert not registry.followup(_comment("stop"), settings=OFF).stop  # type: ignore[union-attr]


def test_github_events_that_are_not_comments_are_not_follow_ups() -> None:
    opened = _envelope("github", "issues.opened", "issues", kind="json")
    assert registry.followup(opened, settings=OFF) is None


def test_our_own_github_comments_and_bots_are_not_follow_ups() -> None:
    ours = _comment("An answer.\n\n" + hidden_marker("github-abc"), login="fake-user", type="User")
    assert registry.followup(ours, settings=ON) is None
    bot = _comment("Coverage went down", login="codecov[bot]", type="Bot")
    assert registry.followup(bot, settings=OFF) is None and registry.followup(bot, settings=ON) is not None


def test_an_api_request_is_a_follow_up_of_its_session() -> None:
    envelope = {
        "platform": "api",
        "delivery_id": "k-1",
        "event": "run",
        "action": None,
        "received_at": "2026-11-22T11:00:00+00:00",
        "payload": {"text": "STOP", "session_id": "web-1"},
        "meta": {},
    }
    followup = registry.followup(envelope, settings=OFF)
    assert followup is not None and followup.stop and followup.message.actor is None


def test_stripe_events_are_never_follow_ups() -> None:
    invoice = _envelope("stripe", "invoice.payment_failed", "invoice.payment_failed", kind="snapshot")
    assert registry.followup(invoice, settings=ON) is None
