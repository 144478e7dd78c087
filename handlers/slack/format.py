"""Reply text as Slack shows it: escaped, Markdown's common marks turned into Slack mrkdwn, size-capped.

Agents write Markdown (it is what GitHub renders and what LLMs produce), and their text may repeat
whatever the issue or thread they read said. Slack reads ``&``, ``<`` and ``>`` as control
characters (``<!channel>`` pings a channel, ``<@U1>`` a person, ``<url|label>`` is a link), so
agent text is escaped first and can only ever show as written
(https://api.slack.com/reference/surfaces/formatting#escaping). Mentions and links reach Slack
only through the reply's structured fields (``handlers.slack.render``). Slack's mrkdwn otherwise
differs from Markdown: ``*bold*`` not ``**bold**``, no ``#`` headings; a Markdown link is shown as
its label and its address, never as a live link hiding where it goes.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "clip", "clip_mrkdwn", "command_of", "escape", "to_markdown", "to_mrkdwn"]

# chat.postMessage truncates text past 40,000 characters; stay clear of it.
MAX_TEXT = 39_000

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*]\s+", re.MULTILINE)
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` as Slack's entities: shown as written, never parsed."""
    return text.translate(_ESCAPES)


def to_mrkdwn(text: str) -> str:
    """``text`` (Markdown, untrusted) as escaped Slack mrkdwn, capped at ``MAX_TEXT`` characters."""
    text = _LINK.sub(_shown_link, escape(text))
    text = _BOLD.sub(r"*\1*", text)
    text = _HEADING.sub(r"*\1*", text)
    text = _BULLET.sub(r"\1• ", text)
    return clip_mrkdwn(text, MAX_TEXT)


def to_markdown(text: str) -> str:
    """``text`` (Markdown, untrusted) as a stream shows it (``markdown_text``): escaped, and each
    Markdown link shown as its label and its address, like ``to_mrkdwn``; not capped."""
    return _LINK.sub(_shown_link, escape(text))


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clip_mrkdwn(text: str, limit: int) -> str:
    """``clip`` for escaped mrkdwn: never cuts inside an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    return _CUT_ENTITY.sub("", text[: limit - 1]).rstrip() + "…"


def command_of(text: str | None) -> tuple[str, str]:
    """``("status", "rest")`` from ``"<@U0002> status rest"``: the first word, mentions removed."""
    words = _MENTION.sub(" ", text or "").split(maxsplit=1)
    if not words:
        return "", ""
    return words[0].lower().strip(".!?:"), words[1] if len(words) > 1 else ""


def _shown_link(match: re.Match[str]) -> str:
    label, url = match.group(1), match.group(2)
    return url if label == url else f"{label} ({url})"
