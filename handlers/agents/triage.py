"""The ``triage`` agent: a plain summary of the event, built from the envelope alone.

No LLM and no API calls: it says what happened, who did it, to what, and quotes the title and
the start of the text. A later issue enriches it through the platform APIs.
"""

from __future__ import annotations

from handlers.agent import Event, Reply, Run

_QUOTE_LIMIT = 280


async def agent(event: Event, run: Run) -> Reply:
    """Summarise ``event`` in one or two sentences; mention earlier turns of the session."""
    return Reply(text=summarise(event, earlier=len(run.history)))


def summarise(event: Event, *, earlier: int = 0) -> str:
    """``"GitHub issues.opened by octocat on org/repo#1: “Title”. Body…"``."""
    what = event.name + (f".{event.action}" if event.action and event.action not in event.name else "")
    parts = [f"{_PLATFORM_NAMES.get(event.platform, event.platform)} {what}"]
    if event.actor:
        parts.append(f"by {event.actor}")
    if event.subject:
        parts.append(f"on {event.subject}")
    line = " ".join(parts)
    if event.title:
        line += f": “{event.title}”"
    line += "."
    if event.text:
        line += " " + _shorten(event.text)
    if earlier:
        line += f" ({earlier} earlier message{'s' if earlier != 1 else ''} in this conversation.)"
    return line


_PLATFORM_NAMES = {"slack": "Slack", "github": "GitHub", "stripe": "Stripe"}


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUOTE_LIMIT else flat[: _QUOTE_LIMIT - 1].rstrip() + "…"
