"""Benchmark the gateway worker against stock ``rq worker-pool`` on the same sleeping runs.

    .venv/bin/python bench/worker.py [--runs 1200] [--rate 100] [--sleep 30] [--pool 50] [--append PATH]

Gateway phase: one ``python -m handlers worker`` process (concurrency ``--runs``) gets ``--runs``
jobs offered at ``--rate`` per second, each an agent awaiting a ``--sleep`` s sleep. Stock phase:
``rq worker-pool -n --pool`` gets ``--pool`` jobs (a sync function sleeping ``--sleep`` s) at the
same rate, so every job finds an idle worker (a pool of N runs at most N at once). Both phases
measure runs in flight (RQ's StartedJobRegistry), total PSS of the worker's process tree (from
/proc/<pid>/smaps_rollup) at peak, and pickup latency = RQ's ``started_at - enqueued_at`` of each
job. Everything runs against a throwaway redis-server; every process started is killed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer  # noqa: E402

POOL_SETTLE = 10.0


@dataclass
class Figures:
    """What one phase measured."""

    offered: int
    finished: int
    peak_in_flight: int
    peak_pss_mib: float
    pickup_ms: list[float]

    def row(self, name: str) -> str:
        p50, p99 = _percentile(self.pickup_ms, 50), _percentile(self.pickup_ms, 99)
        per_run = self.peak_pss_mib / max(1, self.peak_in_flight)
        return (
            f"| {name} | {self.offered} | {self.peak_in_flight} | {self.peak_pss_mib:.0f} MiB | "
            f"{per_run:.2f} MiB | {p50:.1f} ms | {p99:.1f} ms | {self.finished} |"
        )


def main() -> int:
    args = _parser().parse_args()
    server = RedisServer().start()
    try:
        connection = redis.Redis.from_url(server.url)
        ours = _gateway_phase(server.url, connection, args)
        connection.flushall()
        stock = _stock_phase(server.url, connection, args)
    finally:
        server.cleanup()
    report = _report(args, ours, stock)
    print(report)
    if args.append:
        with Path(args.append).open("a") as out:
            out.write("\n" + report)
    return 0


def _gateway_phase(url: str, connection: redis.Redis, args: argparse.Namespace) -> Figures:
    env = dict(
        os.environ,
        REDIS_URL=url,
        GATEWAY_AGENT="bench.worker_jobs:sleeper",
        PYTHONPATH=str(ROOT),
        GATEWAY_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "handlers", "worker", "--concurrency", str(args.runs), "--name", "bench"]
    with _Process(command, env) as worker:
        _wait_for(lambda: connection.exists("rq:worker:bench"), "the gateway worker to register")
        queue = Queue("gateway", connection=connection, serializer=JSONSerializer)
        ids = _offer(queue, args, count=args.runs, gateway=True)
        figures = _observe(connection, queue, worker.pid, ids, args, wait_finish=True)
        worker.stop()
    return figures


def _stock_phase(url: str, connection: redis.Redis, args: argparse.Namespace) -> Figures:
    command = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker-pool",
        "-n",
        str(args.pool),
        "--url",
        url,
        "-S",
        "rq.serializers.JSONSerializer",
        "-q",
        "stock",
    ]
    with _Process(command, dict(os.environ, PYTHONPATH=str(ROOT))) as pool:
        queue = Queue("stock", connection=connection, serializer=JSONSerializer)
        _wait_for(lambda: len(connection.smembers("rq:workers:stock")) >= args.pool, "the pool's workers")
        time.sleep(POOL_SETTLE)  # 50 processes starting on 2 cores: measure pickup once they are idle
        ids = _offer(queue, args, count=args.pool, gateway=False)
        figures = _observe(connection, queue, pool.pid, ids, args, wait_finish=False)
        pool.stop()
    return figures


def _offer(queue: Queue, args: argparse.Namespace, *, count: int, gateway: bool) -> list[str]:
    """Enqueue ``count`` jobs at ``args.rate`` per second (ids in order)."""
    ids, start = [], time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        job_id = f"bench-{i}"
        if gateway:
            queue.enqueue_call(
                "handlers.slack.handle",
                args=(_envelope(i, args.sleep),),
                job_id=job_id,
                timeout=int(args.sleep) + 660,
                result_ttl=3600,
                failure_ttl=3600,
            )
        else:
            queue.enqueue_call(
                "bench.worker_jobs.sleep_job",
                args=(args.sleep,),
                job_id=job_id,
                timeout=int(args.sleep) + 60,
                result_ttl=3600,
            )
        ids.append(job_id)
    return ids


def _envelope(i: int, seconds: float) -> dict[str, object]:
    event = {"type": "app_mention", "user": "U1", "text": "bench", "channel": "C1", "ts": f"{i}.0"}
    return {
        "platform": "slack",
        "delivery_id": f"Ev{i}",
        "event": "app_mention",
        "action": None,
        "received_at": "2026-11-22T11:00:00+00:00",
        "payload": {"team_id": "T1", "event": event, "bench_sleep": seconds},
        "meta": {"kind": "event"},
    }


def _observe(
    connection: redis.Redis,
    queue: Queue,
    pid: int,
    ids: list[str],
    args: argparse.Namespace,
    *,
    wait_finish: bool,
) -> Figures:
    started = StartedJobRegistry(queue.name, connection=connection)
    peak_flight, peak_pss, deadline = 0, 0.0, time.monotonic() + (args.sleep + 30 if wait_finish else 8)
    while time.monotonic() < deadline:
        in_flight = started.get_job_count(cleanup=False)
        if in_flight >= peak_flight:
            peak_flight, peak_pss = in_flight, max(peak_pss, _tree_pss_mib(pid))
        if wait_finish and _finished(connection, ids) == len(ids):
            break
        time.sleep(0.5)
    pickups = [
        _pickup_ms(job) for job in Job.fetch_many(ids, connection=connection, serializer=JSONSerializer)
    ]
    return Figures(
        len(ids), _finished(connection, ids), peak_flight, peak_pss, [p for p in pickups if p >= 0]
    )


def _finished(connection: redis.Redis, ids: list[str]) -> int:
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        return sum(status == b"finished" for status in pipe.execute())


def _pickup_ms(job: Job | None) -> float:
    if job is None or job.started_at is None or job.enqueued_at is None:
        return -1.0
    return (job.started_at - job.enqueued_at).total_seconds() * 1000


def _tree_pss_mib(root: int) -> float:
    """Summed PSS of ``root`` and all its descendants."""
    total = 0
    for pid in _process_tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total / 1024


def _process_tree(root: int) -> list[int]:
    """``root`` and every live descendant (RQ's workers and horses make their own process groups)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def _percentile(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _report(args: argparse.Namespace, ours: Figures, stock: Figures) -> str:
    per_ours = ours.peak_pss_mib / max(1, ours.peak_in_flight)
    per_stock = stock.peak_pss_mib / max(1, stock.peak_in_flight)
    return "\n".join(
        [
            "## Worker runtime",
            "",
            f"Command: `.venv/bin/python bench/worker.py --runs {args.runs} --rate {args.rate:g} "
            f"--sleep {args.sleep:g} --pool {args.pool}`  ",
            f"Machine: {os.cpu_count()} cores, {_memory_gib():.0f} GiB RAM, {platform.platform()}, "
            f"Python {platform.python_version()}, redis-server on 127.0.0.1.",
            "",
            "| worker | runs offered | peak in flight | peak PSS (process tree) | PSS per run in flight | "
            "pickup p50 | pickup p99 | finished |",
            "|---|---|---|---|---|---|---|---|",
            ours.row("gateway worker (1 process, asyncio)"),
            stock.row(f"stock `rq worker-pool -n {args.pool}`"),
            "",
            f"Runs are offered at {args.rate:g}/s; each sleeps {args.sleep:g} s. Pickup = RQ's `started_at - "
            "enqueued_at` per job. The stock pool is offered only as many jobs as it has workers, so its "
            "pickup latency is not queueing delay; it cannot hold more runs than processes, so its memory is "
            "compared per run in flight. The stock phase is stopped once its runs are measured (not waited "
            "out), hence 0 finished; it is offered its jobs 10 s after all its workers registered.",
            f"Memory per run in flight: gateway {per_ours:.3f} MiB vs stock {per_stock:.1f} MiB "
            f"({per_stock / max(per_ours, 1e-9):.0f}x less); {ours.peak_in_flight} runs in flight in one "
            f"process vs {stock.peak_in_flight} for {args.pool} processes. At the stock figure, "
            f"{ours.peak_in_flight} runs would need about {per_stock * ours.peak_in_flight / 1024:.1f} GiB.",
            "",
        ]
    )


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _wait_for(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class _Process:
    """A subprocess in its own process group, killed with its whole group on exit."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL every process of the tree that is left."""
        tree = _process_tree(self.pid)
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._kill(tree)

    def _kill(self, pids: list[int]) -> None:
        self._signal_group(signal.SIGKILL)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill(_process_tree(self.pid) if self.process.poll() is None else [])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1200, help="runs offered to the gateway worker")
    parser.add_argument("--rate", type=float, default=100.0, help="runs offered per second")
    parser.add_argument("--sleep", type=float, default=30.0, help="seconds each run sleeps")
    parser.add_argument("--pool", type=int, default=50, help="stock rq worker-pool size")
    parser.add_argument("--append", help="append the report to this Markdown file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
