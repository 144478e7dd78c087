"""The built-in triage agent: a pure function of the event and its facts."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.agent import Event
from handlers.agents.stripe_alert import dashboard_link, format_amount, stripe_alert
from handlers.agents.triage import pull_summary, respond, suggest_labels, touched_areas


def _event(platform: str, name: str, **fields: Any) -> Event:
    base: dict[str, Any] = {"action": None, "received_at": "2026-01-01T00:00:00+00:00", "session_key": "s"}
    return Event(platform=platform, delivery_id="d1", name=name, **(base | fields))


@pytest.mark.parametrize(
    ("title", "body", "labels"),
    [
        ("App crashes on start", "", ["bug"]),
        ("Feature request: dark mode", "", ["enhancement"]),
        ("Typo in README", "", ["documentation"]),
        ("How do I configure it?", "", ["question"]),
        ("Error in the docs", "how to fix?", ["bug", "documentation", "question"]),
        ("Bump version", "nothing else", []),
        ("Debugging session", "errorless", []),  # whole words only
    ],
)
def test_issue_label_rules(title: str, body: str, labels: list[str]) -> None:
    assert suggest_labels(title, body) == labels


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "usd", "$12.34"),
        (500, "jpy", "¥500"),
        (1234567, "eur", "€12,345.67"),
        (1500, "kwd", "1.500 KWD"),
        (999, "chf", "9.99 CHF"),
    ],
)
def test_amounts_follow_the_currencys_decimals(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


def test_dashboard_links_follow_mode_and_type() -> None:
    event = _event("stripe", "invoice.paid", meta={"livemode": True})
    assert dashboard_link({"object": "invoice", "id": "in_1", "livemode": True}, event) == (
        "https://dashboard.stripe.com/invoices/in_1"
    )
    assert dashboard_link({"object": "payment_intent", "id": "pi_1", "livemode": False}, event) == (
        "https://dashboard.stripe.com/test/payments/pi_1"
    )
    assert (
        dashboard_link({"object": "billing.meter", "id": "m"}, event)
        == "https://dashboard.stripe.com/events/d1"
    )


def test_stripe_alert_prefers_the_fetched_state_over_the_snapshot() -> None:
    snapshot = {"data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "processing"}}}
    fetched = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 500,
        "currency": "usd",
    }
    text = stripe_alert(
        _event("stripe", "payment_intent.processing", payload=snapshot, facts={"object": fetched})
    )
    assert text is not None and "Status: succeeded" in text and "Amount: $5.00" in text


def test_pull_summary_counts_files_lines_and_areas() -> None:
    files = [
        {"filename": "a/x.py", "status": "modified", "additions": 1, "deletions": 2},
        {"filename": "b/y.py", "status": "added", "additions": 10, "deletions": 0},
        {"filename": "setup.cfg", "status": "modified", "additions": 1, "deletions": 1},
    ]
    pull = {
        "number": 7,
        "title": "T",
        "additions": 12,
        "deletions": 3,
        "files": files,
        "head": "f",
        "base": "main",
    }
    text = pull_summary(pull)
    assert text.splitlines()[:3] == [
        "**Pull request #7: T**",
        "3 files changed, +12 −3, `f` → `main`",
        "Areas: `a/`, `b/`, `setup.cfg`",
    ]
    assert text.splitlines()[3] == "- `b/y.py` (added, +10 −0)", "largest change first"
    assert touched_areas(["x/y/z", "x/q", "r"]) == ["r", "x/"]


def test_issue_reply_suggests_only_labels_not_already_set() -> None:
    event = _event(
        "github", "issues", action="opened", title="Crash in docs build", text="see the readme",
        facts={"issue": {"title": "Crash in docs build", "labels": ["bug"]}},
    )  # fmt: skip
    assert respond(event).endswith("Suggested labels: `documentation`")


def test_slack_commands() -> None:
    help_text = respond(_event("slack", "app_mention", text="<@U0002> help"))
    assert "`status`" in help_text
    status = {"queued": 3, "running": 2, "retrying": 1, "failed": 0, "workers": 4}
    assert respond(_event("slack", "app_mention", text="<@U0002> status", facts={"status": status})) == (
        "*Queue*: 3 waiting, 2 running, 1 waiting to retry, 0 failed. *Workers*: 4 live."
    )
    echo = respond(_event("slack", "message.im", text="deploy broke?", actor="<@U1>"))
    assert echo.startswith("You said: “deploy broke?”.\nI understood: Slack message.im by <@U1>")
