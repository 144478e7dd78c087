"""What a tool the model may call is, and the helpers every platform's tools share.

Each platform package offers its read-only tools in its ``tools`` module (``WorkerPlatform.tools``).
A tool reads through the platform's own SDK client and ``call`` (translation and retries), and
returns text that is capped at ``RESULT_LIMIT`` characters before it goes back to the model.
Tools never write: writes happen only through the reply. Each tool is bound to the event's
repository, thread or customer, so a model cannot be talked into reading someone else's data.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.errors import ToolError

__all__ = [
    "RESULT_LIMIT",
    "Arguments",
    "Tool",
    "ToolError",
    "ToolRun",
    "cap",
    "integer_argument",
    "schema",
    "to_json",
]

RESULT_LIMIT = 8000

Arguments = Mapping[str, Any]
ToolRun = Callable[[Arguments, float], Awaitable[str]]
"""``run(arguments, deadline)``: the tool's text result; ``deadline`` is a Unix time."""


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
