"""What one LLM run used: model, steps, tokens, tool calls, time; and how it ended.

The totals go back in ``Reply.data["llm"]`` and into the run's log line. Tokens come from the
server's ``usage``; when a server sends none, they are estimated (and ``tokens_estimated`` says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.llm.completion import Completion
from handlers.llm.memory import TokenEstimator

__all__ = ["Accounting", "Ending"]

Ending = Literal["answer", "steps", "tokens", "deadline", "length", "context", "refused", "unusable"]


@dataclass
class Accounting:
    """Running totals of one run; ``as_data()`` is the JSON-safe record."""

    model: str
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False
    tool_calls: int = 0
    tool_errors: int = 0
    model_seconds: float = 0.0
    ending: Ending | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens so far."""
        return self.prompt_tokens + self.completion_tokens

    def add_step(
        self, completion: Completion, *, prompt_chars: int, seconds: float, estimator: TokenEstimator
    ) -> None:
        """Count one model call; learn the chars-per-token ratio from its usage when there is one."""
        self.steps += 1
        self.model_seconds += seconds
        if completion.usage is not None:
            self.prompt_tokens += completion.usage.prompt_tokens
            self.completion_tokens += completion.usage.completion_tokens
            estimator.observe(prompt_chars, completion.usage.prompt_tokens)
            return
        self.tokens_estimated = True
        self.prompt_tokens += round(prompt_chars / estimator.chars_per_token)
        produced = (completion.content or "") + "".join(c.name + c.arguments for c in completion.tool_calls)
        self.completion_tokens += estimator.tokens(produced)

    def as_data(self) -> dict[str, Any]:
        """``{"model", "steps", "prompt_tokens", ..., "latency"}``, JSON-safe."""
        return {
            "model": self.model,
            "steps": self.steps,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_estimated": self.tokens_estimated,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "model_seconds": round(self.model_seconds, 3),
            "latency": round(time.monotonic() - self.started, 3),
            "ending": self.ending,
            **({"error": self.error} if self.error else {}),
        }
