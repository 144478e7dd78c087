"""Chat-completions answers for tests: JSON bodies, the same as server-sent event streams, and a Run."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx

from handlers.agent import Event, Run, Turn
from handlers.config import WorkerSettings
from handlers.logs import bind
from handlers.messages import Mailbox
from handlers.services import Services

BASE_URL = "http://127.0.0.1:9/v1"  # never reached: respx answers
URL = BASE_URL + "/chat/completions"


def answer(
    text: str | None, *, usage: tuple[int, int] | None = (100, 20), finish: str = "stop"
) -> dict[str, Any]:
    """A non-streamed body whose message says ``text``."""
    message = {"role": "assistant", "content": text}
    return _body(message, finish, usage)


def calls(*requested: tuple[str, str], usage: tuple[int, int] | None = (100, 20)) -> dict[str, Any]:
    """A non-streamed body asking for tool calls ``(name, arguments JSON)``."""
    tool_calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
        for i, (name, arguments) in enumerate(requested)
    ]
    return _body({"role": "assistant", "content": None, "tool_calls": tool_calls}, "tool_calls", usage)


def sse(body: dict[str, Any]) -> bytes:
    """``body`` as a stream: content in pieces, each tool call's arguments in fragments, usage last."""
    message, choice = body["choices"][0]["message"], body["choices"][0]
    chunks: list[dict[str, Any]] = [_chunk({"role": "assistant"})]
    text = message.get("content") or ""
    chunks += [_chunk({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
    for index, call in enumerate(message.get("tool_calls") or []):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(_chunk({"tool_calls": [head]}))
        arguments = call["function"]["arguments"]
        for i in range(0, len(arguments), 5):
            piece = {"index": index, "function": {"arguments": arguments[i : i + 5]}}
            chunks.append(_chunk({"tool_calls": [piece]}))
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if body.get("usage"):
        chunks.append({"choices": [], "usage": body["usage"]})
    lines = (
        [": keep-alive\n\n"] + [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    )
    return "".join(lines).encode()


def streamed(body: dict[str, Any], **headers: str) -> httpx.Response:
    """An httpx response streaming ``body`` as server-sent events."""
    return httpx.Response(200, content=sse(body), headers={"content-type": "text/event-stream", **headers})


def plain(body: dict[str, Any]) -> httpx.Response:
    """An httpx response with ``body`` as JSON (a server that ignores ``stream``)."""
    return httpx.Response(200, json=body)


def make_run(
    *,
    history: tuple[Turn, ...] = (),
    seconds: float = 60.0,
    services: Services | None = None,
    mailbox: Mailbox | None = None,
    streamed: list[str] | None = None,
) -> tuple[Run, list[str]]:
    """A real ``Run`` with ``seconds`` left, and the list its progress messages land in (and the
    pieces it streams, in ``streamed`` when given)."""
    progress: list[str] = []
    run = Run(
        job_id="slack-Ev1",
        delivery_id="Ev1",
        attempt=1,
        history=history,
        deadline=time.time() + seconds,
        log=bind(logging.getLogger("tests.llm"), job_id="slack-Ev1"),
        on_progress=progress.append,
        services=services or Services(WorkerSettings.from_environ({})),
        mailbox=mailbox,
        on_stream=streamed.append if streamed is not None else None,
    )
    return run, progress


def slack_event(
    text: str = "<@U0FAKEBOT> what is the status?", *, channel: str = "C1", thread: str = "1700000000.000100"
) -> Event:
    """An ``app_mention`` in a thread, as ``handlers.slack.payload.to_event`` would build it."""
    inner = {
        "type": "app_mention",
        "user": "U1",
        "text": text,
        "channel": channel,
        "ts": thread,
        "thread_ts": thread,
    }
    return Event(
        platform="slack",
        delivery_id="Ev1",
        name="app_mention",
        action=None,
        received_at="2026-11-22T11:00:00+00:00",
        session_key=f"slack:T1:{channel}:{thread}",
        actor="<@U1>",
        subject=f"channel {channel}",
        text=text,
        payload={"team_id": "T1", "event": inner},
        meta={"kind": "event", "team_id": "T1"},
    )


def _chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }


def _body(message: dict[str, Any], finish: str, usage: tuple[int, int] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body
