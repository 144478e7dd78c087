"""The tool-calling loop: ask the model, run the tools it asks for, feed the results back, repeat.

Bounded three ways (``Budgets``): model calls (``LLM_MAX_STEPS``), tokens per run (``LLM_MAX_TOKENS``,
from the server's ``usage``) and the run's wall-clock deadline (``run.deadline``, minus a reserve for
posting the reply). On the last step the model gets no tools and is told to answer with what it has;
when tokens or time run out first, the reply is what the model said so far, and it says it stopped
early. The same happens when the conversation outgrows the model's context, or the server refuses
it for good (``ConversationRefused``): the work done is kept, nothing is retried. An answer cut at
``max_tokens`` (``finish_reason: "length"``) is posted as far as it goes and says it was cut; its
tool calls, likely cut mid-arguments, are not run. An unusable answer (nothing said, tool calls that
cannot be read) becomes an error reply. Every step and every tool call is reported with
``run.progress``. Follow-ups people sent while the run works join the conversation as user
turns before each model call (``handlers.llm.conversation``). The text of every streamed answer
goes to ``run.stream`` as it arrives (``handlers.llm.streaming``); the ``Reply`` is still the
whole answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.tracing import Span, error_type
from handlers import metrics
from handlers.agent import Reply, Run
from handlers.errors import (
    ContextExceeded,
    ConversationRefused,
    DeadlineReached,
    HandlerError,
    ToolError,
    UnusableAnswer,
)
from handlers.llm import spans
from handlers.llm.accounting import Accounting, Ending
from handlers.llm.client import ChatClient
from handlers.llm.completion import Completion, ToolCall
from handlers.llm.conversation import follow_up_turns
from handlers.llm.memory import ESTIMATOR, TokenEstimator
from handlers.llm.streaming import AnswerStream
from handlers.tools import Tool, cap

__all__ = ["MALFORMED_LIMIT", "MAX_CALLS_PER_STEP", "TOOL_TIMEOUT", "Budgets", "ToolLoop"]

MAX_CALLS_PER_STEP = 8
MALFORMED_LIMIT = 2  # unreadable tool calls tolerated per run (each is explained to the model first)
TOOL_TIMEOUT = 60.0
_WRAP_UP = "You have reached the step limit. Answer now with what you have; say what you could not check."
_STOPPED = {
    "steps": "the step limit of {max_steps} model calls was reached",
    "tokens": "the token budget of {max_tokens} tokens was used up",
    "deadline": "the run's time was almost up",
    "context": "the conversation outgrew the model's context window",
    "refused": "the model server refused the conversation",
    "length": "the model's answer reached its limit of {max_answer_tokens} tokens (LLM_MAX_ANSWER_TOKENS)",
}


@dataclass(frozen=True)
class Budgets:
    """Limits of one run; ``reserve`` seconds before the deadline are kept for posting the reply."""

    max_steps: int = 8
    max_tokens: int = 60000
    reserve: float = 5.0


class ToolLoop:
    """One run's conversation with the model. ``await ToolLoop(...).run(messages)`` returns the reply."""

    def __init__(
        self,
        client: ChatClient,
        tools: Sequence[Tool],
        *,
        run: Run,
        budgets: Budgets,
        estimator: TokenEstimator = ESTIMATOR,
    ) -> None:
        self.client, self._run, self.budgets, self.estimator = client, run, budgets, estimator
        self.tools = {tool.name: tool for tool in tools}
        self.account = Accounting(model=client.config.model)
        self._malformed = 0
        self._said: list[str] = []  # what the model wrote alongside its tool calls
        self._looked_at: list[str] = []
        self._stream = AnswerStream(run)

    async def run(self, messages: list[dict[str, Any]]) -> Reply:
        """Loop until an answer or a budget; raises only ``TransientError``/``PermanentError``."""
        for step in range(self.budgets.max_steps):
            self._run.raise_if_cancelled()
            ending = self._budget_spent(messages)
            if ending:
                return self._stopped(ending)
            messages.extend(follow_up_turns(self._run))
            final = step == self.budgets.max_steps - 1
            if final and step > 0:
                messages.append({"role": "user", "content": _WRAP_UP})
            self._run.progress(f"Thinking (step {step + 1} of {self.budgets.max_steps})")
            try:
                completion = await self._ask(messages, with_tools=not final)
            except DeadlineReached:
                return self._stopped("deadline")
            except ConversationRefused as exc:
                self._run.log.warning(
                    "model server refused the conversation", extra={"fields": {"error": str(exc)}}
                )
                return self._stopped("context" if isinstance(exc, ContextExceeded) else "refused")
            except UnusableAnswer as exc:
                return self._unusable(str(exc))
            if completion.finish_reason == "length":
                return self._cut(completion)
            if completion.tool_calls and not final:
                await self._use_tools(messages, completion)
                if self._malformed >= MALFORMED_LIMIT:
                    return self._unusable("the model's tool calls could not be read")
                continue
            if not completion.content:
                return self._unusable(
                    f"the model returned no text (finish reason: {completion.finish_reason})"
                )
            return self._answer(completion.content, cut_short=final and step > 0)
        return self._stopped("steps")  # only when max_steps is 0, which the settings forbid

    async def _ask(self, messages: list[dict[str, Any]], *, with_tools: bool) -> Completion:
        schemas = [tool.schema() for tool in self.tools.values()] if with_tools else []
        started = time.monotonic()
        deadline = self._run.deadline - self.budgets.reserve
        self._stream.step()
        completion = await self.client.complete(
            messages, tools=schemas, deadline=deadline, on_content=self._stream.feed
        )
        chars = len(json.dumps(messages, ensure_ascii=False))
        before = (self.account.prompt_tokens, self.account.completion_tokens)
        self.account.add_step(
            completion, prompt_chars=chars, seconds=time.monotonic() - started, estimator=self.estimator
        )
        metrics.count_model_tokens(
            self.account.prompt_tokens - before[0], self.account.completion_tokens - before[1]
        )
        return completion

    def _budget_spent(self, messages: list[dict[str, Any]]) -> Ending | None:
        if self._run.deadline - time.time() <= self.budgets.reserve:
            return "deadline"
        # The next call would send at least these messages again: stop before going over.
        if self.account.tokens + self.estimator.message_tokens(messages) > self.budgets.max_tokens:
            return "tokens"
        return None

    async def _use_tools(self, messages: list[dict[str, Any]], completion: Completion) -> None:
        if completion.content:
            self._said.append(completion.content)
        messages.append(completion.as_message())
        for index, call in enumerate(completion.tool_calls):
            if index >= MAX_CALLS_PER_STEP:
                result = f"error: at most {MAX_CALLS_PER_STEP} tool calls per step; ask again"
            else:
                result = await self._call_tool(call)
            # Every call needs its result message, or the next request is invalid.
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    async def _call_tool(self, call: ToolCall) -> str:
        tool = self.tools.get(call.name)
        arguments = _arguments(call.arguments)
        if tool is None or arguments is None:
            self._malformed += 1
            known = ", ".join(self.tools) or "none"
            if tool is None:
                return f"error: there is no tool named {call.name!r} (tools: {known})"
            return "error: the arguments must be a JSON object matching the tool's parameters"
        description = tool.describe(arguments)
        self._run.progress(description)
        self._looked_at.append(description)
        self.account.tool_calls += 1
        with spans.tool(tool.name, call.id) as span:
            return cap(await self._execute(tool, arguments, span))

    async def _execute(self, tool: Tool, arguments: dict[str, Any], span: Span) -> str:
        deadline = min(self._run.deadline - self.budgets.reserve, time.time() + TOOL_TIMEOUT)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                return await tool.run(arguments, deadline)
        except (ToolError, HandlerError) as exc:  # the model can often work around these
            self.account.tool_errors += 1
            span.fail(error_type(exc))
            return f"error: {exc}"
        except TimeoutError:
            self.account.tool_errors += 1
            span.fail("timeout")
            return "error: the tool took too long"

    def _answer(self, text: str, *, cut_short: bool) -> Reply:
        self.account.ending = "steps" if cut_short else "answer"
        if cut_short:
            text += "\n\n" + self._note("steps")
        return self._reply(text)

    def _cut(self, completion: Completion) -> Reply:
        """The answer hit ``max_tokens``: post what it says (or what was said before), marked as cut."""
        if completion.content:
            self.account.ending = "length"
            return self._reply(f"{completion.content}\n\n{self._note('length')}")
        return self._stopped("length")

    def _stopped(self, ending: Ending) -> Reply:
        self.account.ending = ending
        said = self._said[-1] if self._said else "I could not finish an answer."
        looked = f" I had looked at: {'; '.join(self._looked_at)}." if self._looked_at else ""
        return self._reply(f"{said}\n\n{self._note(ending, looked)}")

    def _unusable(self, problem: str) -> Reply:
        self.account.ending, self.account.error = "unusable", problem
        self._run.log.warning("unusable model answer", extra={"fields": {"problem": problem}})
        return self._reply(f"Sorry, I could not produce an answer: {problem}. Please try again.")

    def _note(self, ending: Ending, looked: str = "") -> str:
        why = _STOPPED[ending].format(
            max_steps=self.budgets.max_steps,
            max_tokens=self.budgets.max_tokens,
            max_answer_tokens=self.client.config.max_tokens,
        )
        return f"_(Stopped early: {why}; this answer may be incomplete.{looked})_"

    def _reply(self, text: str) -> Reply:
        data = self.account.as_data()
        self._run.log.info("llm run ended", extra={"fields": {**data, "reply_chars": len(text)}})
        return Reply(text=text, data={"llm": data})


def _arguments(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
