"""The ``llm`` agent (``GATEWAY_AGENT=llm``): an AI teammate on any OpenAI-compatible model.

It answers Slack mentions with the thread as context, reviews pull requests and answers issue
comments, and explains failed payments and disputes. The conversation starts from a per-platform
system prompt (or ``LLM_SYSTEM_PROMPT``), the session's earlier turns trimmed to
``LLM_HISTORY_TOKENS``, and the event; the model then reads what it needs through read-only tools
(``handlers.llm.tools``) under the run's budgets (``handlers.llm.loop``).

Run accounting (model, steps, tokens, tool calls, latency) is returned in ``Reply.data["llm"]``
and logged with the run's context.
"""

from __future__ import annotations

import functools

from gateway.config import LLMSettings, Settings
from handlers.agent import Event, Reply, Run
from handlers.errors import PermanentError
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.loop import Budgets, ToolLoop
from handlers.llm.prompts import build_messages
from handlers.llm.tools import tools_for

DEADLINE_RESERVE = 5.0


@functools.cache
def _settings() -> Settings:
    # Read once per worker process, like every other setting.
    return Settings.from_environ()


async def agent(event: Event, run: Run) -> Reply:
    """Answer ``event`` with the configured model (see the module docstring)."""
    return await answer(event, run, settings=_settings())


async def answer(event: Event, run: Run, *, settings: Settings) -> Reply:
    """``agent`` with explicit settings (tests, and custom agents that wrap this one)."""
    llm = settings.llm
    client = ChatClient(_chat_config(llm))
    tools = tools_for(event, settings)
    messages = build_messages(
        event, run.history, configured_prompt=llm.system_prompt, history_tokens=llm.history_tokens
    )
    run.log.info(
        "llm run starting",
        extra={"fields": {"messages": len(messages), "history": len(run.history), "tools": len(tools)}},
    )
    # Keep time to post the answer: 5 s, or a tenth of a short run's time.
    reserve = min(DEADLINE_RESERVE, run.remaining / 10)
    budgets = Budgets(max_steps=llm.max_steps, max_tokens=llm.max_tokens, reserve=reserve)
    return await ToolLoop(client, tools, run=run, budgets=budgets).run(messages)


def _chat_config(llm: LLMSettings) -> ChatConfig:
    if not llm.base_url or not llm.model:
        raise PermanentError("LLM_BASE_URL and LLM_MODEL must be set for GATEWAY_AGENT=llm")
    return ChatConfig(
        base_url=llm.base_url, model=llm.model, api_key=llm.api_key, timeout=llm.timeout, stream=llm.stream
    )
