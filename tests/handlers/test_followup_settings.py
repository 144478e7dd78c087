"""The follow-up settings: read once, checked, each bad value named."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from handlers.config import WorkerSettings


def test_defaults_steer_stop_and_no_bots() -> None:
    followups = WorkerSettings.from_environ({}).followups
    assert (followups.policy, followups.stop_word, followups.allow_bots) == ("steer", "stop", False)


def test_values_are_read_case_insensitively() -> None:
    environ = {"GATEWAY_FOLLOWUPS": "Interrupt", "GATEWAY_STOP_WORD": "HALT", "GATEWAY_ALLOW_BOTS": "on"}
    followups = WorkerSettings.from_environ(environ).followups
    assert (followups.policy, followups.stop_word, followups.allow_bots) == ("interrupt", "halt", True)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_FOLLOWUPS", "merge"),
        ("GATEWAY_STOP_WORD", "stop now"),
        ("GATEWAY_STOP_WORD", "/stop"),
        ("GATEWAY_ALLOW_BOTS", "yes"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        WorkerSettings.from_environ({variable: value})
    assert variable in str(refused.value)


def test_check_shows_the_effective_values() -> None:
    shown = WorkerSettings.from_environ({"GATEWAY_FOLLOWUPS": "queue"}).as_variables()
    assert (shown["GATEWAY_FOLLOWUPS"], shown["GATEWAY_STOP_WORD"], shown["GATEWAY_ALLOW_BOTS"]) == (
        "queue",
        "stop",
        "off",
    )
