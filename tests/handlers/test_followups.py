"""Follow-ups to a running run, with real worker processes and Redis: each policy, Stop, crashes."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest
import redis
from rq.registry import FinishedJobRegistry

from gateway.runs import read_events
from handlers.runtime.finish import FINISHED_KEPT
from handlers.state import runs, sessions
from tests.handlers.support import (
    BOT_USER,
    FAST,
    WorkerProcess,
    agent_log,
    enqueue,
    followup_state,
    job_status,
    slack_envelope,
    wait_until,
)
from tests.support.prometheus import samples, value
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(90)

THREAD = "100.0"


def _status(connection: redis.Redis, job_id: str) -> str:
    record = runs.get_run(connection, job_id)
    return str(record["status"]) if record else ""


def _record(connection: redis.Redis, job_id: str) -> dict[str, Any]:
    record = runs.get_run(connection, job_id)
    assert record is not None, job_id
    return record


def _lines(connection: redis.Redis, phase: str, delivery: str | None = None) -> list[dict[str, Any]]:
    return [
        line
        for line in agent_log(connection)
        if line["phase"] == phase and (delivery is None or line["delivery_id"] == delivery)
    ]


def _start(connection: redis.Redis, delivery: str, text: str, **script: Any) -> str:
    job_id = enqueue(connection, slack_envelope(delivery, thread=THREAD, text=text, test=script))
    wait_until(lambda: _status(connection, job_id) == "running")
    return job_id


def _follow_up(connection: redis.Redis, delivery: str, text: str, **fields: Any) -> str:
    return enqueue(connection, slack_envelope(delivery, thread=THREAD, text=text, **fields))


def _ended(connection: redis.Redis, *job_ids: str) -> bool:
    return all(_status(connection, job_id) in runs.TERMINAL for job_id in job_ids)


def _events(connection: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    return [{"event": e.kind, "data": e.data} for e in read_events(connection, job_id)]


def _history(connection: redis.Redis, session: str) -> list[tuple[str, str]]:
    return [(turn.role, turn.text) for turn in sessions.load_history(connection, session)]


def test_steer_hands_the_follow_up_to_the_running_run_which_reads_it_once(
    redis_url: str, redis_client: redis.Redis
) -> None:
    port = free_port()
    with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port)) as worker:
        first = _start(redis_client, "A1", "<@U0BOT> check the deploys", read=1)
        second = _follow_up(redis_client, "A2", "<@U0BOT> only the billing service")
        wait_until(lambda: _ended(redis_client, first, second))
        scraped = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        worker.signal(signal.SIGTERM)
    assert value(scraped, "gateway_followups_total", platform="slack") == 1
    (message,) = _lines(redis_client, "message", "A1")
    assert message["text"] == "only the billing service" and message["from_delivery"] == "A2"
    assert message["actor"] == "<@U1>"
    assert _lines(redis_client, "start", "A2") == [], "the follow-up never ran on its own"
    assert "read: only the billing service" in _record(redis_client, first)["reply"]
    assert "read by run slack-A1" in _record(redis_client, second)["note"]
    assert followup_state(redis_client, second) == "read"
    assert job_status(redis_client, second) == "finished", "closed with the run's ending, as RQ closes a job"
    assert second in FinishedJobRegistry("gateway", connection=redis_client).get_job_ids()
    assert redis_client.exists(f"rq:results:{second}") == 0, "kept as a finished run is: no RQ Result"
    assert b"billing" not in (redis_client.hget(f"rq:job:{second}", "data") or b""), "envelope stubbed"
    assert 0 < redis_client.ttl(f"rq:job:{second}") <= FINISHED_KEPT
    assert [e["data"]["status"] for e in _events(redis_client, second) if e["event"] == "done"] == [
        "succeeded"
    ]
    stream = [e for e in _events(redis_client, first) if e["event"] == "message"]
    assert len(stream) == 1 and stream[0]["data"]["text"] == "only the billing service"
    history = _history(redis_client, str(_record(redis_client, first)["session"]))
    assert [role for role, _ in history] == ["user", "user", "assistant"]
    assert history[1] == ("user", "only the billing service")


def test_steer_a_follow_up_the_run_never_read_runs_on_its_own_afterwards(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with WorkerProcess(redis_url, *FAST) as worker:
        first = _start(redis_client, "A1", "first", sleep=1)
        second = _follow_up(redis_client, "A2", "second")
        third = _follow_up(redis_client, "A3", "third")
        wait_until(lambda: followup_state(redis_client, third) == "inbox")
        wait_until(lambda: _ended(redis_client, first, second, third))
        worker.signal(signal.SIGTERM)
    starts = {line["delivery_id"]: line["time"] for line in _lines(redis_client, "start")}
    ends = {line["delivery_id"]: line["time"] for line in _lines(redis_client, "end")}
    assert ends["A1"] <= starts["A2"] and ends["A2"] <= starts["A3"], "in arrival order, one at a time"
    assert followup_state(redis_client, second) == followup_state(redis_client, third) == "unread"
    assert _status(redis_client, second) == _status(redis_client, third) == "succeeded"


def test_queue_keeps_follow_ups_out_of_the_run(redis_url: str, redis_client: redis.Redis) -> None:
    env = {"GATEWAY_FOLLOWUPS": "queue"}
    with WorkerProcess(redis_url, *FAST, env=env) as worker:
        first = _start(redis_client, "A1", "first", read=1, read_timeout=1.5)
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: _ended(redis_client, first, second))
        worker.signal(signal.SIGTERM)
    assert _lines(redis_client, "message") == []
    (start,) = _lines(redis_client, "start", "A2")
    assert start["history"] == ["first", _record(redis_client, first)["reply"]]
    assert followup_state(redis_client, second) == ""


def test_interrupt_cancels_the_run_and_the_new_run_gets_both_messages(
    redis_url: str, redis_client: redis.Redis
) -> None:
    env = {"GATEWAY_FOLLOWUPS": "interrupt"}
    with WorkerProcess(redis_url, *FAST, env=env) as worker:
        first = _start(redis_client, "A1", "summarise every incident", sleep=30)
        second = _follow_up(redis_client, "A2", "no, only yesterday's")
        wait_until(lambda: _ended(redis_client, first, second))
        worker.signal(signal.SIGTERM)
    assert _status(redis_client, first) == "cancelled"
    assert _status(redis_client, second) == "succeeded"
    (start,) = _lines(redis_client, "start", "A2")
    assert start["history"] == ["summarise every incident"]
    history = _history(redis_client, str(_record(redis_client, second)["session"]))
    assert [text for _, text in history][:2] == ["summarise every incident", "no, only yesterday's"]
    assert redis_client.get("gateway:cancel:slack-A1") == b"a newer message"


def test_reject_records_the_follow_up_without_running_it(redis_url: str, redis_client: redis.Redis) -> None:
    env = {"GATEWAY_FOLLOWUPS": "reject"}
    with WorkerProcess(redis_url, *FAST, env=env) as worker:
        first = _start(redis_client, "A1", "first", sleep=1.5)
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: _ended(redis_client, first, second))
        worker.signal(signal.SIGTERM)
    assert _lines(redis_client, "start", "A2") == []
    record = _record(redis_client, second)
    assert record["status"] == "succeeded" and "not run: run slack-A1" in record["note"]
    assert _status(redis_client, first) == "succeeded"


def test_the_stop_word_stops_the_run_whatever_the_policy(redis_url: str, redis_client: redis.Redis) -> None:
    with WorkerProcess(redis_url, *FAST, env={"GATEWAY_FOLLOWUPS": "queue"}) as worker:
        first = _start(redis_client, "A1", "first", sleep=30)
        stop = _follow_up(redis_client, "A2", "<@U0BOT> Stop")
        wait_until(lambda: _ended(redis_client, first, stop), timeout=10)
        worker.signal(signal.SIGTERM)
    assert _status(redis_client, first) == "cancelled"
    assert "stopped run slack-A1 for <@U1>" in _record(redis_client, stop)["note"]
    assert redis_client.get("gateway:cancel:slack-A1") == b"<@U1>"
    assert _lines(redis_client, "start", "A2") == []


def test_a_stop_with_nothing_running_runs_nothing(redis_url: str, redis_client: redis.Redis) -> None:
    stop = _follow_up(redis_client, "A2", "stop")
    with WorkerProcess(redis_url, *FAST, "--burst") as worker:
        assert worker.wait() == 0
    assert "no run of the conversation was working" in _record(redis_client, stop)["note"]
    assert _lines(redis_client, "start") == []


def test_our_own_message_in_the_thread_is_neither_a_follow_up_nor_a_run(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with WorkerProcess(redis_url, *FAST) as worker:
        first = _start(redis_client, "A1", "first", read=1, read_timeout=2)
        own = _follow_up(redis_client, "A2", "an answer we posted", user=BOT_USER, bot_id="B0BOT")
        other_bot = _follow_up(redis_client, "A3", "a bot's message", user="U0OTHER", bot_id="B0OTHER")
        wait_until(lambda: _ended(redis_client, first, own, other_bot))
        worker.signal(signal.SIGTERM)
    assert _lines(redis_client, "message") == []
    assert [line["delivery_id"] for line in _lines(redis_client, "start")] == ["A1"]
    assert followup_state(redis_client, own) == followup_state(redis_client, other_bot) == ""


def test_other_bots_count_when_allowed_but_never_our_own(redis_url: str, redis_client: redis.Redis) -> None:
    with WorkerProcess(redis_url, *FAST, env={"GATEWAY_ALLOW_BOTS": "on"}) as worker:
        first = _start(redis_client, "A1", "first", read=1, read_timeout=3)
        _follow_up(redis_client, "A2", "an answer we posted", user=BOT_USER, bot_id="B0BOT")
        other_bot = _follow_up(redis_client, "A3", "a bot's message", user="U0OTHER", bot_id="B0OTHER")
        wait_until(lambda: _ended(redis_client, first, other_bot))
        worker.signal(signal.SIGTERM)
    (message,) = _lines(redis_client, "message", "A1")
    assert message["from_delivery"] == "A3"


def test_a_follow_up_taken_by_another_worker_reaches_the_run(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The run's worker is frozen while another worker routes the follow-up; it still reads it."""
    with WorkerProcess(redis_url, "--name", "holder") as holder:
        first = _start(redis_client, "A1", "first", sleep=1, read=1)
        with WorkerProcess(redis_url, "--name", "router") as router:
            wait_until(lambda: redis_client.sismember("gateway:workers", "router"))
            holder.signal(signal.SIGSTOP)
            try:
                second = _follow_up(redis_client, "A2", "second")
                wait_until(lambda: followup_state(redis_client, second) == "inbox", timeout=10)
            finally:
                holder.signal(signal.SIGCONT)
            wait_until(lambda: _ended(redis_client, first, second))
            router.signal(signal.SIGTERM)
        holder.signal(signal.SIGTERM)
    assert _record(redis_client, first)["worker"] == "holder"
    (message,) = _lines(redis_client, "message", "A1")
    assert message["from_delivery"] == "A2"
    assert followup_state(redis_client, second) == "read"


