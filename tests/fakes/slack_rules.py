"""What Slack's Web API refuses, truncates or rate-limits, enforced by ``SlackFake`` (sources in README.md).

Kept apart from the fake's routes so each rule reads on its own:

- ``block_errors``: Block Kit limits (50 blocks a message, section text 3,000, header 150,
  unique ``block_id`` s, buttons' text, ``action_id``, ``value`` and ``style``, ...), answered
  as ``invalid_blocks`` with Slack's ``[ERROR] ... [json-pointer:...]`` messages;
- ``truncated``: ``text`` past 40,000 characters is cut and the answer carries a warning;
- ``within``, ``cursor``, ``without_metadata``: ``conversations.replies``' time bounds, opaque
  cursors and metadata (only with ``include_all_metadata``);
- ``chunk_errors``: the streaming chunks ``chat.*Stream`` take (``markdown_text``, ``task_update``,
  ``plan_update``, ``blocks``), answered as ``invalid_chunks``; ``is_metadata``: message metadata's shape;
- ``RateLimits``: a sliding one-minute window per workspace and method (per channel for
  ``chat.postMessage`` and ``assistant.threads.setStatus``), answered with HTTP 429 and ``Retry-After``;
- ``ResponseUrls``: a ``response_url`` takes 5 posts within 30 minutes of being issued;
- ``rendered``: how Slack reads a stored text (mentions, channel pings, links, what it displays),
  so tests can check escaping without the fake rewriting anything.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40_000
TRUNCATED_WARNING = (
    "[WARN] Your message was truncated but still posted. The `text` field accepts up to 40,000 characters."
)
MAX_ATTACHMENTS = 100
RESPONSE_URL_USES = 5
RESPONSE_URL_WINDOW = 30 * 60
REPLIES_LIMIT = 1000
MAX_MARKDOWN_TEXT = 12_000  # chat.startStream / appendStream / stopStream: markdown_text
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
UNLISTED_REPLIES_LIMIT = 15

# Per-minute limits per workspace (team) and method: https://docs.slack.dev/apis/web-api/rate-limits
# (Tier 2: 20+, Tier 3: 50+, Tier 4: 100+); chat.postMessage: one a second per channel, bursts allowed.
TIER_PER_MINUTE: dict[str, int] = {
    "auth.test": 100,
    "chat.postMessage": 60,  # per channel
    "chat.update": 50,
    "chat.delete": 50,
    "chat.postEphemeral": 100,
    "conversations.replies": 50,
    "users.info": 100,
    # docs.slack.dev method pages: t2 = Tier 2, t4 = Tier 4; setStatus is "Special" (t5) with no
    # number published: one a second per channel, like chat.postMessage (choice).
    "chat.startStream": 20,
    "chat.appendStream": 100,
    "chat.stopStream": 20,
    "assistant.threads.setStatus": 60,  # per channel
    "assistant.threads.setTitle": 100,
    "assistant.threads.setSuggestedPrompts": 100,
}
PER_CHANNEL = frozenset({"chat.postMessage", "assistant.threads.setStatus"})
# Apps distributed outside the Slack Marketplace (since 2025-05-29 for new installations).
UNLISTED_PER_MINUTE = {"conversations.replies": 1, "conversations.history": 1}

_BLOCK_TYPES = frozenset(
    {"actions", "context", "context_actions", "divider", "file", "header", "image", "input", "markdown",
     "rich_text", "section", "video"}
)  # fmt: skip
_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})


# -- Block Kit ------------------------------------------------------------------------------------


def parse_blocks(value: Any) -> Any:
    """``blocks`` as sent: a list (JSON bodies) or its JSON text (form bodies)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def block_errors(blocks: Any) -> list[str]:
    """Slack's ``invalid_blocks`` messages for ``blocks``; empty when Slack would take them."""
    if not isinstance(blocks, list):
        return [_error("must be an array", "/blocks")]
    errors = [_error(f"must be at most {MAX_BLOCKS} items", "/blocks")] if len(blocks) > MAX_BLOCKS else []
    for index, block in enumerate(blocks):
        errors += _check_block(block, f"/blocks/{index}")
    return errors + _repeated_ids(blocks)


def _repeated_ids(blocks: list[Any]) -> list[str]:
    """A ``block_id`` must be unique within a message."""
    seen: set[str] = set()
    errors = []
    for index, block in enumerate(blocks):
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if block_id and str(block_id) in seen:
            errors.append(_error("must be unique within the message", f"/blocks/{index}/block_id"))
        seen.add(str(block_id or ""))
    return errors


