"""The system prompt (common words plus the platform's own, or ``LLM_SYSTEM_PROMPT``) and the event
as a user message. Each platform's words and notes come from its package (``WorkerPlatform.prompt``
and ``.notes``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handlers.agent import Event, Turn
from handlers.llm.memory import ESTIMATOR, TokenEstimator, history_messages

__all__ = ["OBJECT_LIMIT", "build_messages", "capped_json", "event_message", "system_prompt"]

OBJECT_LIMIT = 4000  # characters of a Stripe object or of enriched facts quoted in the first message

_COMMON = (
    "You are an AI teammate that answers through a webhook gateway. Your answer is posted for you "
    "as one reply; the tools only read, they cannot change anything. Use a tool when the answer "
    "depends on data you do not have, and do not invent facts you did not read. Be concise and "
    "concrete. Never repeat secrets, tokens or keys that appear in data."
)


def system_prompt(platform_prompt: str = "", configured: str | None = None) -> str:
    """``configured`` (``LLM_SYSTEM_PROMPT``) if set, else the common words and the platform's own."""
    return configured or " ".join(part for part in (_COMMON, platform_prompt) if part)


def event_message(event: Event, notes: Sequence[str] = ()) -> str:
    """What happened, for the model: platform, event, who, on what, the platform's ``notes`` (its
    event object), known facts and the words."""
    what = event.name + (f".{event.action}" if event.action else "")
    lines = [f"Platform: {event.platform}", f"Event: {what}"]
    lines += [f"{label}: {value}" for label, value in _labels(event) if value]
    lines += notes
    facts = event.facts  # what the platform module fetched before the run, if anything
    if facts:
        lines.append("Known facts (JSON): " + capped_json(facts))
    if event.text:
        lines.append("Message:\n" + event.text)
    return "\n".join(lines)


def build_messages(
    event: Event,
    history: Sequence[Turn],
    *,
    configured_prompt: str | None,
    history_tokens: int,
    platform_prompt: str = "",
    notes: Sequence[str] = (),
    estimator: TokenEstimator = ESTIMATOR,
) -> list[dict[str, Any]]:
    """The opening conversation: system prompt, trimmed history, then this event."""
    return [
        {"role": "system", "content": system_prompt(platform_prompt, configured_prompt)},
        *history_messages(history, budget=history_tokens, estimator=estimator),
        {"role": "user", "content": event_message(event, notes)},
    ]


def _labels(event: Event) -> list[tuple[str, str | None]]:
    return [("From", event.actor), ("About", event.subject), ("Title", event.title)]


def capped_json(value: Any) -> str:
    """Compact JSON of ``value``, cut at ``OBJECT_LIMIT`` characters."""
    text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= OBJECT_LIMIT else text[:OBJECT_LIMIT] + "…[cut]"
