"""Slack's agent surface for ``SlackFake``: assistant-thread status, title and suggested prompts, and
streamed messages (``chat.startStream`` / ``appendStream`` / ``stopStream``).

``AgentSurface`` holds that state and answers the six methods from their arguments; ``SlackFake``
routes to it and shares its message store, so a streamed message is an ordinary message (same ``ts``
clock, same threads). Each rule and its source is listed in README.md; the ones Slack leaves open are
marked "choice" there. Times come from ``clock`` (``time.time`` unless a test injects one):

- a status lasts until the bot posts in that thread (``chat.postMessage`` or a stream's start), an
  empty status clears it, and it disappears 2 minutes after it was set;
- a stream leaves the streaming state when stopped, when ``expire`` is called (Slack's undocumented
  stream timeout) or ``stream_ttl`` seconds after it started.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import slack_rules as rules
from tests.fakes.server import Reply

__all__ = ["STATUS_TIMEOUT", "AgentSurface"]

STATUS_TIMEOUT = 120.0  # "A two minute timeout applies" (assistant.threads.setStatus, argument status)
MAX_LOADING_MESSAGES = 10
MAX_LOADING_MESSAGE = 50
MAX_PROMPTS = 4
TASK_DISPLAY_MODES = ("timeline", "plan")

Message = dict[str, Any]
Store = Callable[[str, Message, str | None], str]  # (channel, fields, thread_ts) -> ts
_TS = re.compile(r"^\d+\.\d+$")


@dataclass
class _Stream:
    recipient_user_id: str | None
    recipient_team_id: str | None
    task_display_mode: str | None
    started_at: float
    state: str = "streaming"
    chunks: list[dict[str, Any]] = field(default_factory=list)
    appends: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "chunks": copy.deepcopy(self.chunks),
            "appends": self.appends,
            "recipient_user_id": self.recipient_user_id,
            "recipient_team_id": self.recipient_team_id,
            "task_display_mode": self.task_display_mode,
        }


@dataclass
class _Status:
    status: str
    loading_messages: list[str]
    set_at: float


def _ok(**fields: Any) -> Reply:
    return Reply(200, {"ok": True, **fields})


def _error(error: str, detail: str | None = None) -> Reply:
    return Reply(200, {"ok": False, "error": error, **({"detail": detail} if detail else {})})


def _invalid_arguments(*messages: str) -> Reply:
    """Slack's answer to arguments outside a method's schema (``invalid_arguments``)."""
    body = {"ok": False, "error": "invalid_arguments"}
    return Reply(200, {**body, "response_metadata": {"messages": [f"[ERROR] {m}" for m in messages]}})


class AgentSurface:
    """The agent-surface state of one fake workspace and the six methods that change it.

    Args:
        messages: the fake's message store (channel -> ts -> message), shared, never copied.
        store: puts a bot message in that store and returns its ``ts`` (the fake's one clock).
        bot_id: the bot's ``bot_id``: messages carrying another are not the app's.
        agent: whether the app has the Agent feature (``setSuggestedPrompts`` needs it).
        stream_ttl: seconds after which a stream leaves the streaming state by itself (None: never).
        clock: seconds, for the status timeout and ``stream_ttl``.
    """

    def __init__(
        self,
        messages: dict[str, dict[str, Message]],
        store: Store,
        *,
        bot_id: str,
        agent: bool = True,
        stream_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._messages, self._store, self.bot_id = messages, store, bot_id
        self.agent, self.stream_ttl, self.clock = agent, stream_ttl, clock
        self._statuses: dict[tuple[str, str], _Status] = {}
        self._status_calls: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._titles: dict[tuple[str, str], str] = {}
        self._prompts: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._streams: dict[tuple[str, str], _Stream] = {}

    # -- inspection ------------------------------------------------------------------------------

    def status(self, channel: str, thread_ts: str) -> dict[str, Any] | None:
        """The thread's status now, or None (never set, cleared, or timed out)."""
        current = self._statuses.get((channel, thread_ts))
        if current is None or self.clock() - current.set_at >= STATUS_TIMEOUT:
            return None
        return {"status": current.status, "loading_messages": list(current.loading_messages)}

    def statuses(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Every accepted ``setStatus`` call's arguments for the thread (no token), in order."""
        return copy.deepcopy(self._status_calls.get((channel, thread_ts), []))

    def title(self, channel: str, thread_ts: str) -> str | None:
        """The thread's last title."""
        return self._titles.get((channel, thread_ts))

    def suggested_prompts(self, channel: str, thread_ts: str | None) -> dict[str, Any] | None:
        """The last suggested prompts for the thread (``thread_ts`` None: set without one)."""
        return copy.deepcopy(self._prompts.get((channel, thread_ts)))

    def stream(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stream behind message ``ts``, or None if the bot never streamed it."""
        found = self._live(channel, ts)
        return None if found is None else found.view()

    def expire(self, channel: str, ts: str) -> None:
        """End the stream as Slack's timeout does (the message keeps its text)."""
        found = self._streams.get((channel, ts))
        if found is None:
            raise LookupError(f"no stream {ts} in {channel}")
        found.state = "stopped"

    def on_bot_message(self, channel: str, thread_ts: str | None) -> None:
        """The bot posted in ``thread_ts``: that thread's status is cleared."""
        if thread_ts:
            self._statuses.pop((channel, thread_ts), None)

    def reset(self) -> None:
        """Forget statuses, titles, prompts and streams."""
        for state in (self._statuses, self._status_calls, self._titles, self._prompts, self._streams):
            state.clear()

    # -- assistant.threads.* ---------------------------------------------------------------------

    def set_status(self, args: dict[str, Any]) -> Reply:
        """``assistant.threads.setStatus``: an empty ``status`` clears the status."""
        refused = self._thread_refusal(args, required=True)
        if refused is not None:
            return refused
        if not isinstance(args.get("status"), str):
            return _invalid_arguments("missing required field: status [json-pointer:/status]")
        loading = rules.parse_blocks(args.get("loading_messages", []))
        wrong = _loading_errors(loading)
        if wrong:
            return _invalid_arguments(*wrong)
        key = (args["channel_id"], args["thread_ts"])
        call = {k: v for k, v in args.items() if k != "token"} | (
            {"loading_messages": loading} if loading else {}
        )
        self._status_calls.setdefault(key, []).append(call)
        if args["status"] == "":
            self._statuses.pop(key, None)
        else:
            self._statuses[key] = _Status(args["status"], list(loading), self.clock())
        return _ok()

    def set_title(self, args: dict[str, Any]) -> Reply:
        """``assistant.threads.setTitle``."""
        refused = self._thread_refusal(args, required=True)
        if refused is not None:
            return refused
        title = args.get("title")
        if not isinstance(title, str) or not title:
            return _invalid_arguments("missing required field: title [json-pointer:/title]")
        self._titles[(args["channel_id"], args["thread_ts"])] = title
        return _ok()

    def set_suggested_prompts(self, args: dict[str, Any]) -> Reply:
        """``assistant.threads.setSuggestedPrompts``: 1-4 prompts, each with a title and a message."""
        if not self.agent:
            return _error("not_agent_app")
        refused = self._thread_refusal(args, required=False)
        if refused is not None:
            return refused
        prompts = rules.parse_blocks(args.get("prompts"))
        wrong = _prompt_errors(prompts)
        if wrong:
            return _invalid_arguments(*wrong)
        title = args.get("title")
        entry = {"title": title if isinstance(title, str) else None, "prompts": copy.deepcopy(prompts)}
        self._prompts[(args["channel_id"], args.get("thread_ts") or None)] = entry
        return _ok()

    def _thread_refusal(self, args: dict[str, Any], *, required: bool) -> Reply | None:
        """``channel_not_found`` without a channel; ``invalid_thread_ts`` for a thread the channel has not."""
        channel = args.get("channel_id")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found", "Invalid channel_id")
        thread_ts = args.get("thread_ts")
        if not thread_ts and not required:
            return None
        if not isinstance(thread_ts, str) or not _TS.match(thread_ts):
            return _error("invalid_thread_ts", "Invalid thread_ts")
        if thread_ts not in self._messages.get(channel, {}):
            return _error("invalid_thread_ts", "Thread not found")
        return None

    # -- chat.*Stream ----------------------------------------------------------------------------

    def start_stream(self, args: dict[str, Any]) -> Reply:
        """``chat.startStream``: a bot message (possibly empty) in the streaming state."""
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        if not channel.startswith("D"):  # a DM needs no recipient; anything else does
            if not args.get("recipient_user_id"):
                return _error("missing_recipient_user_id")
            if not args.get("recipient_team_id"):
                return _error("missing_recipient_team_id")
        mode = args.get("task_display_mode")
        if mode is not None and mode not in TASK_DISPLAY_MODES:
            pointer = "[json-pointer:/task_display_mode]"
            return _invalid_arguments(f"must be one of {', '.join(TASK_DISPLAY_MODES)} {pointer}")
        chunks = self._chunks(args)
        if isinstance(chunks, Reply):
            return chunks
        thread_ts = args.get("thread_ts") or None
        fields = {"type": "message", "text": _markdown(chunks), "bot_id": self.bot_id}
        ts = self._store(channel, fields, thread_ts)
        self.on_bot_message(channel, thread_ts)
        recipient = args.get("recipient_user_id") or None, args.get("recipient_team_id") or None
        self._streams[(channel, ts)] = _Stream(*recipient, mode, self.clock(), chunks=chunks)
        return _ok(channel=channel, ts=ts)

    def append_stream(self, args: dict[str, Any]) -> Reply:
        """``chat.appendStream``: text or chunks added to a message still streaming."""
        chunks = self._chunks(args)
        if isinstance(chunks, Reply):
            return chunks
        if not chunks:
            return _error("no_text")
        found = self._streaming(args)
        if isinstance(found, Reply):
            return found
        message, stream = found
        message["text"] = message.get("text", "") + _markdown(chunks)
        stream.chunks += chunks
        stream.appends += 1
        return _ok(channel=args["channel"], ts=message["ts"])

    def stop_stream(self, args: dict[str, Any]) -> Reply:
        """``chat.stopStream``: the last text or chunks, then ``blocks`` and ``metadata``; stopped."""
        chunks = self._chunks(args)
        if isinstance(chunks, Reply):
            return chunks
        blocks = rules.parse_blocks(args.get("blocks"))
        if blocks not in (None, "", []):
            errors = rules.block_errors(blocks)
            if errors:
                return Reply(200, rules.invalid_blocks_body(errors))
        metadata = rules.parse_blocks(args.get("metadata"))
        if metadata is not None and not rules.is_metadata(metadata):
            return _error("invalid_metadata_format")
        found = self._streaming(args)
        if isinstance(found, Reply):
            return found
        message, stream = found
        message["text"] = message.get("text", "") + _markdown(chunks)
        message.update({"blocks": blocks} if blocks not in (None, "") else {})
        message.update({"metadata": metadata} if metadata is not None else {})
        stream.chunks += chunks
        stream.state = "stopped"
        return _ok(channel=args["channel"], ts=message["ts"], message=copy.deepcopy(message))

    def _chunks(self, args: dict[str, Any]) -> list[dict[str, Any]] | Reply:
        """``markdown_text`` (as a chunk) then ``chunks``, or Slack's refusal of them."""
        text = args.get("markdown_text")
        if text is not None and (not isinstance(text, str) or len(text) > rules.MAX_MARKDOWN_TEXT):
            limit = rules.MAX_MARKDOWN_TEXT + 1
            return _invalid_arguments(f"must be less than {limit} characters [json-pointer:/markdown_text]")
        chunks = rules.parse_blocks(args.get("chunks", []))
        errors = rules.chunk_errors(chunks)
        if errors:
            return Reply(200, rules.invalid_chunks_body(errors))
        lead = [{"type": "markdown_text", "text": text}] if text else []
        return lead + copy.deepcopy(chunks)

    def _streaming(self, args: dict[str, Any]) -> tuple[Message, _Stream] | Reply:
        """The message and stream ``channel``/``ts`` name, if the app streams it still."""
        channel, ts = args.get("channel"), args.get("ts")
        if not isinstance(channel, str) or not channel:
            return _error("channel_not_found")
        message = self._messages.get(channel, {}).get(str(ts))
        if message is None:
            return _error("message_not_found")
        if message.get("bot_id") != self.bot_id:
            return _error("message_not_owned_by_app")
        stream = self._live(channel, message["ts"])
        if stream is None or stream.state != "streaming":
            return _error("message_not_in_streaming_state")
        return message, stream

    def _live(self, channel: str, ts: str) -> _Stream | None:
        """The stream, moved out of the streaming state first if ``stream_ttl`` has passed."""
        found = self._streams.get((channel, ts))
        ttl = self.stream_ttl
        if found is not None and ttl is not None and self.clock() - found.started_at >= ttl:
            found.state = "stopped"
        return found


def _markdown(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["text"] for c in chunks if c.get("type") == "markdown_text")


def _loading_errors(loading: Any) -> list[str]:
    """``loading_messages``: 1-10 strings of 1-50 characters (docs.slack.dev's schema)."""
    where = "[json-pointer:/loading_messages]"
    if loading in ([], None):
        return []
    if not isinstance(loading, list):
        return [f"must be an array {where}"]
    if len(loading) > MAX_LOADING_MESSAGES:
        return [f"must provide at most {MAX_LOADING_MESSAGES} items {where}"]
    return [
        f"must be a string of 1 to {MAX_LOADING_MESSAGE} characters [json-pointer:/loading_messages/{i}]"
        for i, item in enumerate(loading)
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_LOADING_MESSAGE
    ]


def _prompt_errors(prompts: Any) -> list[str]:
    """``prompts``: 1 to 4 objects with a non-empty ``title`` and ``message``."""
    if not isinstance(prompts, list) or not prompts:
        return ["missing required field: prompts [json-pointer:/prompts]"]
    if len(prompts) > MAX_PROMPTS:
        return [f"must provide at most {MAX_PROMPTS} items [json-pointer:/prompts]"]
    errors = []
    for index, prompt in enumerate(prompts):
        for name in ("title", "message"):
            value = prompt.get(name) if isinstance(prompt, dict) else None
            if not isinstance(value, str) or not value:
                errors.append(f"missing required field: {name} [json-pointer:/prompts/{index}/{name}]")
    return errors