def _check_block(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
        return [_error("failed to match all allowed schemas", where)]
    if len(str(block.get("block_id", ""))) > 255:
        return [_error("must be less than 256 characters", f"{where}/block_id")]
    check = _BLOCK_CHECKS.get(block["type"])
    return check(block, where) if check else []


def _section(block: dict[str, Any], where: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        return [_error("must provide either text or fields", where)]
    errors = _text_object(text, f"{where}/text", 3000) if text is not None else []
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > 10:
            return [*errors, _error("must be at most 10 items", f"{where}/fields")]
        for index, item in enumerate(fields):
            errors += _text_object(item, f"{where}/fields/{index}", 2000)
    return errors


def _header(block: dict[str, Any], where: str) -> list[str]:
    text = block.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [_error("must be a plain_text object", f"{where}/text")]
    return _text_object(text, f"{where}/text", 150)


Check = Callable[[Any, str], list[str]]


def _elements(limit: int, element: Check) -> Callable[[dict[str, Any], str], list[str]]:
    def check(block: dict[str, Any], where: str) -> list[str]:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            return [_error("must provide at least one element", f"{where}/elements")]
        if len(elements) > limit:
            return [_error(f"must be at most {limit} items", f"{where}/elements")]
        return [error for i, item in enumerate(elements) for error in element(item, f"{where}/elements/{i}")]

    return check


def _context_element(element: Any, where: str) -> list[str]:
    """A context element: an image, or a text object of at most 3,000 characters."""
    if isinstance(element, dict) and element.get("type") == "image":
        return []
    return _text_object(element, where, 3000)


def _action_element(element: Any, where: str) -> list[str]:
    """An interactive element; buttons are checked in full (the only kind this project sends)."""
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [_error("failed to match all allowed schemas", where)]
    if element["type"] != "button":
        return []
    text = element.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [_error("must be a plain_text object", f"{where}/text")]
    errors = _text_object(text, f"{where}/text", 75)
    for name, limit in (("action_id", 255), ("value", 2000)):
        if len(str(element.get(name, ""))) > limit:
            errors.append(_error(f"must be less than {limit + 1} characters", f"{where}/{name}"))
    if element.get("style", "primary") not in ("primary", "danger"):
        errors.append(_error("must be one of primary, danger", f"{where}/style"))
    return errors


def _context_actions_element(element: Any, where: str) -> list[str]:
    """``feedback_buttons`` (checked in full: the project sends them) or ``icon_button``."""
    if not isinstance(element, dict) or element.get("type") not in ("feedback_buttons", "icon_button"):
        return [_error("failed to match all allowed schemas", where)]
    if element["type"] == "icon_button":
        return []
    errors = []
    if len(str(element.get("action_id", ""))) > 255:
        errors.append(_error("must be less than 256 characters", f"{where}/action_id"))
    for name in ("positive_button", "negative_button"):
        errors += _feedback_button(element.get(name), f"{where}/{name}")
    return errors


def _feedback_button(button: Any, where: str) -> list[str]:
    """A feedback button: ``text`` plain_text of 1-75 characters, ``value`` of 1-2,000."""
    if not isinstance(button, dict):
        return [_error("must provide an object", where)]
    text = button.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return [_error("must be a plain_text object", f"{where}/text")]
    errors = _text_object(text, f"{where}/text", 75)
    value = button.get("value")
    if not isinstance(value, str) or not value:
        errors.append(_error("must be more than 0 characters", f"{where}/value"))
    elif len(value) > 2000:
        errors.append(_error("must be less than 2001 characters", f"{where}/value"))
    return errors


def _markdown(block: dict[str, Any], where: str) -> list[str]:
    text = block.get("text")
    if not isinstance(text, str) or not text:
        return [_error("must be a non-empty string", f"{where}/text")]
    return [_error("must be less than 12001 characters", f"{where}/text")] if len(text) > 12000 else []


def _text_object(value: Any, where: str, limit: int) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in _TEXT_TYPES:
        return [_error("failed to match all allowed schemas", where)]
    text = value.get("text")
    if not isinstance(text, str) or not text:
        return [_error("must be more than 0 characters", f"{where}/text")]
    if len(text) > limit:
        return [_error(f"must be less than {limit + 1} characters", f"{where}/text")]
    return []


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section,
    "header": _header,
    "context": _elements(10, _context_element),
    "actions": _elements(25, _action_element),
    "context_actions": _elements(5, _context_actions_element),
    "markdown": _markdown,
}


def _error(reason: str, pointer: str) -> str:
    return f"{reason} [json-pointer:{pointer}]"


def invalid_blocks_body(errors: list[str]) -> dict[str, Any]:
    """Slack's answer to invalid blocks (HTTP 200)."""
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }


