"""The ``llm`` agent in a live conversation: follow-ups as user turns, and a tool to ask a question.

Between model calls the tool loop adds the follow-ups that came in (``Run.pending_messages``)
as user turns, so the model hears "only the billing service" before its next step. Where the
platform can post into the conversation (Slack, GitHub), the model also gets ``ask_user``:
it posts the question (``Run.ask``) and waits up to ``ASK_WAIT`` seconds, within the run's
deadline, for the answer.
"""

from __future__ import annotations

import time
from typing import Any

from handlers.agent import Run
from handlers.tools import Arguments, Tool, ToolError, schema

__all__ = ["ASK_TOOL", "ASK_WAIT", "MAX_QUESTION", "ask_tool", "follow_up_turns"]

ASK_TOOL = "ask_user"
ASK_WAIT = 50.0  # below the tool loop's per-call limit (60 s)
MAX_QUESTION = 1000


def follow_up_turns(run: Run) -> list[dict[str, Any]]:
    """The follow-ups received since the last call, as chat messages (taking them: they are read)."""
    turns = []
    for message in run.pending_messages():
        who = f" from {message.actor}" if message.actor else ""
        turns.append(
            {"role": "user", "content": f"Follow-up{who}, sent while you were working:\n{message.text}"}
        )
    return turns


def ask_tool(run: Run, *, wait: float = ASK_WAIT) -> Tool:
    """``ask_user(question)``: post ``question`` into the conversation and return the answer."""

    async def ask(arguments: Arguments, deadline: float) -> str:
        question = arguments.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolError("question must be a non-empty string")
        within = max(0.0, min(wait, deadline - time.time()))
        answer = await run.ask(question.strip()[:MAX_QUESTION], within)
        if answer is None:
            return f"No answer within {within:.0f} s. Go on with what you have and say what you assumed."
        return f"{answer.actor or 'The person'} answered: {answer.text}"

    return Tool(
        ASK_TOOL,
        "Ask the person you are answering a question, in the conversation, and wait for the answer "
        f"(up to {wait:.0f} s). Only when you cannot go on without their decision.",
        schema({"question": {"type": "string", "description": "one short question"}}, ("question",)),
        ask,
        lambda arguments: f"Asking: {str(arguments.get('question', ''))[:200]}",
    )
