"""A ``Reply`` as a Slack message: escaped text, plus the mentions, pings, links and blocks the agent
asked for through ``Reply.data["slack"]``, the only way any of them reach Slack.

Agent text may carry what an issue or a thread said, so it is escaped (``format.to_mrkdwn``): a
``<!channel>`` in it shows as written and pings nobody. ``Reply.data["slack"]``, every field
optional, each checked here (what does not fit is left out and named in ``Message.dropped``):

- ``mentions``: user ids (``U…``, ``W…``) and user-group ids (``S…``), mentioned at the start;
- ``notify``: ``"here"``, ``"channel"`` or ``"everyone"``, a channel ping at the start;
- ``links``: ``[{"url": "https://…", "text": "label"}]``, one live link a line at the end;
- ``blocks``: Block Kit blocks, sent when within Slack's limits (``handlers.slack.blocks``),
  with the text as their fallback. ``Reply.data["slack_blocks"]`` (the earlier name) still works.

A streamed answer is Markdown (``markdown``: the reply's text escaped the same way, so a streamed
``<!channel>`` pings nobody either, and its links shown with their address); it is the answer of
record only when the reply asks for none of the extras above. ``with_feedback`` puts the
feedback buttons (``handlers.slack.feedback``) under a final answer, within Slack's 50 blocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.agent import Reply
from handlers.slack import blocks as block_kit
from handlers.slack import feedback
from handlers.slack.format import MAX_TEXT, escape, to_markdown, to_mrkdwn

__all__ = [
    "MAX_LINKS",
    "MAX_MENTIONS",
    "METADATA_TYPE",
    "Message",
    "markdown",
    "message",
    "metadata",
    "with_feedback",
]

METADATA_TYPE = "gateway_reply"
"""Message metadata type of a delivery's answer (and its placeholder): ``{"delivery": job id}``."""
_SECTION_TEXT = 3000
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")

MAX_MENTIONS, MAX_LINKS = 20, 10
_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_GROUP = re.compile(r"S[A-Z0-9]{2,20}")
_URL = re.compile(r"https?://[^\s<>|]{1,2000}")
_NOTIFY = frozenset({"here", "channel", "everyone"})


@dataclass(frozen=True)
class Message:
    """What is sent: ``text`` (always), ``blocks`` (when asked for and valid), and what was dropped."""

    text: str
    blocks: list[Any] | None = None
    dropped: tuple[str, ...] = ()


def message(reply: Reply, *, header: str = "") -> Message:
    """``reply`` as Slack mrkdwn after ``header`` (already mrkdwn), with its structured extras."""
    asked = reply.data.get("slack")
    fields: Mapping[str, Any] = asked if isinstance(asked, Mapping) else {}
    dropped: list[str] = []
    lead = _mentions(fields.get("mentions"), dropped) + _notify(fields.get("notify"), dropped)
    links = _links(fields.get("links"), dropped)
    body = to_mrkdwn(reply.text)
    text = header + (" ".join(lead) + " " if lead else "") + body + "".join(f"\n{link}" for link in links)
    blocks = fields.get("blocks", reply.data.get("slack_blocks"))
    if blocks is None:
        return Message(text, None, tuple(dropped))
    found = block_kit.problem(blocks)
    if found:
        dropped.append(f"blocks ({found})")
    return Message(text, None if found else list(blocks), tuple(dropped))


def markdown(reply: Reply) -> str | None:
    """``reply``'s text as a stream shows it (escaped Markdown), or ``None`` when the reply asks for
    mentions, a ping, links or blocks: then ``message`` is the answer of record."""
    asked = reply.data.get("slack")
    fields: Mapping[str, Any] = asked if isinstance(asked, Mapping) else {}
    if any(fields.get(name) is not None for name in ("mentions", "notify", "links", "blocks")):
        return None
    if reply.data.get("slack_blocks") is not None or len(reply.text) > MAX_TEXT:
        return None
    return to_markdown(reply.text)


def metadata(job_id: str) -> dict[str, Any]:
    """The message metadata tying a Slack message to its delivery."""
    return {"event_type": METADATA_TYPE, "event_payload": {"delivery": job_id}}


def with_feedback(answer: Message, job_id: str) -> Message:
    """``answer`` with the feedback buttons under it: its blocks (or its text as section blocks)
    and the buttons' block; unchanged when that would pass Slack's 50 blocks."""
    shown = list(answer.blocks) if answer.blocks else _sections(answer.text)
    if len(shown) + 1 > block_kit.MAX_BLOCKS:
        return answer
    return Message(answer.text, [*shown, feedback.buttons(job_id)], answer.dropped)


def _sections(text: str) -> list[dict[str, Any]]:
    """``text`` (mrkdwn) as section blocks of at most 3,000 characters, cut between lines."""
    parts: list[str] = []
    for line in text.split("\n"):
        for piece in _cut(line):
            if parts and len(parts[-1]) + 1 + len(piece) <= _SECTION_TEXT:
                parts[-1] += "\n" + piece
            else:
                parts.append(piece)
    shown = [part for part in parts if part.strip()] or [" "]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in shown]


def _cut(line: str) -> list[str]:
    """``line`` in pieces of at most 3,000 characters, never inside an entity or a ``<…>``."""
    pieces = []
    while len(line) > _SECTION_TEXT:
        head = line[:_SECTION_TEXT]
        if head.rfind("<") > head.rfind(">"):
            head = head[: head.rfind("<")] or head
        head = _CUT_ENTITY.sub("", head) or head
        pieces.append(head)
        line = line[len(head) :]
    return [*pieces, line]


def _mentions(value: Any, dropped: list[str]) -> list[str]:
    if value is None:
        return []
    ids = value if isinstance(value, list) else [value]
    shown = []
    for item in ids[:MAX_MENTIONS]:
        if isinstance(item, str) and _USER.fullmatch(item):
            shown.append(f"<@{item}>")
        elif isinstance(item, str) and _GROUP.fullmatch(item):
            shown.append(f"<!subteam^{item}>")
        else:
            dropped.append(f"mention {str(item)[:40]!r} (not a Slack user or group id)")
    if len(ids) > MAX_MENTIONS:
        dropped.append(f"{len(ids) - MAX_MENTIONS} mentions past the first {MAX_MENTIONS}")
    return shown


def _notify(value: Any, dropped: list[str]) -> list[str]:
    if value is None:
        return []
    if value in _NOTIFY:
        return [f"<!{value}>"]
    dropped.append(f"notify {str(value)[:40]!r} (here, channel or everyone)")
    return []


def _links(value: Any, dropped: list[str]) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    shown = []
    for item in items[:MAX_LINKS]:
        url = item.get("url") if isinstance(item, Mapping) else None
        if not isinstance(url, str) or not _URL.fullmatch(url):
            dropped.append(f"link {str(url or item)[:60]!r} (not an http(s) URL)")
            continue
        label = " ".join(str(item.get("text") or "").split())[:200]
        shown.append(f"<{url}|{escape(label)}>" if label else f"<{url}>")
    if len(items) > MAX_LINKS:
        dropped.append(f"{len(items) - MAX_LINKS} links past the first {MAX_LINKS}")
    return shown
