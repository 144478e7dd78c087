"""What the model and tool spans say, as OpenTelemetry's GenAI conventions name it.

A model call is a ``chat {model}`` span (kind client) around the whole call, in-place retries
included, as the conventions ask; a tool call an ``execute_tool {tool}`` span. They carry
names, sizes, token counts and finish reasons, never what was said: prompts, answers, tool
arguments and tool results can hold customer data, so the conventions' opt-in content
attributes (``gen_ai.input.messages``, ``gen_ai.tool.call.arguments``, ...) are not recorded.
https://github.com/open-telemetry/semantic-conventions/blob/v1.41.1/docs/gen-ai/gen-ai-spans.md
and ``openai.md`` beside it (the conventions now live in open-telemetry/semantic-conventions-genai,
whose ``gen-ai-spans.md`` adds that a span covers a call's automatic retries).

``gen_ai.provider.name`` is ``openai``: the client speaks the OpenAI chat-completions API to
whatever server ``LLM_BASE_URL`` names; ``server.address`` and ``gen_ai.request.model`` tell
which one it is. Errors are reported as ``error.type``, the exception's class
(``handlers.errors.TransientError``, ``DeadlineReached``, ...), or ``timeout`` for a tool.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway import tracing
from gateway.tracing import AttributeValue, Span
from handlers.llm.completion import Completion

if TYPE_CHECKING:  # the client imports this module
    from handlers.llm.client import ChatConfig

__all__ = ["answered", "chat", "tool"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def chat(config: ChatConfig) -> AbstractContextManager[Span]:
    """The span of one model call (``answered`` adds what came back)."""
    url = urlsplit(config.url)
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "openai.api.type": "chat_completions",
        "gen_ai.request.model": config.model,
        "gen_ai.request.max_tokens": config.max_tokens,
        "server.address": url.hostname or "",
        "server.port": url.port or _DEFAULT_PORTS.get(url.scheme, 0),
    }
    if config.stream:
        attributes["gen_ai.request.stream"] = True
    return tracing.span(f"chat {config.model}", kind="client", attributes=attributes)


def answered(completion: Completion) -> dict[str, AttributeValue]:
    """A model answer's finish reason and the tokens the server counted (when it said)."""
    attributes: dict[str, AttributeValue] = {}
    if completion.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
    if completion.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = completion.usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = completion.usage.completion_tokens
    return attributes


def tool(name: str, call_id: str) -> AbstractContextManager[Span]:
    """The span of one tool call the model asked for."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    return tracing.span(f"execute_tool {name}", attributes=attributes)
