"""The worker runtime end to end: real Redis, real worker processes, RQ's job model."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import redis
from rq.command import send_stop_job_command
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from handlers.state import runs
from tests.handlers.support import (
    FAST,
    QUEUE,
    ROOT,
    WorkerProcess,
    agent_log,
    enqueue,
    job_status,
    slack_envelope,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


def _status(connection: redis.Redis, job_id: str) -> str:
    record = runs.get_run(connection, job_id)
    return record["status"] if record else ""


def test_runs_many_jobs_at_once_in_one_process(redis_url: str, redis_client: redis.Redis) -> None:
    """Twenty 1-second runs of different sessions overlap inside a single worker process."""
    ids = [
        enqueue(redis_client, slack_envelope(f"E{i}", thread=f"{i}.0", test={"sleep": 1})) for i in range(20)
    ]
    with WorkerProcess(redis_url, "--burst", "--concurrency", "50") as worker:
        assert worker.wait() == 0
    assert all(job_status(redis_client, job_id) == "finished" for job_id in ids)
    lines = agent_log(redis_client)
    assert len({line["pid"] for line in lines}) == 1
    starts = sorted(line["time"] for line in lines if line["phase"] == "start")
    first_end = min(line["time"] for line in lines if line["phase"] == "end")
    assert sum(start < first_end for start in starts) == 20, "all runs were in flight together"
    assert len(FinishedJobRegistry(QUEUE, connection=redis_client)) == 20


def test_rq_info_lists_the_worker_and_its_queue(redis_url: str, redis_client: redis.Redis) -> None:
    """Operators keep ``rq info``: the worker shows up, busy, on the gateway queue."""
    # Long enough to still run after `rq info` starts on a loaded machine; the worker is killed at the end.
    job_id = enqueue(redis_client, slack_envelope("E1", test={"sleep": 30}))
    with WorkerProcess(redis_url, "--name", "info-probe", *FAST):
        wait_until(lambda: _status(redis_client, job_id) == "running")
        info = subprocess.run(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "info",
                "--url",
                redis_url,
                "-S",
                "rq.serializers.JSONSerializer",
                QUEUE,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
        )
        assert "info-probe" in info.stdout, info.stdout + info.stderr
        assert job_status(redis_client, job_id) == "started"
        assert job_id in StartedJobRegistry(QUEUE, connection=redis_client).get_job_ids()


def test_sigkilled_worker_job_reruns_elsewhere_once(redis_url: str, redis_client: redis.Redis) -> None:
    """A run whose worker is SIGKILLed is reaped by a live worker, rerun, and finished once."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"sleep": 2}))
    with WorkerProcess(redis_url, *FAST) as doomed:
        wait_until(lambda: _status(redis_client, job_id) == "running")
        doomed.signal(signal.SIGKILL)
        doomed.wait()
    with WorkerProcess(redis_url, *FAST) as survivor:
        wait_until(lambda: job_status(redis_client, job_id) == "finished", timeout=15)
        survivor.signal(signal.SIGTERM)
        assert survivor.wait() == 0
    ends = [line for line in agent_log(redis_client) if line["phase"] == "end"]
    assert len(ends) == 1 and ends[0]["attempt"] == 2
    assert runs.get_run(redis_client, job_id)["attempts"] == 2  # type: ignore[index]
    assert StartedJobRegistry(QUEUE, connection=redis_client).get_job_ids() == []


def test_live_worker_reaps_a_dead_one_while_running(redis_url: str, redis_client: redis.Redis) -> None:
    """Detection does not wait for a restart: a worker already running picks the job up."""
    with WorkerProcess(redis_url, *FAST, "--name", "live") as live:
        job_id = enqueue(redis_client, slack_envelope("E1", test={"sleep": 1}))
        wait_until(lambda: _status(redis_client, job_id) == "running")
        holder = runs.get_run(redis_client, job_id)["worker"]  # type: ignore[index]
        if holder == "live":  # the live worker took it: start a victim and give it the next job
            wait_until(lambda: job_status(redis_client, job_id) == "finished")
            job_id = None
        with WorkerProcess(redis_url, *FAST, "--name", "victim") as victim:
            if job_id is None:
                live.signal(signal.SIGSTOP)  # make sure the victim takes the job
                job_id = enqueue(redis_client, slack_envelope("E2", thread="2.0", test={"sleep": 30}))
                wait_until(lambda: _status(redis_client, job_id) == "running")
                live.signal(signal.SIGCONT)
            victim.signal(signal.SIGKILL)
        wait_until(
            lambda: (
                job_status(redis_client, job_id) in ("started", "finished")
                and runs.get_run(redis_client, job_id)["worker"] == "live"
            ),
            timeout=30,
        )  # type: ignore[index]


