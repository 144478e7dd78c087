"""The ``llm`` agent (``GATEWAY_AGENT=llm``): an AI teammate on any OpenAI-compatible model.

It answers Slack mentions with the thread as context, reviews pull requests and answers issue
comments, and explains failed payments and disputes. The conversation starts from a per-platform
system prompt (or ``LLM_SYSTEM_PROMPT``), the session's earlier turns trimmed to
``LLM_HISTORY_TOKENS``, and the event; the model then reads what it needs through read-only tools
(each platform's ``tools`` module) under the run's budgets (``handlers.llm.loop``). Follow-ups
sent while it works join as user turns; where the platform can post into the conversation the
model may also ``ask_user`` (``handlers.llm.conversation``). With ``LLM_STREAM=on`` the model's
text is streamed with ``run.stream`` as it arrives (``handlers.llm.streaming``); the reply is
the whole answer.

Run accounting (model, steps, tokens, tool calls, latency) is returned in ``Reply.data["llm"]``
and logged with the run's context.
"""

from __future__ import annotations

from handlers.agent import Event, Reply, Run
from handlers.config import LLMSettings
from handlers.followups import cannot_say
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.conversation import ask_tool
from handlers.llm.loop import Budgets, ToolLoop
from handlers.llm.prompts import build_messages
from handlers.registry import PLATFORMS
from handlers.services import Services
from handlers.tools import Tool

__all__ = ["DEADLINE_RESERVE", "agent", "answer", "tools_for"]

DEADLINE_RESERVE = 5.0


async def agent(event: Event, run: Run) -> Reply:
    """Answer ``event`` with the configured model (see the module docstring)."""
    return await answer(event, run, settings=run.services.settings.llm)


def tools_for(event: Event, services: Services) -> list[Tool]:
    """The read-only tools ``event``'s platform offers (none when its credentials are missing)."""
    platform = PLATFORMS.get(event.platform)
    return platform.tools(event, services) if platform is not None else []


async def answer(event: Event, run: Run, *, settings: LLMSettings) -> Reply:
    """``agent`` with explicit LLM settings (tests, and custom agents that wrap this one)."""
    llm = settings
    client = ChatClient(ChatConfig.from_settings(llm))
    platform = PLATFORMS.get(event.platform)
    tools = tools_for(event, run.services)
    if platform is not None and platform.say is not cannot_say:
        tools.append(ask_tool(run))
    messages = build_messages(
        event,
        run.history,
        configured_prompt=llm.system_prompt,
        history_tokens=llm.history_tokens,
        platform_prompt=platform.prompt if platform is not None else "",
        notes=platform.notes(event) if platform is not None else (),
    )
    run.log.info(
        "llm run starting",
        extra={"fields": {"messages": len(messages), "history": len(run.history), "tools": len(tools)}},
    )
    # Keep time to post the answer: 5 s, or a tenth of a short run's time.
    reserve = min(DEADLINE_RESERVE, run.remaining / 10)
    budgets = Budgets(max_steps=llm.max_steps, max_tokens=llm.max_tokens, reserve=reserve)
    return await ToolLoop(client, tools, run=run, budgets=budgets).run(messages)
