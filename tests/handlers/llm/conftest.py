"""Every LLM test starts with closed circuit breakers and the default token estimate."""

from __future__ import annotations

import pytest

from handlers.llm import memory
from handlers.llm.breaker import reset_breakers


@pytest.fixture(autouse=True)
def _fresh_llm_state() -> None:
    reset_breakers()
    memory.ESTIMATOR.chars_per_token = memory.DEFAULT_CHARS_PER_TOKEN