def test_sigkill_between_the_inbox_and_the_read_the_rerun_reads_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with WorkerProcess(redis_url, *FAST) as doomed:
        first = _start(redis_client, "A1", "first", sleep=3, read=1)
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: followup_state(redis_client, second) == "inbox")
        assert _lines(redis_client, "message") == []
        doomed.signal(signal.SIGKILL)
        doomed.wait()
    with WorkerProcess(redis_url, *FAST) as survivor:
        wait_until(lambda: _ended(redis_client, first, second), timeout=30)
        survivor.signal(signal.SIGTERM)
    (message,) = _lines(redis_client, "message", "A1")
    assert message["attempt"] == 2 and message["from_delivery"] == "A2"
    assert _lines(redis_client, "start", "A2") == []
    assert followup_state(redis_client, second) == "read"
    assert job_status(redis_client, first) == "finished"


def test_sigkill_after_the_read_the_rerun_reads_it_again_and_it_is_still_consumed_once(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """An attempt that read a follow-up and died: its rerun starts afresh and gets it again."""
    with WorkerProcess(redis_url, *FAST) as doomed:
        first = _start(redis_client, "A1", "first", read=1, sleep_after=3)
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: len(_lines(redis_client, "message")) == 1)
        doomed.signal(signal.SIGKILL)
        doomed.wait()
    with WorkerProcess(redis_url, *FAST) as survivor:
        wait_until(lambda: _ended(redis_client, first, second), timeout=30)
        survivor.signal(signal.SIGTERM)
    assert [line["attempt"] for line in _lines(redis_client, "message", "A1")] == [1, 2]
    assert _lines(redis_client, "start", "A2") == []
    assert followup_state(redis_client, second) == "read"


