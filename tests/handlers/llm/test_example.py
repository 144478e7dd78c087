"""The example agent loads by its documented name and uses the protocol as shown."""

from __future__ import annotations

import asyncio

from examples.my_agent import agent
from handlers.agent import Turn, load_agent
from tests.handlers.llm.model import make_run, slack_event


def test_the_example_agent_loads_reports_progress_and_counts_history() -> None:
    assert load_agent("examples.my_agent:agent") is agent
    run, progress = make_run(history=(Turn("user", "first", "2026-11-22T10:00:00+00:00", "Ev0"),))
    reply = asyncio.run(agent(slack_event("hello"), run))
    assert (
        reply.text == "slack: got “hello” from <@U1>. You have asked 1 time(s) before in this conversation."
    )
    assert progress == ["Reading the conversation"]
