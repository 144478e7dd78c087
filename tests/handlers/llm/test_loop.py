"""The tool loop with respx playing the model: answers, tools, unusable answers and budgets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from handlers.agent import Reply, Run
from handlers.errors import TransientError
from handlers.llm.breaker import CircuitBreaker
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.loop import Budgets, ToolLoop
from handlers.retry import RetryPolicy
from handlers.tools import RESULT_LIMIT, Arguments, Tool, ToolError, schema
from tests.handlers.llm.model import BASE_URL, URL, answer, calls, make_run, plain, streamed

FAST = RetryPolicy(max_retries=2, base=0.01, cap=0.05)


def _lookup_tool(seen: list[Arguments], result: str = "build 412 failed in test_login") -> Tool:
    async def run(arguments: Arguments, deadline: float) -> str:
        seen.append(arguments)
        if arguments.get("id") == "missing":
            raise ToolError("no such build")
        return result

    return Tool(
        "ci_build",
        "A CI build by id.",
        schema({"id": {"type": "string"}}),
        run,
        lambda a: f"Reading build {a.get('id')}",
    )


def _loop(run: Run, tools: list[Tool], **budgets: Any) -> ToolLoop:
    client = ChatClient(
        ChatConfig(base_url=BASE_URL, model="test-model"), policy=FAST, breaker=CircuitBreaker()
    )
    return ToolLoop(client, tools, run=run, budgets=Budgets(**{"reserve": 0.0, **budgets}))


def _go(loop: ToolLoop) -> Reply:
    return asyncio.run(
        loop.run([{"role": "system", "content": "be brief"}, {"role": "user", "content": "why red?"}])
    )


def _sent(route: respx.Route, index: int) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)  # type: ignore[no-any-return]


@respx.mock
def test_plain_answer_is_the_reply_with_accounting_and_progress() -> None:
    respx.post(URL).mock(return_value=streamed(answer("All green.", usage=(120, 8))))
    run, progress = make_run()
    reply = _go(_loop(run, []))
    assert reply.text == "All green."
    llm = reply.data["llm"]
    assert (llm["model"], llm["steps"], llm["prompt_tokens"], llm["completion_tokens"]) == (
        "test-model",
        1,
        120,
        8,
    )
    assert llm["tool_calls"] == 0 and llm["ending"] == "answer" and llm["latency"] >= 0
    assert progress == ["Thinking (step 1 of 8)"]


@respx.mock
def test_multi_step_tool_use_feeds_results_back_until_an_answer() -> None:
    route = respx.post(URL).mock(
        side_effect=[
            streamed(calls(("ci_build", '{"id": "412"}'))),
            streamed(answer("Build 412 fails in test_login.", usage=(300, 30))),
        ]
    )
    seen: list[Arguments] = []
    run, progress = make_run()
    reply = _go(_loop(run, [_lookup_tool(seen)]))
    assert reply.text == "Build 412 fails in test_login." and seen == [{"id": "412"}]
    first, second = _sent(route, 0), _sent(route, 1)
    assert [t["function"]["name"] for t in first["tools"]] == ["ci_build"]
    assistant, tool_result = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_0"
    assert tool_result == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "build 412 failed in test_login",
    }
    assert progress == ["Thinking (step 1 of 8)", "Reading build 412", "Thinking (step 2 of 8)"]
    llm = reply.data["llm"]
    assert (llm["steps"], llm["tool_calls"], llm["prompt_tokens"], llm["completion_tokens"]) == (
        2,
        1,
        400,
        50,
    )


@respx.mock
def test_tool_errors_go_back_to_the_model_and_results_are_capped() -> None:
    route = respx.post(URL).mock(
        side_effect=[
            plain(calls(("ci_build", '{"id": "missing"}'), ("ci_build", '{"id": "big"}'))),
            plain(answer("Build missing; the other is huge.")),
        ]
    )
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool([], result="x" * (RESULT_LIMIT * 3))]))
    results = [m["content"] for m in _sent(route, 1)["messages"] if m["role"] == "tool"]
    assert results[0] == "error: no such build"
    assert len(results[1]) < RESULT_LIMIT + 100 and results[1].endswith(
        f"{RESULT_LIMIT * 2} more characters]"
    )
    assert reply.data["llm"]["tool_errors"] == 1


@respx.mock
def test_one_malformed_tool_call_is_explained_to_the_model_which_recovers() -> None:
    route = respx.post(URL).mock(
        side_effect=[
            streamed(calls(("ci_build", '{"id": "412"'))),  # truncated JSON
            streamed(calls(("ci_build", '{"id": "412"}'))),
            streamed(answer("Recovered.")),
        ]
    )
    seen: list[Arguments] = []
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool(seen)]))
    assert reply.text == "Recovered." and seen == [{"id": "412"}]
    assert "must be a JSON object" in _sent(route, 1)["messages"][-1]["content"]


@respx.mock
def test_repeated_malformed_tool_calls_become_a_clear_error_reply() -> None:
    respx.post(URL).mock(
        side_effect=[
            streamed(calls(("ci_build", "not json"))),
            streamed(calls(("no_such_tool", "{}"))),
            streamed(answer("never asked")),
        ]
    )
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool([])]))
    assert reply.text.startswith(
        "Sorry, I could not produce an answer: the model's tool calls could not be read"
    )
    assert reply.data["llm"]["ending"] == "unusable"


@respx.mock
def test_an_empty_answer_becomes_an_error_reply() -> None:
    respx.post(URL).mock(return_value=streamed(answer(None, finish="stop")))
    run, _ = make_run()
    reply = _go(_loop(run, []))
    assert "the model returned no text (finish reason: stop)" in reply.text


@respx.mock
def test_step_limit_makes_the_last_call_without_tools_and_says_it_stopped() -> None:
    route = respx.post(URL).mock(
        side_effect=[
            streamed(calls(("ci_build", '{"id": "1"}'))),
            streamed(answer("Partial: build 1 failed.")),
        ]
    )
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool([])], max_steps=2))
    last = _sent(route, 1)
    assert "tools" not in last and "step limit" in last["messages"][-1]["content"]
    assert reply.text.startswith("Partial: build 1 failed.")
    assert "Stopped early: the step limit of 2 model calls was reached" in reply.text
    assert reply.data["llm"]["ending"] == "steps"


@respx.mock
def test_token_budget_stops_before_the_next_call_and_answers_with_what_it_has() -> None:
    first = calls(("ci_build", '{"id": "7"}'), usage=(900, 150))
    first["choices"][0]["message"]["content"] = "Checking build 7."
    route = respx.post(URL).mock(side_effect=[streamed(first), streamed(answer("unreached"))])
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool([])], max_tokens=1000))
    assert route.call_count == 1
    assert reply.text.startswith("Checking build 7.")
    assert "token budget of 1000 tokens was used up" in reply.text and "Reading build 7" in reply.text
    assert reply.data["llm"]["ending"] == "tokens"


@respx.mock
def test_tokens_are_estimated_when_the_server_sends_no_usage() -> None:
    respx.post(URL).mock(return_value=streamed(answer("x" * 400, usage=None)))
    run, _ = make_run()
    llm = _go(_loop(run, [])).data["llm"]
    assert llm["tokens_estimated"] is True and llm["completion_tokens"] == 100 and llm["prompt_tokens"] > 0


@respx.mock
def test_deadline_while_waiting_for_the_model_answers_that_time_ran_out() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return plain(answer("too late"))

    respx.post(URL).mock(side_effect=slow)
    run, _ = make_run(seconds=0.4)
    reply = _go(_loop(run, []))
    assert "Stopped early: the run's time was almost up" in reply.text
    assert reply.data["llm"]["ending"] == "deadline"


@respx.mock
def test_a_model_that_stays_down_raises_transient_so_the_runtime_retries_the_job() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(502))
    run, _ = make_run()
    with pytest.raises(TransientError, match="HTTP 502"):
        _go(_loop(run, []))
    assert route.call_count == 1 + FAST.max_retries


@respx.mock
def test_an_answer_cut_at_max_tokens_is_posted_and_says_it_was_cut() -> None:
    respx.post(URL).mock(return_value=streamed(answer("The build broke because", finish="length")))
    run, _ = make_run()
    reply = _go(_loop(run, []))
    assert reply.text.startswith("The build broke because\n\n")
    assert "reached its limit of 2048 tokens (LLM_MAX_ANSWER_TOKENS)" in reply.text
    assert reply.data["llm"]["ending"] == "length"


@respx.mock
def test_a_tool_call_cut_at_max_tokens_is_not_run() -> None:
    seen: list[Arguments] = []
    cut = calls(("ci_build", '{"id": "4'))
    cut["choices"][0]["finish_reason"] = "length"
    route = respx.post(URL).mock(side_effect=[streamed(cut)])
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool(seen)]))
    assert seen == [] and route.call_count == 1
    assert reply.data["llm"]["ending"] == "length" and "may be incomplete" in reply.text


@pytest.mark.parametrize(
    ("status", "body", "ending"),
    [
        (400, {"error": {"code": 400, "type": "exceed_context_size_error",
                         "message": "request (783 tokens) exceeds the available context size (256 tokens)"}},
         "context"),
        (400, {"error": {"message": "This model's maximum context length is 8192 tokens.",
                         "code": "context_length_exceeded"}}, "context"),
        (500, {"error": {"code": 500, "type": "server_error",
                         "message": "Failed to parse tool call arguments as JSON: parse error at line 1"}},
         "refused"),
    ],
)  # fmt: skip
@respx.mock
def test_a_conversation_the_server_refuses_for_good_keeps_the_work_done_and_is_not_retried(
    status: int, body: dict[str, Any], ending: str
) -> None:
    seen: list[Arguments] = []
    route = respx.post(URL).mock(
        side_effect=[
            streamed(answer("Looking at build 412.", finish="stop") | calls(("ci_build", '{"id": "412"}'))),
            httpx.Response(status, json=body),
        ]
    )
    run, _ = make_run()
    reply = _go(_loop(run, [_lookup_tool(seen)]))
    assert route.call_count == 2, "an identical request would fail the same way: not retried"
    assert reply.data["llm"]["ending"] == ending and "Stopped early" in reply.text
    assert "I had looked at: Reading build 412" in reply.text


@respx.mock
def test_the_assistant_message_beside_tool_calls_has_empty_content_and_readable_arguments() -> None:
    seen: list[Arguments] = []
    route = respx.post(URL).mock(
        side_effect=[streamed(calls(("ci_build", '{"id": 41'))), streamed(answer("ok"))]
    )
    run, _ = make_run()
    _go(_loop(run, [_lookup_tool(seen)]))
    assistant = _sent(route, 1)["messages"][2]
    assert assistant["role"] == "assistant" and assistant["content"] == ""
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
