"""The ``llm`` agent hears follow-ups between model calls and can ask the person a question."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import respx

from handlers.agent import Run
from handlers.llm.breaker import CircuitBreaker
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.conversation import ask_tool
from handlers.llm.loop import Budgets, ToolLoop
from handlers.messages import Mailbox, Message
from handlers.retry import RetryPolicy
from handlers.tools import Arguments, Tool, schema
from tests.handlers.llm.model import BASE_URL, URL, answer, calls, make_run, streamed


def _message(text: str, delivery: str = "Ev2") -> Message:
    return Message(text, "<@U2>", "slack", delivery, "2026-11-22T11:00:05+00:00")


def _run_with(mailbox: Mailbox) -> Run:
    run, _ = make_run(mailbox=mailbox)  # the worker fills the mailbox; here the test does
    return run


def _loop(run: Run, tools: list[Tool]) -> ToolLoop:
    client = ChatClient(
        ChatConfig(base_url=BASE_URL, model="test-model"),
        policy=RetryPolicy(max_retries=1, base=0.01, cap=0.01),
        breaker=CircuitBreaker(),
    )
    return ToolLoop(client, tools, run=run, budgets=Budgets(reserve=0.0))


def _sent(route: respx.Route, index: int) -> list[dict[str, Any]]:
    return json.loads(route.calls[index].request.content)["messages"]  # type: ignore[no-any-return]


def _start() -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": "check the deploys"}]


@respx.mock
def test_a_follow_up_that_came_in_during_a_tool_call_is_a_user_turn_of_the_next_call() -> None:
    mailbox = Mailbox()

    async def deploys(arguments: Arguments, deadline: float) -> str:
        mailbox.add([_message("only the billing service")])  # arrives while the tool runs
        return "3 deploys"

    tool = Tool("deploys", "Deploys.", schema(), deploys, lambda a: "Reading deploys")
    route = respx.post(URL).mock(
        side_effect=[streamed(calls(("deploys", "{}"))), streamed(answer("Billing deployed once."))]
    )
    run = _run_with(mailbox)
    reply = asyncio.run(_loop(run, [tool]).run(_start()))
    assert reply.text == "Billing deployed once."
    assert [m["role"] for m in _sent(route, 0)] == ["system", "user"]
    last = _sent(route, 1)[-1]
    assert last["role"] == "user" and last["content"].endswith("only the billing service")
    assert "<@U2>" in last["content"]
    assert [m.text for m in run.read_messages] == ["only the billing service"]


@respx.mock
def test_follow_ups_waiting_before_the_first_call_are_heard_at_once() -> None:
    mailbox = Mailbox()
    mailbox.add([_message("and staging too")])
    route = respx.post(URL).mock(return_value=streamed(answer("Both checked.")))
    asyncio.run(_loop(_run_with(mailbox), []).run(_start()))
    assert _sent(route, 0)[-1]["content"].endswith("and staging too")


def test_ask_user_posts_the_question_and_returns_the_answer() -> None:
    mailbox, asked = Mailbox(), []
    run = _run_with(mailbox)

    async def post(question: str, within: float) -> Message | None:
        asked.append(question)
        mailbox.add([_message("billing")])  # the person answers in the thread
        return await run.next_message(within)

    run.can_ask(post)
    result = asyncio.run(ask_tool(run, wait=5).run({"question": "Which service?"}, run.deadline))
    assert asked == ["Which service?"] and result == "<@U2> answered: billing"


def test_ask_user_without_an_answer_says_so_and_where_nothing_can_be_posted() -> None:
    run = _run_with(Mailbox())

    async def post(question: str, within: float) -> Message | None:
        return await run.next_message(within)

    run.can_ask(post)
    result = asyncio.run(ask_tool(run, wait=0.2).run({"question": "Which one?"}, run.deadline))
    assert result.startswith("No answer within")
    silent = _run_with(Mailbox())  # no platform conversation bound
    assert asyncio.run(silent.ask("Which one?", 1.0)) is None