def test_sigterm_drains_then_requeues_what_is_left(redis_url: str, redis_client: redis.Redis) -> None:
    """SIGTERM: no new jobs; a short run finishes, a long one is requeued after the grace period."""
    short = enqueue(redis_client, slack_envelope("short", thread="1.0", test={"sleep": 1}))
    long = enqueue(redis_client, slack_envelope("long", thread="2.0", test={"sleep": 30}))
    with WorkerProcess(redis_url, *FAST, "--grace", "2") as worker:
        wait_until(
            lambda: _status(redis_client, short) == "running" and _status(redis_client, long) == "running"
        )
        worker.signal(signal.SIGTERM)
        time.sleep(0.5)
        waiting = enqueue(redis_client, slack_envelope("late", thread="3.0"))
        assert worker.wait(timeout=20) == 0
    assert job_status(redis_client, short) == "finished"
    assert job_status(redis_client, long) == "queued"
    assert _status(redis_client, long) == "queued"
    assert job_status(redis_client, waiting) == "queued"
    assert redis_client.lrange(f"rq:queue:{QUEUE}", 0, -1)[0] == long.encode(), "requeued at the front"
    assert StartedJobRegistry(QUEUE, connection=redis_client).get_job_ids() == []


def test_second_signal_exits_at_once_and_requeues(redis_url: str, redis_client: redis.Redis) -> None:
    """A second signal does not wait for the grace period."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"sleep": 30}))
    with WorkerProcess(redis_url, *FAST, "--grace", "60") as worker:
        wait_until(lambda: _status(redis_client, job_id) == "running")
        worker.signal(signal.SIGTERM)
        time.sleep(0.3)  # the first signal is handled; the second must not wait for the grace
        worker.signal(signal.SIGINT)
        assert worker.wait(timeout=10) == 1
    assert job_status(redis_client, job_id) == "queued"


def test_deadline_ends_the_run_as_timed_out_with_partial_output(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A run past its deadline ends timed_out, keeps its progress, is not retried."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"progress": ["step 1", "step 2"], "sleep": 60}))
    with WorkerProcess(redis_url, *FAST, "--burst", "--deadline", "1") as worker:
        assert worker.wait() == 0
        log = worker.output()
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "timed_out"
    assert record["progress"] == ["step 1", "step 2"]
    assert record["attempts"] == 1
    assert job_id in FailedJobRegistry(QUEUE, connection=redis_client)
    assert "run timed out" in log


def test_transient_errors_are_retried_then_succeed(redis_url: str, redis_client: redis.Redis) -> None:
    """Two transient failures go through RQ's scheduled registry; the third attempt succeeds."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"transient": 2}))
    with WorkerProcess(redis_url, *FAST, "--burst", "--retry-base", "0.2") as worker:
        assert worker.wait(timeout=40) == 0
    assert job_status(redis_client, job_id) == "finished"
    record = runs.get_run(redis_client, job_id)
    assert record is not None and (record["attempts"], record["retries"], record["status"]) == (
        3,
        2,
        "succeeded",
    )


