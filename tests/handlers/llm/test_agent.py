"""The ``llm`` agent end to end inside the process: settings → prompt → tools → model → reply."""

from __future__ import annotations

import asyncio
import json

import respx

from handlers.agent import Turn, load_agent
from handlers.agents import llm
from handlers.config import WorkerSettings
from handlers.services import Services
from tests.fakes import SlackFake
from tests.handlers.llm.model import BASE_URL, URL, answer, calls, make_run, slack_event, streamed


def test_gateway_agent_llm_loads_the_llm_agent() -> None:
    assert load_agent("llm") is llm.agent


@respx.mock
def test_a_slack_mention_reads_the_thread_and_answers_with_history() -> None:
    with SlackFake() as slack:
        thread = slack.seed_message("C1", "deploy of api is stuck at 40%", ts="1700000000.000100")
        settings = WorkerSettings.from_environ(
            {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_API_URL": slack.base_url,
                "GATEWAY_AGENT": "llm",
                "LLM_BASE_URL": BASE_URL,
                "LLM_MODEL": "test-model",
                "LLM_API_KEY": "sk-secret",
            }
        )
        route = respx.post(URL).mock(
            side_effect=[
                streamed(calls(("slack_thread", "{}"))),
                streamed(answer("The api deploy is stuck at 40%; check the migration job.")),
            ]
        )
        history = (
            Turn("user", "earlier question", "2026-11-22T10:00:00+00:00", "Ev0"),
            Turn("assistant", "earlier answer", "2026-11-22T10:00:01+00:00", "Ev0"),
        )
        run, progress = make_run(history=history, services=Services(settings))
        reply = asyncio.run(llm.answer(slack_event(thread=thread), run, settings=settings.llm))

    assert reply.text.startswith("The api deploy is stuck")
    first = json.loads(route.calls[0].request.content)
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user"]
    assert [t["function"]["name"] for t in first["tools"]] == ["slack_thread", "ask_user"]
    tool_result = json.loads(route.calls[1].request.content)["messages"][-1]
    assert "deploy of api is stuck at 40%" in tool_result["content"]
    assert "Reading the thread" in progress
    assert reply.data["llm"]["tool_calls"] == 1 and reply.data["llm"]["steps"] == 2
