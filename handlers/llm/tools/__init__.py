"""Read-only tools the model may call, one module per platform, scoped to the event's own objects.

A tool reads through the same SDK clients the platform handlers use (``handlers.clients``), runs the
blocking SDK call in a thread with ``clients.call`` (translation and retries), and returns text that
is capped at ``RESULT_LIMIT`` characters before it goes back to the model. Tools never write:
writes happen only through the reply. Each tool is bound to the event's repository, thread or
customer, so a model cannot be talked into reading someone else's data.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import Settings
from handlers.agent import Event

RESULT_LIMIT = 8000

Arguments = Mapping[str, Any]
ToolRun = Callable[[Arguments, float], Awaitable[str]]
"""``run(arguments, deadline)``: the tool's text result; ``deadline`` is a Unix time."""


class ToolError(Exception):
    """A tool cannot do what was asked (bad arguments, not found); the message goes to the model."""


@dataclass(frozen=True)
class Tool:
    """One function the model may call: its schema, what it does, and how to say what it is doing."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: ToolRun
    describe: Callable[[Arguments], str]

    def schema(self) -> dict[str, Any]:
        """The ``tools[]`` entry of a chat-completions request."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def tools_for(event: Event, settings: Settings) -> list[Tool]:
    """The tools that make sense for ``event`` (none when the platform's credentials are missing)."""
    # Imported here, not at the top: the platform modules import this package's helpers.
    if event.platform == "github":
        from handlers.llm.tools import github

        return github.build(event, settings)
    if event.platform == "slack":
        from handlers.llm.tools import slack

        return slack.build(event, settings)
    if event.platform == "stripe":
        from handlers.llm.tools import stripe

        return stripe.build(event, settings)
    return []


def cap(text: str, limit: int = RESULT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[cut: {len(text) - limit} more characters]"


def to_json(value: Any) -> str:
    """Compact JSON for a tool result (dates and SDK objects as strings)."""
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def schema(properties: dict[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON-schema object for a tool's parameters."""
    return {"type": "object", "properties": properties or {}, "required": list(required)}


def integer_argument(arguments: Arguments, name: str, default: int, *, low: int, high: int) -> int:
    """``arguments[name]`` as an int within ``[low, high]`` (``default`` when absent)."""
    value = arguments.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        value = int(value.strip().lstrip("#"))  # small models often quote numbers
    if not isinstance(value, int) or isinstance(value, bool):
        raise ToolError(f"{name} must be a whole number")
    return max(low, min(high, value))
