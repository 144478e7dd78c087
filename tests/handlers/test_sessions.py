"""Per-session ordering and state isolation, with real worker processes."""

from __future__ import annotations

import signal

import pytest
import redis

from handlers.state import runs
from tests.handlers import support
from tests.handlers.support import FAST, WorkerProcess, agent_log, enqueue, slack_envelope, wait_until

pytestmark = pytest.mark.timeout(90)


def _spans(lines: list[dict[str, object]]) -> dict[str, tuple[float, float]]:
    starts = {line["delivery_id"]: line["time"] for line in lines if line["phase"] == "start"}
    ends = {line["delivery_id"]: line["time"] for line in lines if line["phase"] == "end"}
    return {key: (float(starts[key]), float(ends[key])) for key in ends}  # type: ignore[arg-type]


def test_one_session_runs_in_arrival_order_while_others_run_in_parallel(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Two workers, many slots: events of one thread never overlap and keep their order."""
    ordered, parallel = [], []
    for i in range(6):
        ordered.append(enqueue(redis_client, slack_envelope(f"A{i}", thread="100.0", test={"sleep": 0.3})))
        parallel.append(
            enqueue(redis_client, slack_envelope(f"B{i}", thread=f"{200 + i}.0", test={"sleep": 0.3}))
        )
    with (
        WorkerProcess(redis_url, *FAST, "--concurrency", "10") as one,
        WorkerProcess(redis_url, *FAST) as two,
    ):
        wait_until(
            lambda: all(support.job_status(redis_client, j) == "finished" for j in ordered + parallel),
            timeout=30,
        )
        for worker in (one, two):
            worker.signal(signal.SIGTERM)
    spans = _spans(agent_log(redis_client))
    session = [spans[f"A{i}"] for i in range(6)]
    for (_, end), (start, _) in zip(session, session[1:], strict=False):
        assert start >= end, "a later event of the session started before the earlier one ended"
    others = [spans[f"B{i}"] for i in range(6)]
    assert max(start for start, _ in others) < min(end for _, end in others), "other sessions ran together"


def test_waiting_events_do_not_hold_concurrency_slots(redis_url: str, redis_client: redis.Redis) -> None:
    """With 2 slots, three parked events of a busy thread do not block other threads."""
    for i in range(4):
        enqueue(redis_client, slack_envelope(f"A{i}", thread="100.0", test={"sleep": 1.5 if i == 0 else 0}))
    for i in range(3):
        enqueue(redis_client, slack_envelope(f"B{i}", thread=f"{200 + i}.0"))
    with WorkerProcess(redis_url, *FAST, "--burst", "--concurrency", "2") as worker:
        assert worker.wait() == 0
    spans = _spans(agent_log(redis_client))
    assert all(spans[f"B{i}"][1] < spans["A0"][1] for i in range(3))
    assert [key for key, _ in sorted(spans.items(), key=lambda kv: kv[1][0]) if key.startswith("A")] == [
        "A0",
        "A1",
        "A2",
        "A3",
    ]
    for job_id in ("slack-A1", "slack-A2", "slack-A3"):  # each waited for A0, then ran
        record = runs.get_run(redis_client, job_id)
        assert record is not None and record["status"] == "succeeded", record
        assert "earlier event" not in record.get("note", ""), record


def test_history_is_per_session_and_only_written_on_success(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A run sees its own thread's earlier turns, never another thread's, never failed runs'."""
    enqueue(redis_client, slack_envelope("A1", thread="1.0", text="first in A"))
    enqueue(redis_client, slack_envelope("A2", thread="1.0", text="failing in A", test={"permanent": "no"}))
    enqueue(redis_client, slack_envelope("B1", thread="2.0", text="first in B"))
    enqueue(redis_client, slack_envelope("A3", thread="1.0", text="second in A"))
    enqueue(redis_client, slack_envelope("C1", thread="1.0", channel="C2", text="other channel"))
    with WorkerProcess(redis_url, *FAST, "--burst") as worker:
        assert worker.wait() == 0
    seen = {
        line["delivery_id"]: line["history"] for line in agent_log(redis_client) if line["phase"] == "start"
    }
    assert seen["A1"] == [] and seen["B1"] == [] and seen["C1"] == []
    assert seen["A3"][0] == "first in A" and len(seen["A3"]) == 2
    assert not any("failing" in text or "B" in text for text in seen["A3"])
