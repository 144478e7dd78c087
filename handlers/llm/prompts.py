"""System prompts (one default per platform, or ``LLM_SYSTEM_PROMPT``) and the event as a user message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handlers.agent import Event, Turn
from handlers.llm.memory import ESTIMATOR, TokenEstimator, history_messages

OBJECT_LIMIT = 4000  # characters of a Stripe object or of enriched facts quoted in the first message

_COMMON = (
    "You are an AI teammate that answers through a webhook gateway. Your answer is posted for you "
    "as one reply; the tools only read, they cannot change anything. Use a tool when the answer "
    "depends on data you do not have, and do not invent facts you did not read. Be concise and "
    "concrete. Never repeat secrets, tokens or keys that appear in data."
)

DEFAULT_PROMPTS: dict[str, str] = {
    "slack": _COMMON
    + " You were mentioned in Slack. When the question refers to the conversation, read the thread "
    "with slack_thread first. Answer in a few short paragraphs or bullets using Slack mrkdwn.",
    "github": _COMMON
    + " On GitHub you review pull requests and answer issues and comments. For a pull request, read "
    "its changed files and diff (github_pull_files), and files at the head when you need context "
    "(github_file); name file and line for each finding and lead with what matters most. For an "
    "issue, read it with its comments (github_issue). Answer in GitHub Markdown.",
    "stripe": _COMMON
    + " For Stripe you explain payment events to the support and finance team: why a payment failed, "
    "what a dispute means, what to do and by when. Look up the customer, their recent charges, "
    "invoices and subscription with the tools. Amounts are in the currency's smallest unit "
    "(cents). Answer in plain text with short bullets.",
}


def system_prompt(platform: str, configured: str | None = None) -> str:
    """``configured`` (``LLM_SYSTEM_PROMPT``) if set, else the platform's default."""
    return configured or DEFAULT_PROMPTS.get(platform, _COMMON)


def event_message(event: Event) -> str:
    """What happened, for the model: platform, event, who, on what, the words, and known facts."""
    what = event.name + (f".{event.action}" if event.action else "")
    lines = [f"Platform: {event.platform}", f"Event: {what}"]
    lines += [f"{label}: {value}" for label, value in _labels(event) if value]
    obj = _stripe_object(event)
    if obj:
        lines.append("Event object (JSON): " + _capped_json(obj))
    facts = event.facts  # what the platform module fetched before the run, if anything
    if facts:
        lines.append("Known facts (JSON): " + _capped_json(facts))
    if event.text:
        lines.append("Message:\n" + event.text)
    return "\n".join(lines)


def build_messages(
    event: Event,
    history: Sequence[Turn],
    *,
    configured_prompt: str | None,
    history_tokens: int,
    estimator: TokenEstimator = ESTIMATOR,
) -> list[dict[str, Any]]:
    """The opening conversation: system prompt, trimmed history, then this event."""
    return [
        {"role": "system", "content": system_prompt(event.platform, configured_prompt)},
        *history_messages(history, budget=history_tokens, estimator=estimator),
        {"role": "user", "content": event_message(event)},
    ]


def _labels(event: Event) -> list[tuple[str, str | None]]:
    return [("From", event.actor), ("About", event.subject), ("Title", event.title)]


def _stripe_object(event: Event) -> dict[str, Any] | None:
    if event.platform != "stripe":
        return None
    data = event.payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else None


def _capped_json(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= OBJECT_LIMIT else text[:OBJECT_LIMIT] + "…[cut]"
