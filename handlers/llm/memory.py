"""Conversation memory: the session's earlier turns as chat messages, trimmed to a token budget.

Tokens are estimated as characters / 4 (a fair average for English and code with common
tokenizers) until the server reports ``usage``; then ``TokenEstimator.observe`` learns this
process's real characters-per-token ratio, so later runs trim closer to the budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handlers.agent import Turn

__all__ = ["DEFAULT_CHARS_PER_TOKEN", "ESTIMATOR", "history_messages", "TokenEstimator"]

DEFAULT_CHARS_PER_TOKEN = 4.0
_MIN_RATIO, _MAX_RATIO = 1.5, 8.0  # guards against odd usage numbers (cached prompts, tiny calls)
_MIN_OBSERVED_CHARS = 400
_CUT = "…[earlier part cut] "


class TokenEstimator:
    """Characters-per-token, learned from the server's usage (a moving average), else 4."""

    def __init__(self, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> None:
        self.chars_per_token = chars_per_token

    def tokens(self, text: str) -> int:
        """Estimated tokens of ``text`` (at least 1 for non-empty text)."""
        return 0 if not text else max(1, round(len(text) / self.chars_per_token))

    def message_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Estimated tokens of a whole request's messages (their JSON, as the server gets it)."""
        return self.tokens(json.dumps(list(messages), ensure_ascii=False))

    def observe(self, chars: int, prompt_tokens: int) -> None:
        """Learn from one call: ``chars`` of prompt JSON were counted as ``prompt_tokens``."""
        if chars < _MIN_OBSERVED_CHARS or prompt_tokens <= 0:
            return
        ratio = min(_MAX_RATIO, max(_MIN_RATIO, chars / prompt_tokens))
        self.chars_per_token = 0.8 * self.chars_per_token + 0.2 * ratio


ESTIMATOR = TokenEstimator()
"""Shared by every run of the process, so what one run learns helps the next."""


def history_messages(
    history: Sequence[Turn], *, budget: int, estimator: TokenEstimator = ESTIMATOR
) -> list[dict[str, str]]:
    """The newest turns of ``history`` that fit ``budget`` tokens, oldest first, as chat messages.

    The newest turn that does not fit whole is cut from its start (its end is what was said last);
    older turns are dropped.
    """
    kept: list[dict[str, str]] = []
    left = budget
    for turn in reversed(history):
        cost = estimator.tokens(turn.text)
        if cost <= left:
            kept.append({"role": turn.role, "content": turn.text})
            left -= cost
            continue
        if left > 16:  # room for a meaningful tail
            chars = int(left * estimator.chars_per_token) - len(_CUT)
            kept.append({"role": turn.role, "content": _CUT + turn.text[-chars:]})
        break
    kept.reverse()
    return kept