def test_transient_errors_give_up_after_the_cap(redis_url: str, redis_client: redis.Redis) -> None:
    """Past ``--max-retries`` a transient failure fails for good, with the reason."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"transient": 10}))
    with WorkerProcess(redis_url, *FAST, "--burst", "--retry-base", "0.1", "--max-retries", "1") as worker:
        assert worker.wait(timeout=40) == 0
    record = runs.get_run(redis_client, job_id)
    assert record is not None and record["status"] == "failed" and "gave up after 1" in record["error"]


def test_permanent_failure_fails_at_once_into_rq_failed_registry(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Permanent errors and agent bugs are not retried; the reason is in RQ and the run record."""
    auth = enqueue(redis_client, slack_envelope("E1", thread="1.0", test={"permanent": "bad credentials"}))
    bug = enqueue(redis_client, slack_envelope("E2", thread="2.0", test={"bug": True}))
    with WorkerProcess(redis_url, *FAST, "--burst") as worker:
        assert worker.wait() == 0
    failed = FailedJobRegistry(QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert set(failed.get_job_ids()) == {auth, bug}
    assert runs.get_run(redis_client, auth)["error"] == "PermanentError: bad credentials"  # type: ignore[index]
    assert runs.get_run(redis_client, bug)["attempts"] == 1  # type: ignore[index]
    result = failed.get_queue().fetch_job(bug).latest_result()  # type: ignore[union-attr]
    assert result is not None and "ValueError" in (result.exc_string or "")


def test_cancel_by_id_stops_a_running_run_promptly(redis_url: str, redis_client: redis.Redis) -> None:
    """``gateway runs cancel`` reaches the agent; the run ends cancelled and is not retried."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"poll_cancel": 30, "transient": 5}))
    with WorkerProcess(redis_url, *FAST) as worker:
        wait_until(lambda: _status(redis_client, job_id) == "running")
        assert _cli(redis_url, "runs", "cancel", job_id).returncode == 0
        wait_until(lambda: _status(redis_client, job_id) == "cancelled", timeout=5)
        worker.signal(signal.SIGTERM)
        worker.wait()
    lines = agent_log(redis_client)
    assert [line["phase"] for line in lines] == ["start", "cancel-seen"]
    assert lines[1]["cancelled_flag"] is True
    assert job_status(redis_client, job_id) == "stopped"


def test_rq_stop_job_command_cancels_too(redis_url: str, redis_client: redis.Redis) -> None:
    """RQ's own ``send_stop_job_command`` stops one run among many in the process."""
    job_id = enqueue(redis_client, slack_envelope("E1", thread="1.0", test={"sleep": 30}))
    other = enqueue(redis_client, slack_envelope("E2", thread="2.0", test={"sleep": 1}))
    with WorkerProcess(redis_url, *FAST, "--burst"):
        wait_until(lambda: _status(redis_client, job_id) == "running")
        send_stop_job_command(redis_client, job_id, serializer=JSONSerializer)
        wait_until(lambda: _status(redis_client, job_id) == "cancelled", timeout=5)
        wait_until(lambda: _status(redis_client, other) == "succeeded", timeout=10)


def test_cancel_before_start_never_runs(redis_url: str, redis_client: redis.Redis) -> None:
    """A queued run that is cancelled leaves the queue and never starts."""
    job_id = enqueue(redis_client, slack_envelope("E1"))
    result = _cli(redis_url, "runs", "cancel", job_id)
    assert result.returncode == 0 and "before it started" in result.stdout
    with WorkerProcess(redis_url, *FAST, "--burst") as worker:
        assert worker.wait() == 0
    assert agent_log(redis_client) == []
    assert job_status(redis_client, job_id) == "canceled"
    assert _status(redis_client, job_id) == "cancelled"


def test_failed_commands_list_show_and_retry(redis_url: str, redis_client: redis.Redis) -> None:
    """``gateway failed list|show|retry`` work on RQ's failed registry; retry reruns the job."""
    job_id = enqueue(redis_client, slack_envelope("E1", test={"permanent": "not found"}))
    with WorkerProcess(redis_url, *FAST, "--burst") as worker:
        worker.wait()
    assert job_id in _cli(redis_url, "failed", "list").stdout
    assert "PermanentError: not found" in _cli(redis_url, "failed", "show", job_id).stdout
    assert _cli(redis_url, "failed", "retry", job_id).returncode == 0
    assert job_status(redis_client, job_id) == "queued"
    assert _cli(redis_url, "failed", "retry", "nope").returncode == 1


def test_stock_rq_worker_can_run_the_job_function(redis_url: str, redis_client: redis.Redis) -> None:
    """``handle`` also works under a stock ``rq worker`` (the supported worker is ours)."""
    job_id = enqueue(redis_client, slack_envelope("E1"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "--url",
            redis_url,
            "-w",
            "rq.worker.SimpleWorker",
            "-S",
            "rq.serializers.JSONSerializer",
            QUEUE,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**_env(redis_url), "GATEWAY_AGENT": "triage"},
    )
    assert result.returncode == 0, result.stderr
    assert job_status(redis_client, job_id) == "finished"
    assert _status(redis_client, job_id) == "succeeded"


def _env(redis_url: str) -> dict[str, str]:
    import os

    return dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=str(ROOT))


def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handlers", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(redis_url),
        timeout=30,
    )
