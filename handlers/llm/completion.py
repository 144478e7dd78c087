"""One model answer (``Completion``), parsed from a JSON body or assembled from a server-sent event stream.

OpenAI-compatible servers stream ``data: {chunk}`` lines ending with ``data: [DONE]``; each chunk's
``choices[0].delta`` carries pieces of ``content`` and of ``tool_calls`` (matched by ``index``: the
``id`` and ``function.name`` come once, ``function.arguments`` arrives in fragments). ``usage`` comes
in a last chunk when ``stream_options.include_usage`` is honoured. Servers differ: some send whole tool
calls in one chunk without an ``index``, some ignore ``stream`` and answer plain JSON, some put an
``error`` object in the stream. https://platform.openai.com/docs/api-reference/chat-streaming

A ``StreamAssembler`` given ``on_content`` also hands each piece of ``content`` on as it arrives,
with its offset in the answer (``ContentSink``), so the ``llm`` agent can stream it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handlers.errors import TransientError, UnusableAnswer

__all__ = [
    "MAX_STREAM_CHUNKS",
    "Completion",
    "ContentSink",
    "from_json",
    "StreamAssembler",
    "ToolCall",
    "Usage",
]

MAX_STREAM_CHUNKS = 100_000  # a bound on a server that never sends [DONE]

ContentSink = Callable[[str, int], None]
"""Takes a piece of an answer's streamed ``content`` and its offset in that answer (``0`` first)."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for; ``arguments`` is the raw JSON text it sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens the server counted for one call."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Completion:
    """The assistant message of one call, its finish reason and the server's usage (if it sent any)."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None

    def as_message(self) -> dict[str, Any]:
        """The assistant message to send back in the conversation.

        ``content`` is ``""``, never null, beside tool calls (some servers answer 500 to null), and
        arguments that are not a JSON object are sent back as ``{}``: echoed verbatim they make
        llama.cpp's server answer 500 to every later request of the run.
        """
        message: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _object_json(c.arguments)},
                }
                for c in self.tool_calls
            ]
        return message


def from_json(body: Any) -> Completion:
    """A ``Completion`` from a non-streamed chat-completions body."""
    choice = _first_choice(body)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UnusableAnswer("the answer has no message")
    calls = [_tool_call(raw, position) for position, raw in enumerate(_list(message.get("tool_calls")))]
    return Completion(
        content=_text(message.get("content")),
        tool_calls=tuple(calls),
        finish_reason=_str(choice.get("finish_reason")),
        usage=_usage(body.get("usage")),
    )


class StreamAssembler:
    """Accumulates streamed chunks into one ``Completion``; feed it each ``data:`` payload."""

    def __init__(self, on_content: ContentSink | None = None) -> None:
        self._on_content = on_content
        self._content: list[str] = []
        self._content_chars = 0
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self.done = False
        self.seen_data = False
        self.chunks = 0

    def feed_line(self, line: str) -> None:
        """Take one SSE line; comments, ``event:`` and ``id:`` lines and blanks are skipped."""
        if not line.startswith("data:"):
            return
        self.seen_data = True
        self.chunks += 1
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UnusableAnswer("the stream carried a chunk that is not JSON") from None
        self.feed_chunk(chunk)

    def feed_chunk(self, chunk: Any) -> None:
        """Merge one parsed chunk."""
        if not isinstance(chunk, dict):
            raise UnusableAnswer("the stream carried a chunk that is not an object")
        if isinstance(chunk.get("error"), dict):
            # vLLM and others report failures inside a 200 stream; another attempt may succeed.
            raise TransientError(f"model server error in stream: {_error_text(chunk['error'])}")
        self._usage = _usage(chunk.get("usage")) or self._usage
        for choice in _list(chunk.get("choices"))[:1]:
            self._merge_choice(choice)

    @property
    def finish_reason(self) -> str | None:
        """The finish reason the stream gave so far (``None`` until its last choice chunk)."""
        return self._finish

    def result(self) -> Completion:
        """The assembled answer."""
        calls = [_tool_call(self._calls[index], index) for index in sorted(self._calls)]
        content = "".join(self._content)
        return Completion(
            content=content or None, tool_calls=tuple(calls), finish_reason=self._finish, usage=self._usage
        )

    def _merge_choice(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            return
        self._finish = _str(choice.get("finish_reason")) or self._finish
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("content"), str) and delta["content"]:
            self._add_content(delta["content"])
        for position, piece in enumerate(_list(delta.get("tool_calls"))):
            self._merge_call(piece, position)

    def _add_content(self, text: str) -> None:
        offset = self._content_chars
        self._content.append(text)
        self._content_chars += len(text)
        if self._on_content is not None:
            self._on_content(text, offset)

    def _merge_call(self, piece: Any, position: int) -> None:
        if not isinstance(piece, dict):
            raise UnusableAnswer("a streamed tool call is not an object")
        index = piece.get("index")
        index = index if isinstance(index, int) else len(self._calls) + position
        call = self._calls.setdefault(index, {"id": None, "function": {"name": "", "arguments": ""}})
        call["id"] = piece.get("id") or call["id"]
        function = piece["function"] if isinstance(piece.get("function"), dict) else {}
        if isinstance(function.get("name"), str):
            call["function"]["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]
        elif isinstance(function.get("arguments"), dict):  # some servers send an object, not its JSON
            call["function"]["arguments"] += json.dumps(function["arguments"])


def _first_choice(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UnusableAnswer("the answer is not a JSON object")
    if isinstance(body.get("error"), dict):
        raise TransientError(f"model server error: {_error_text(body['error'])}")
    choices = _list(body.get("choices"))
    if not choices or not isinstance(choices[0], dict):
        raise UnusableAnswer("the answer has no choices")
    return choices[0]


def _tool_call(raw: Any, position: int) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise UnusableAnswer("a tool call has no function")
    function = raw["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments)
    # Some local servers leave out ids; the conversation still needs one to pair results with calls.
    call_id = raw.get("id")
    call_id = call_id if isinstance(call_id, str) and call_id else f"call_{position}"
    return ToolCall(id=call_id, name=_str(function.get("name")) or "", arguments=_str(arguments) or "")


def _object_json(arguments: str) -> str:
    try:
        return arguments if isinstance(json.loads(arguments or "null"), dict) else "{}"
    except ValueError:
        return "{}"


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _error_text(error: dict[str, Any]) -> str:
    return str(error.get("message") or error.get("type") or "unknown")[:200]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
