"""The ``llm`` agent streams the model's text through ``run.stream``, with respx playing the model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import respx

from handlers.agent import Reply, Run
from handlers.llm.breaker import CircuitBreaker
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.loop import Budgets, ToolLoop
from handlers.llm.streaming import STEP_BREAK
from handlers.retry import RetryPolicy
from handlers.tools import Arguments, Tool, schema
from tests.handlers.llm.model import BASE_URL, URL, answer, calls, make_run, plain, sse, streamed

FAST = RetryPolicy(max_retries=2, base=0.01, cap=0.05)
ANSWER = "Build 412 fails in test_login: the fixture user was deleted on Monday."
PREAMBLE = "Let me read build 412."


class _Timed(list[str]):
    """The streamed pieces, and when each came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, piece: str) -> None:
        self.times.append(time.monotonic())
        super().append(piece)


def _tool() -> Tool:
    async def run(arguments: Arguments, deadline: float) -> str:
        return "build 412 failed in test_login"

    return Tool("ci_build", "A CI build by id.", schema({"id": {"type": "string"}}), run, lambda a: "Reading")


def _go(run: Run, *, stream: bool = True) -> Reply:
    config = ChatConfig(base_url=BASE_URL, model="test-model", stream=stream)
    client = ChatClient(config, policy=FAST, breaker=CircuitBreaker())
    loop = ToolLoop(client, [_tool()], run=run, budgets=Budgets(reserve=0.0))
    return asyncio.run(loop.run([{"role": "user", "content": "why red?"}]))


def _with_preamble(body: dict[str, Any]) -> dict[str, Any]:
    body["choices"][0]["message"]["content"] = PREAMBLE
    return body


def _cut(body: dict[str, Any], *, lines: int) -> httpx.Response:
    """A stream that breaks off after ``lines`` data lines: no finish reason, no [DONE]."""
    data = [line for line in sse(body).decode().split("\n\n") if line.startswith("data:")]
    cut = "".join(f"{line}\n\n" for line in data[:lines])
    return httpx.Response(200, content=cut.encode(), headers={"content-type": "text/event-stream"})


@respx.mock
def test_the_answer_streams_in_pieces_as_it_arrives_and_the_reply_is_the_whole_answer() -> None:
    respx.post(URL).mock(return_value=streamed(answer(ANSWER)))
    pieces: list[str] = []
    run, _ = make_run(streamed=pieces)
    reply = _go(run)
    assert reply.text == ANSWER
    assert run.streamed == ANSWER and "".join(pieces) == ANSWER
    assert len(pieces) == -(-len(ANSWER) // 7), "one run.stream per content delta"


@respx.mock
def test_pieces_are_streamed_while_the_model_is_still_answering() -> None:
    async def slowly() -> AsyncIterator[bytes]:
        for line in sse(answer(ANSWER)).decode().split("\n\n"):
            await asyncio.sleep(0.02)
            yield f"{line}\n\n".encode()

    respx.post(URL).mock(
        side_effect=lambda request: httpx.Response(
            200, content=slowly(), headers={"content-type": "text/event-stream"}
        )
    )
    pieces = _Timed()
    run, _ = make_run(streamed=pieces)
    reply = _go(run)
    assert reply.text == ANSWER and run.streamed == ANSWER
    # Ten content chunks 20 ms apart: passed on one by one as they came, not all at the end.
    assert pieces.times[-1] - pieces.times[0] >= 0.15


@respx.mock
def test_text_before_tool_calls_streams_and_the_reply_is_only_the_answer() -> None:
    respx.post(URL).mock(
        side_effect=[streamed(_with_preamble(calls(("ci_build", '{"id": "412"}')))), streamed(answer(ANSWER))]
    )
    run, _ = make_run(streamed=[])
    reply = _go(run)
    assert run.streamed == PREAMBLE + STEP_BREAK + ANSWER
    assert reply.text == ANSWER, "the answer of record leaves the preamble out"


@respx.mock
def test_a_tool_step_without_text_streams_nothing_before_the_answer() -> None:
    tool_step = streamed(calls(("ci_build", '{"id": "412"}')))
    respx.post(URL).mock(side_effect=[tool_step, streamed(answer(ANSWER))])
    run, _ = make_run(streamed=[])
    assert _go(run).text == ANSWER and run.streamed == ANSWER


@respx.mock
def test_a_call_retried_after_its_stream_broke_off_streams_nothing_twice() -> None:
    route = respx.post(URL).mock(side_effect=[_cut(answer(ANSWER), lines=4), streamed(answer(ANSWER))])
    pieces: list[str] = []
    run, _ = make_run(streamed=pieces)
    reply = _go(run)
    assert route.call_count == 2
    assert reply.text == ANSWER and run.streamed == ANSWER
    assert pieces[:3] == [ANSWER[0:7], ANSWER[7:14], ANSWER[14:21]], "the first attempt streamed"


@respx.mock
def test_a_retry_that_says_something_else_stops_streaming_and_the_reply_corrects_it() -> None:
    other = "The build is red because the runner ran out of disk."
    respx.post(URL).mock(side_effect=[_cut(answer(ANSWER), lines=4), streamed(answer(other))])
    run, _ = make_run(streamed=[])
    reply = _go(run)
    assert run.streamed == ANSWER[:21], "what the broken attempt said stays; nothing of the retry mixes in"
    assert reply.text == other


@respx.mock
def test_with_llm_stream_off_nothing_is_streamed_and_the_answer_arrives_whole() -> None:
    route = respx.post(URL).mock(return_value=plain(answer(ANSWER)))
    pieces: list[str] = []
    run, _ = make_run(streamed=pieces)
    reply = _go(run, stream=False)
    assert reply.text == ANSWER and run.streamed == "" and pieces == []
    assert b'"stream"' not in route.calls[0].request.content


@respx.mock
def test_a_server_that_ignores_stream_and_answers_json_streams_nothing() -> None:
    respx.post(URL).mock(return_value=plain(answer(ANSWER)))
    run, _ = make_run(streamed=[])
    assert _go(run).text == ANSWER and run.streamed == ""


@respx.mock
def test_a_cancelled_run_streams_nothing_more() -> None:
    run, _ = make_run(streamed=[])

    def answer_then_cancel(request: httpx.Request) -> httpx.Response:
        run.cancel()
        return streamed(answer(ANSWER))

    respx.post(URL).mock(side_effect=answer_then_cancel)
    _go(run)
    assert run.streamed == ""
