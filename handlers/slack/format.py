"""Reply text as Slack shows it: Markdown's common marks turned into Slack mrkdwn, size-capped.

Agents write Markdown (it is what GitHub renders and what LLMs produce). Slack's mrkdwn differs:
``*bold*`` not ``**bold**``, ``<url|text>`` not ``[text](url)``, no ``#`` headings.
https://api.slack.com/reference/surfaces/formatting
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "clip", "command_of", "to_mrkdwn"]

# chat.postMessage truncates text past 40,000 characters; stay clear of it.
MAX_TEXT = 39_000

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*]\s+", re.MULTILINE)


def to_mrkdwn(text: str) -> str:
    """``text`` (Markdown) as Slack mrkdwn, capped at ``MAX_TEXT`` characters."""
    text = _LINK.sub(r"<\2|\1>", text)
    text = _BOLD.sub(r"*\1*", text)
    text = _HEADING.sub(r"*\1*", text)
    text = _BULLET.sub(r"\1• ", text)
    return clip(text, MAX_TEXT)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def command_of(text: str | None) -> tuple[str, str]:
    """``("status", "rest")`` from ``"<@U0002> status rest"``: the first word, mentions removed."""
    words = _MENTION.sub(" ", text or "").split(maxsplit=1)
    if not words:
        return "", ""
    return words[0].lower().strip(".!?:"), words[1] if len(words) > 1 else ""
