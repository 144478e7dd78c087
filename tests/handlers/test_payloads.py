"""Session keys and events from each platform's payload module, read from the recorded fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from handlers.github import payload as github
from handlers.slack import payload as slack
from handlers.state.sessions import build_key
from handlers.stripe import payload as stripe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _envelope(
    platform: str,
    name: str,
    event: str,
    *,
    meta: dict[str, Any],
    action: str | None = None,
    form: bool = False,
) -> dict[str, Any]:
    raw = (FIXTURES / platform / f"{name}.body").read_text()
    payload = json.loads(parse_qs(raw)["payload"][0]) if form else json.loads(raw)
    return {
        "platform": platform,
        "delivery_id": "d-1",
        "event": event,
        "action": action,
        "received_at": "2026-11-22T11:00:00+00:00",
        "payload": payload,
        "meta": meta,
    }


def test_slack_thread_reply_shares_the_thread_session() -> None:
    envelope = _envelope(
        "slack", "app_mention.thread", "app_mention", meta={"kind": "event", "team_id": "T0001"}
    )
    assert slack.session_key(envelope) == "slack:T0001:C0001:1795345260.000200"  # type: ignore[arg-type]
    event = slack.to_event(envelope)  # type: ignore[arg-type]
    assert event.actor == "<@U0001>" and "summarise this thread" in (event.text or "")
    assert not slack.is_ignored(event)


def test_slack_bot_messages_are_ignored() -> None:
    envelope = _envelope("slack", "message.im.bot", "message.im", meta={"kind": "event", "team_id": "T0001"})
    assert slack.is_ignored(slack.to_event(envelope))  # type: ignore[arg-type]


def test_slack_button_belongs_to_its_message_thread() -> None:
    envelope = _envelope(
        "slack", "block_actions", "block_actions", form=True, meta={"kind": "interactive", "team_id": "T0001"}
    )
    assert slack.session_key(envelope) == "slack:T0001:C0001:1795345500.000800"  # type: ignore[arg-type]


def test_slack_assistant_events_belong_to_their_assistant_thread() -> None:
    """Both agent-container events, and a direct message in that thread, share one session."""
    meta = {"kind": "event", "team_id": "T0001"}
    started = _envelope("slack", "assistant_thread_started", "assistant_thread_started", meta=meta)
    changed = _envelope(
        "slack", "assistant_thread_context_changed", "assistant_thread_context_changed", meta=meta
    )
    message = _envelope("slack", "message.im", "message.im", meta=meta)
    message["payload"]["event"]["thread_ts"] = "1795345400.000100"
    keys = {slack.session_key(e) for e in (started, changed, message)}  # type: ignore[arg-type]
    assert keys == {"slack:T0001:D0001:1795345400.000100"}
    thread = slack.assistant_thread(changed)  # type: ignore[arg-type]
    assert thread == slack.AssistantThread(
        channel="D0001",
        thread_ts="1795345400.000100",
        user="U0001",
        context={"channel_id": "C0003", "team_id": "T0001"},  # enterprise_id is null: left out
        event_ts="1795345460.000300",
    )
    assert slack.assistant_thread(message) is None  # type: ignore[arg-type]


def test_slack_assistant_event_without_a_thread_is_not_read_as_one() -> None:
    envelope = _envelope(
        "slack", "assistant_thread_started", "assistant_thread_started", meta={"kind": "event"}
    )
    envelope["payload"]["event"]["assistant_thread"] = {"channel_id": "D0001", "thread_ts": 17}
    assert slack.assistant_thread(envelope) is None  # type: ignore[arg-type]


def test_slack_feedback_click_names_its_run_rating_user_and_time() -> None:
    envelope = _envelope(
        "slack",
        "block_actions.feedback",
        "block_actions",
        form=True,
        meta={"kind": "interactive", "team_id": "T0001"},
        action="gateway_feedback",
    )
    assert slack.is_feedback(envelope)  # type: ignore[arg-type]
    assert slack.feedback_click(envelope) == slack.FeedbackClick(  # type: ignore[arg-type]
        job_id="slack-Ev0001AM0001", rating="good", user="U0001", at="2026-11-22T11:01:30.112233+00:00"
    )
    # Not a follow-up nor a Stop of the conversation's run.
    assert slack.followup(envelope, "stop") is None  # type: ignore[arg-type]


def test_slack_stop_and_other_buttons_are_no_feedback() -> None:
    meta = {"kind": "interactive", "team_id": "T0001"}
    for name in ("block_actions", "block_actions.stop"):
        envelope = _envelope("slack", name, "block_actions", form=True, meta=meta)
        assert not slack.is_feedback(envelope) and slack.feedback_click(envelope) is None  # type: ignore[arg-type]


def test_slack_feedback_click_with_a_foreign_value_or_no_time_is_read_carefully() -> None:
    meta = {"kind": "interactive", "team_id": "T0001"}
    envelope = _envelope("slack", "block_actions.feedback", "block_actions", form=True, meta=meta)
    action = envelope["payload"]["actions"][0]
    action["action_ts"] = "soon"
    click = slack.feedback_click(envelope)  # type: ignore[arg-type]
    assert click is not None and click.at == envelope["received_at"]
    action["value"] = "meh:slack-Ev1"
    assert slack.is_feedback(envelope) and slack.feedback_click(envelope) is None  # type: ignore[arg-type]


def test_github_issue_comment_and_issue_share_a_session() -> None:
    comment = _envelope("github", "issue_comment.created", "issue_comment", meta={})
    payload = comment["payload"]
    key = github.session_key(comment)  # type: ignore[arg-type]
    assert key == build_key("github", payload["repository"]["id"], payload["issue"]["number"])
    event = github.to_event(comment)  # type: ignore[arg-type]
    assert (
        event.actor == "Codertocat"
        and event.subject
        and event.subject.endswith(f"#{payload['issue']['number']}")
    )


def test_github_push_uses_the_repository_session() -> None:
    push = _envelope("github", "push", "push", meta={})
    assert github.session_key(push) == build_key("github", push["payload"]["repository"]["id"])  # type: ignore[arg-type]


def test_stripe_sessions_are_per_account_and_customer() -> None:
    invoice = _envelope(
        "stripe",
        "invoice.payment_failed",
        "invoice.payment_failed",
        meta={"kind": "snapshot", "account": None},
    )
    assert stripe.session_key(invoice) == "stripe:platform:customer:cus_00000000000000"  # type: ignore[arg-type]
    connect = dict(invoice, meta={"kind": "snapshot", "account": "acct_1"})
    assert stripe.session_key(connect) != stripe.session_key(invoice)  # type: ignore[arg-type]
    thin = _envelope(
        "stripe",
        "v1.billing.meter.error_report_triggered",
        "v1.billing.meter.error_report_triggered",
        meta={"kind": "thin", "account": "acct_123", "related_object": {"id": "mtr_123"}},
    )
    assert stripe.session_key(thin) == "stripe:acct_123:object:mtr_123"  # type: ignore[arg-type]