def test_follow_ups_are_routed_while_every_slot_is_busy(redis_url: str, redis_client: redis.Redis) -> None:
    with WorkerProcess(redis_url, *FAST, "--concurrency", "1") as worker:
        first = _start(redis_client, "A1", "first", read=1)
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: _ended(redis_client, first, second))
        worker.signal(signal.SIGTERM)
    (message,) = _lines(redis_client, "message", "A1")
    assert message["from_delivery"] == "A2"


def test_a_synchronous_agent_takes_pending_messages(redis_url: str, redis_client: redis.Redis) -> None:
    with WorkerProcess(redis_url, *FAST, agent="tests.agents:blocking") as worker:
        first = enqueue(redis_client, slack_envelope("A1", thread=THREAD, test={"sleep": 2, "pending": True}))
        wait_until(lambda: _status(redis_client, first) == "running")
        second = _follow_up(redis_client, "A2", "second")
        wait_until(lambda: _ended(redis_client, first, second))
        worker.signal(signal.SIGTERM)
    assert [line["text"] for line in _lines(redis_client, "message", "A1")] == ["second"]
    assert followup_state(redis_client, second) == "read"


def test_interrupt_twice_the_second_follow_up_joins_the_waiting_run(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """While the interrupted run is still stopping, a newer message goes to the run that will
    replace it instead of interrupting again."""
    env = {"GATEWAY_FOLLOWUPS": "interrupt"}
    with WorkerProcess(redis_url, "--name", "holder", env=env) as holder:
        first = _start(redis_client, "A1", "first", sleep=30)
        with WorkerProcess(redis_url, "--name", "router", env=env) as router:
            wait_until(lambda: redis_client.sismember("gateway:workers", "router"))
            holder.signal(signal.SIGSTOP)  # the first run cannot stop before both arrive
            try:
                second = _follow_up(redis_client, "A2", "second", test={"pending": True})
                wait_until(lambda: followup_state(redis_client, second) == "interrupt", timeout=10)
                third = _follow_up(redis_client, "A3", "third")
                wait_until(lambda: followup_state(redis_client, third) == "inbox", timeout=10)
            finally:
                holder.signal(signal.SIGCONT)
            wait_until(lambda: _ended(redis_client, first, second, third), timeout=30)
            router.signal(signal.SIGTERM)
        holder.signal(signal.SIGTERM)
    assert _status(redis_client, first) == "cancelled"
    (start,) = _lines(redis_client, "start", "A2")
    assert start["history"] == ["first"]
    assert [line["text"] for line in _lines(redis_client, "message", "A2")] == ["third"]
    assert _lines(redis_client, "start", "A3") == [] and followup_state(redis_client, third) == "read"
