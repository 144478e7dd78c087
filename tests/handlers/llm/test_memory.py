"""Session history trimmed to a token budget, prompts per platform, and the prompt settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from gateway.errors import ConfigError
from handlers.agent import Turn
from handlers.config import WorkerSettings
from handlers.llm.memory import TokenEstimator, history_messages
from handlers.llm.prompts import build_messages, event_message, system_prompt
from handlers.slack.tools import PROMPT as SLACK_PROMPT
from tests.handlers.llm.model import slack_event


def _turns(count: int, chars: int = 400) -> tuple[Turn, ...]:
    roles: tuple[Literal["user"], Literal["assistant"]] = ("user", "assistant")
    return tuple(
        Turn(roles[i % 2], f"{i}:" + "x" * (chars - len(f"{i}:")), "2026-11-22T11:00:00+00:00", f"d{i}")
        for i in range(count)
    )


def test_history_keeps_the_newest_turns_that_fit_and_cuts_the_next_one() -> None:
    kept = history_messages(_turns(10), budget=350, estimator=TokenEstimator())
    assert [m["content"][:2] for m in kept[1:]] == ["7:", "8:", "9:"]
    assert kept[0]["content"].startswith("…[earlier part cut] ") and kept[0]["role"] == "user"
    assert sum(len(m["content"]) for m in kept) <= 350 * 4
    assert [m["role"] for m in kept[1:]] == ["assistant", "user", "assistant"]


def test_no_history_budget_sends_no_history() -> None:
    assert history_messages(_turns(3), budget=0) == []


def test_the_estimate_learns_from_the_servers_usage() -> None:
    estimator = TokenEstimator()
    for _ in range(30):
        estimator.observe(chars=3000, prompt_tokens=1000)  # 3 chars per token
    assert estimator.chars_per_token == pytest.approx(3.0, abs=0.05)
    assert estimator.tokens("x" * 300) == 100


def test_messages_open_with_the_platform_prompt_then_history_then_the_event() -> None:
    history = _turns(2, chars=40)
    messages = build_messages(
        slack_event("deploy?"),
        history,
        configured_prompt=None,
        history_tokens=1000,
        platform_prompt=SLACK_PROMPT,
    )
    assert messages[0] == {"role": "system", "content": system_prompt(SLACK_PROMPT)}
    assert (
        messages[0]["content"].startswith("You are an AI teammate") and SLACK_PROMPT in messages[0]["content"]
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"].startswith("Platform: slack\nEvent: app_mention")
    assert messages[-1]["content"].endswith("Message:\ndeploy?")
    configured = build_messages(slack_event(), (), configured_prompt="Talk like a pirate.", history_tokens=0)
    assert configured[0]["content"] == "Talk like a pirate." and len(configured) == 2


def test_the_event_message_quotes_facts_capped() -> None:
    event = replace(slack_event(), facts={"queue": "x" * 10000})
    text = event_message(event)
    assert 'Known facts (JSON): {"queue"' in text and len(text) < 5000


def test_system_prompt_setting_reads_a_file_or_takes_the_text(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You review Terraform.\n")
    assert (
        WorkerSettings.from_environ({"LLM_SYSTEM_PROMPT": f"@{prompt}"}).llm.system_prompt
        == "You review Terraform."
    )
    assert WorkerSettings.from_environ({"LLM_SYSTEM_PROMPT": "Be terse."}).llm.system_prompt == "Be terse."
    with pytest.raises(ConfigError, match="LLM_SYSTEM_PROMPT"):
        WorkerSettings.from_environ({"LLM_SYSTEM_PROMPT": f"@{tmp_path / 'missing.txt'}"})


@pytest.mark.parametrize(
    ("name", "value"), [("LLM_MAX_STEPS", "0"), ("LLM_TIMEOUT", "soon"), ("LLM_STREAM", "maybe")]
)
def test_bad_llm_settings_stop_start_up_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WorkerSettings.from_environ({name: value})