# -- streaming chunks -----------------------------------------------------------------------------


def chunk_errors(chunks: Any) -> list[str]:
    """What Slack refuses in ``chunks`` (an array of chunk objects); empty when it takes them."""
    if chunks is None:
        return []
    if not isinstance(chunks, list):
        return [_error("must be an array", "/chunks")]
    return [error for i, chunk in enumerate(chunks) for error in _check_chunk(chunk, f"/chunks/{i}")]


def _check_chunk(chunk: Any, where: str) -> list[str]:
    kind = chunk.get("type") if isinstance(chunk, dict) else None
    check = _CHUNK_CHECKS.get(str(kind))
    if not isinstance(chunk, dict) or check is None:
        return [_error("failed to match all allowed schemas", where)]
    return check(chunk, where)


def _markdown_chunk(chunk: dict[str, Any], where: str) -> list[str]:
    return _string(chunk.get("text"), f"{where}/text", MAX_MARKDOWN_TEXT)


def _plan_chunk(chunk: dict[str, Any], where: str) -> list[str]:
    return _string(chunk.get("title"), f"{where}/title", None)


def _task_chunk(chunk: dict[str, Any], where: str) -> list[str]:
    errors = _string(chunk.get("id"), f"{where}/id", None) + _string(
        chunk.get("title"), f"{where}/title", None
    )
    if chunk.get("status") not in TASK_STATUSES:
        errors.append(_error(f"must be one of {', '.join(TASK_STATUSES)}", f"{where}/status"))
    for name in ("details", "output"):
        if name in chunk and not isinstance(chunk[name], str):
            errors.append(_error("must be a string", f"{where}/{name}"))
    sources = chunk.get("sources", [])
    if not isinstance(sources, list):
        return [*errors, _error("must be an array", f"{where}/sources")]
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or source.get("type") != "url" or not source.get("url"):
            errors.append(_error("must be a url source element", f"{where}/sources/{index}"))
        elif not source.get("text"):
            errors.append(_error("must be more than 0 characters", f"{where}/sources/{index}/text"))
    return errors


def _blocks_chunk(chunk: dict[str, Any], where: str) -> list[str]:
    errors = block_errors(parse_blocks(chunk.get("blocks")))
    return [error.replace("[json-pointer:/blocks", f"[json-pointer:{where}/blocks") for error in errors]


def _string(value: Any, where: str, limit: int | None) -> list[str]:
    if not isinstance(value, str) or not value:
        return [_error("must be a non-empty string", where)]
    if limit is not None and len(value) > limit:
        return [_error(f"must be less than {limit + 1} characters", where)]
    return []


_CHUNK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "markdown_text": _markdown_chunk,
    "task_update": _task_chunk,
    "plan_update": _plan_chunk,
    "blocks": _blocks_chunk,
}


