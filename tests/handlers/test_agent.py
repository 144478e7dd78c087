"""Loading agents by ``GATEWAY_AGENT`` and the worker's refusal to start without one."""

from __future__ import annotations

import pytest

from handlers.agent import Event, Run, load_agent
from handlers.agents.triage import summarise
from handlers.cli import worker_main
from handlers.config import WorkerSettings
from handlers.errors import AgentLoadError
from handlers.services import Services


def test_builtin_triage_loads() -> None:
    assert callable(load_agent("triage"))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("nowhere.at_all:agent", "cannot import"),
        ("tests.agents:missing", "no attribute"),
        ("tests.agents:not_callable", "not callable"),
        ("tests.agents:wrong_arity", "two positional arguments"),
    ],
)
def test_bad_agent_specs_are_refused_with_a_reason(spec: str, problem: str) -> None:
    with pytest.raises(AgentLoadError, match=problem):
        load_agent(spec)


def test_worker_exits_2_before_taking_jobs_on_a_bad_agent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_AGENT", "tests.agents:missing")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    assert worker_main([]) == 2
    assert capsys.readouterr().err.startswith("error: GATEWAY_AGENT: ")


def test_worker_exits_2_on_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_CONCURRENCY", "many")
    assert worker_main([]) == 2
    assert capsys.readouterr().err.startswith("error: GATEWAY_CONCURRENCY: ")


def test_worker_exits_1_when_redis_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("GATEWAY_AGENT", raising=False)
    assert worker_main([]) == 1


def test_triage_summary_names_event_actor_object_and_text() -> None:
    event = Event(
        platform="github",
        delivery_id="d",
        name="issues",
        action="opened",
        received_at="",
        session_key="k",
        actor="octocat",
        subject="org/repo#7",
        title="Crash on start",
        text="It crashes\n when started.",
    )
    text = summarise(event, earlier=2)
    assert text == (
        "GitHub issues.opened by octocat on org/repo#7: “Crash on start”. It crashes when started. "
        "(2 earlier messages in this conversation.)"
    )


def test_run_progress_and_cancellation_signal() -> None:
    import logging

    seen: list[str] = []
    run = Run(
        job_id="j",
        delivery_id="d",
        attempt=1,
        history=(),
        deadline=0.0,
        log=logging.LoggerAdapter(logging.getLogger("t")),
        on_progress=seen.append,
        services=Services(WorkerSettings.from_environ({})),
    )
    run.progress("one")
    assert run.messages == ("one",) and seen == ["one"] and run.remaining == 0.0
    assert not run.cancelled
    run.cancel()
    assert run.cancelled