def invalid_chunks_body(errors: list[str]) -> dict[str, Any]:
    """Slack's refusal of a stream's chunks (HTTP 200); the detail lines are the fake's (choice)."""
    return {
        "ok": False,
        "error": "invalid_chunks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }


def is_metadata(value: Any) -> bool:
    """Message metadata: an object with a string ``event_type`` and an object ``event_payload``."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("event_type"), str)
        and bool(value["event_type"])
        and isinstance(value.get("event_payload"), dict)
    )


def truncated(text: Any) -> tuple[Any, list[str]]:
    """``text`` cut to 40,000 characters, and the warnings Slack adds when it cuts."""
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT], ["message_truncated"]
    return text, []


# -- conversations.replies ------------------------------------------------------------------------


def ts_key(ts: str) -> tuple[int, int]:
    """A Slack ``ts`` (``"1700000000.000100"``) as a sortable pair."""
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def within(ts: str, args: dict[str, Any]) -> bool:
    """``oldest`` < ts < ``latest`` (``inclusive``: ≤); the bounds default to 0 and now."""
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
    key = ts_key(ts)
    oldest, latest = args.get("oldest"), args.get("latest")
    if oldest and (key < ts_key(str(oldest)) or (key == ts_key(str(oldest)) and not inclusive)):
        return False
    return not (latest and (key > ts_key(str(latest)) or (key == ts_key(str(latest)) and not inclusive)))


def without_metadata(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``message``, its metadata left out unless ``include_all_metadata`` is true."""
    copied = copy.deepcopy(message)
    if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
        copied.pop("metadata", None)
    return copied


def cursor(offset: int) -> str:
    """The opaque ``next_cursor`` of the page starting at ``offset``."""
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def cursor_offset(cursor: Any) -> int | None:
    """0 for no cursor, the offset a cursor of ours names, ``None`` for anything else."""
    if not cursor:
        return 0
    try:
        kind, _, number = base64.b64decode(str(cursor), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(number) if kind == "offset" and number.isdigit() else None


# -- rate limits ----------------------------------------------------------------------------------


@dataclass
class RateLimits:
    """At most ``per_minute[method]`` calls per workspace (and channel, for ``PER_CHANNEL``) in any
    60 s; the call past it gets 429 with the seconds until the window frees a slot."""

    per_minute: dict[str, int] = field(default_factory=lambda: dict(TIER_PER_MINUTE))
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[str, ...], deque[float]] = field(default_factory=dict)

    def check(self, team: str, method: str, channel: str | None) -> float | None:
        """Count a call; ``None`` when allowed, else the ``Retry-After`` seconds."""
        limit = self.per_minute.get(method)
        if limit is None:
            return None
        key = (team, method, channel or "") if method in PER_CHANNEL else (team, method)
        now, seen = self.clock(), self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - 60:
            seen.popleft()
        if len(seen) >= limit:
            return max(1.0, round(seen[0] + 60 - now + 0.5))
        seen.append(now)
        return None

    def reset(self) -> None:
        """Forget every window."""
        self._seen.clear()


# -- response_url ---------------------------------------------------------------------------------


@dataclass
class ResponseUrls:
    """Issued ``response_url`` keys: when each was issued and how often it was used."""

    clock: Callable[[], float] = time.time
    issued: dict[str, float] = field(default_factory=dict)
    uses: dict[str, int] = field(default_factory=dict)

    def issue(self, key: str, *, issued_at: float | None = None) -> None:
        """Make ``key`` valid from ``issued_at`` (default: now)."""
        self.issued[key] = self.clock() if issued_at is None else issued_at
        self.uses.setdefault(key, 0)

    def refusal(self, key: str) -> str | None:
        """Why a post to ``key`` is refused now (``None``: accepted, and counted)."""
        issued = self.issued.get(key)
        if issued is None:
            return "invalid_url"
        if self.clock() - issued > RESPONSE_URL_WINDOW:
            return "expired_url"
        if self.uses[key] >= RESPONSE_URL_USES:
            return "used_url"
        self.uses[key] += 1
        return None

    def reset(self) -> None:
        """Forget every issued URL."""
        self.issued.clear()
        self.uses.clear()


# -- how Slack reads text -------------------------------------------------------------------------

_CONTROL = re.compile(r"<([^<>]*)>")
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
_ENTITY = re.compile(r"&(lt|gt|amp);")
_KINDS = ("mentions", "broadcasts", "groups", "channels", "links")


@dataclass(frozen=True)
class Rendered:
    """What Slack makes of a message text: who is notified, which links are live, what is shown."""

    mentions: tuple[str, ...]  # user ids of <@U...>
    broadcasts: tuple[str, ...]  # here / channel / everyone of <!here> ...
    groups: tuple[str, ...]  # user groups of <!subteam^S...>
    channels: tuple[str, ...]  # channel ids of <#C...>
    links: tuple[tuple[str, str], ...]  # (url, label) of <url|label> and <url>
    display: str  # the text as a reader sees it


def rendered(text: str) -> Rendered:
    """Read ``text`` as Slack does: ``<...>`` are control sequences, ``&lt;`` ``&gt;`` ``&amp;`` are
    the characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    found: dict[str, list[Any]] = {name: [] for name in _KINDS}
    display = _CONTROL.sub(lambda match: _control(match.group(1), found), text)
    display = _ENTITY.sub(lambda match: _ENTITIES[match.group(0)], display)
    return Rendered(**{name: tuple(values) for name, values in found.items()}, display=display)


def _control(inner: str, found: dict[str, list[Any]]) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        found["mentions"].append(target[1:])
        return label or target
    if target.startswith("#"):
        found["channels"].append(target[1:])
        return label or target
    if target.startswith("!subteam^"):
        found["groups"].append(target[len("!subteam^") :])
        return label or "@group"
    if target.startswith("!"):
        if target[1:] in ("here", "channel", "everyone"):
            found["broadcasts"].append(target[1:])
        return label or "@" + target[1:]
    found["links"].append((target, label))
    # Anything else in angle brackets is taken for a link: the brackets disappear.
    return label or target
