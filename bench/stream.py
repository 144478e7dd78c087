"""Live-stream benchmark: many followers of run event streams on one web process, while runs report progress.

Run from anywhere (about two minutes with the defaults)::

    .venv/bin/python bench/stream.py [--followers 1000] [--runs 100] [--every 0.25] [--seconds 30]

One ``gateway serve`` (the runs API on) with its own throwaway redis-server, one ``gateway
worker`` running ``bench/stream_agent.py``, and ``bench/bare_app.py`` as the ceiling, all on
127.0.0.1. ``--runs`` API runs are queued; ``--followers`` server-sent-event streams (spread
evenly over the runs) are opened on the web process before the worker starts them; each run
then calls ``run.progress()`` every ``--every`` seconds for ``--seconds``, stamping the time of
the call in the text, and every follower notes when each event reached it.

Reported: the latency from ``run.progress()`` to the follower (p50, p99, max, over every event
every follower got), whether every follower got every event of its run and its end, the web
process's memory per follower (its PSS with the followers connected and idle, minus before,
divided by their number), and the ack path: ``wrk`` against the bare app and the gateway with no
followers, then both again while the followers are connected and the runs report progress; the
ratios gateway/bare of the two are compared. Results replace the "## Live streams" section of
``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._doc import DOC, write_section  # noqa: E402
from bench.ingress import (  # noqa: E402
    HOST,
    SERVER_OPTIONS,
    CpuShare,
    Run,
    Target,
    build_requests,
    gateway_env,
    machine,
    run_wrk,
    start_target,
    stop_target,
    write_wrk_files,
)
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

TOKEN = "bench-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TARGET_P99_MS = 100.0
WRK_SECONDS = 8.0
WRK_CONNECTIONS = 64
SECTION = "## Live streams"


@dataclass
class Follower:
    """One open event stream: when each progress event arrived, and whether the stream ended."""

    run_id: str
    latencies: list[float] = field(default_factory=list)
    ended: bool = False
    error: str | None = None


async def follow(follower: Follower, port: int, ready: asyncio.Event, opened: list[int]) -> None:
    """Read one run's event stream over a raw connection; note each progress event's latency."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        request = (
            f"GET /api/runs/{follower.run_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(status.decode(errors="replace").strip())
        opened[0] += 1
        if opened[0] == opened[1]:
            ready.set()
        await _read_events(follower, reader)
        writer.close()
    except (OSError, RuntimeError) as exc:
        follower.error = f"{type(exc).__name__}: {exc}"


async def _read_events(follower: Follower, reader: asyncio.StreamReader) -> None:
    kind = ""
    for _ in range(10_000_000):  # bounded; a stream ends at its done event
        line = await reader.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if text.startswith("event: "):
            kind = text[7:]
        elif text.startswith("data: ") and kind == "progress":
            sent = float(json.loads(text[6:])["text"].removeprefix("t="))
            follower.latencies.append((time.time() - sent) * 1000)
        elif text.startswith("data: ") and kind == "done":
            follower.ended = True
            return


def pss_kib(pid: int) -> int:
    """The process's proportional set size, from ``/proc/<pid>/smaps_rollup``."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


@dataclass
class Results:
    """What one bench run measured."""

    followers: int
    runs: int
    latencies: list[float]
    complete: int
    errors: list[str]
    kib_before: int
    kib_after: int
    ack: dict[str, Run]


class Bench:
    """The processes under test and the phases that measure them."""

    def __init__(self, args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.args, self.tmp = args, tmp
        server = RedisServer().start()
        stack.callback(server.cleanup)
        self.redis_url = server.url
        self.bare = Target("bare", free_port(), tmp / "bare.log")
        self.gateway = Target("gateway", free_port(), tmp / "gw.log")
        self.worker = Target("worker", free_port(), tmp / "worker.log")
        for target in (self.bare, self.gateway, self.worker):
            stack.callback(stop_target, target)
        uvicorn = [str(ROOT / ".venv/bin/uvicorn"), "bare_app:app", "--app-dir", str(ROOT / "bench")]
        start_target(
            self.bare,
            [*uvicorn, "--host", HOST, "--port", str(self.bare.port), *SERVER_OPTIONS],
            env={**os.environ},
        )
        env = gateway_env(server.url) | {"GATEWAY_API_TOKEN": TOKEN}
        gateway = [str(ROOT / ".venv/bin/gateway"), "serve", "--host", HOST, "--port", str(self.gateway.port)]
        start_target(self.gateway, gateway, env=env)
        self.env = env
        self.count = 0

    def ack(self, target: Target) -> Run:
        """``wrk`` for ``WRK_SECONDS`` at the target with fresh signed deliveries."""
        self.count += 1
        prefix = self.tmp / "requests"
        count = int(40_000 * WRK_SECONDS)
        write_wrk_files(prefix, build_requests(count, tag=f"{self.count:02X}", port=target.port), threads=1)
        run = run_wrk(target, prefix, threads=1, connections=WRK_CONNECTIONS, seconds=WRK_SECONDS)
        print(f"  ack {target.name:<7} {run.rate:>8,.0f}/s p99 {run.p99:.2f} ms", flush=True)
        return run

    def queue_runs(self) -> list[str]:
        """``--runs`` API runs, each telling the agent how often and how long to report progress."""
        a = self.args
        text = f"every={a.every} for={a.seconds}"
        with httpx.Client(base_url=f"http://{HOST}:{self.gateway.port}", headers=AUTH, timeout=10) as client:
            return [
                client.post("/api/runs", json={"text": text, "session_id": f"bench-{n}"}).json()["run_id"]
                for n in range(a.runs)
            ]

    def start_worker(self) -> None:
        """A gateway worker with the bench agent, exactly as many runs at once as there are runs
        (the deliveries acked meanwhile wait behind them and are never run)."""
        env = self.env | {"GATEWAY_AGENT": "bench.stream_agent:agent", "PYTHONPATH": str(ROOT)}
        argv = [str(ROOT / ".venv/bin/gateway"), "worker", "--concurrency", str(self.args.runs)]
        with open(self.worker.log, "wb") as log:
            self.worker.process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
            )

    def execute(self) -> Results:
        """Ack without followers; open the followers; run the progress; ack again meanwhile."""
        ack = {"bare": self.ack(self.bare), "gateway": self.ack(self.gateway)}
        # The acked deliveries are real jobs: drop them, so the worker takes the bench's runs.
        redis.Redis.from_url(self.redis_url).flushdb()
        run_ids = self.queue_runs()
        followers = [Follower(run_ids[n % len(run_ids)]) for n in range(self.args.followers)]
        kib_before = pss_kib(_pid(self.gateway))
        loop = asyncio.new_event_loop()
        ready = asyncio.Event()
        opened = [0, len(followers)]
        tasks = [loop.create_task(follow(f, self.gateway.port, ready, opened)) for f in followers]
        thread = threading.Thread(
            target=loop.run_until_complete, args=(asyncio.wait(tasks, timeout=self.args.seconds + 120),)
        )
        thread.start()
        _wait(lambda: opened[0] == opened[1] or any(f.error for f in followers), timeout=60)
        time.sleep(2.0)  # idle, connected: the web process holds every follower
        kib_after = pss_kib(_pid(self.gateway))
        print(f"  {opened[0]} followers open; web process PSS {kib_before} -> {kib_after} KiB", flush=True)
        self.start_worker()
        time.sleep(2.0)
        ack["bare with followers"] = self.ack(self.bare)
        ack["gateway with followers"] = self.ack(self.gateway)
        thread.join(timeout=self.args.seconds + 180)
        if not any(f.latencies for f in followers):
            print(self.worker.log.read_text(errors="replace")[-3000:], file=sys.stderr)
        latencies = [value for f in followers for value in f.latencies]
        complete = sum(1 for f in followers if f.ended)
        errors = [f.error for f in followers if f.error]
        return Results(len(followers), len(run_ids), latencies, complete, errors, kib_before, kib_after, ack)


def _pid(target: Target) -> int:
    assert target.process is not None
    return target.process.pid


def _wait(predicate: object, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():  # type: ignore[operator]
        time.sleep(0.1)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def section(results: Results, args: argparse.Namespace, *, when: str, others: float) -> str:
    """The "## Live streams" section of docs/benchmarks.md."""
    r, a = results, args
    per_follower = (r.kib_after - r.kib_before) / max(1, r.followers)
    ratio = r.ack["gateway"].rate / r.ack["bare"].rate
    ratio_with = r.ack["gateway with followers"].rate / r.ack["bare with followers"].rate
    p99 = _percentile(r.latencies, 0.99)
    expected = r.followers * int(a.seconds / a.every)
    lines = [
        SECTION,
        "",
        f"{r.followers} server-sent-event followers of {r.runs} API runs on one `gateway serve`, while a",
        f"real `gateway worker` runs them with `bench/stream_agent.py`: `run.progress()` every {a.every:g} s",
        f"for {a.seconds:g} s per run. Latency is from the `run.progress()` call to the follower reading",
        "the event.",
        "Everything (redis-server, web app, worker, followers, wrk) shares the machine, unpinned.",
        "",
        f"- Command: `.venv/bin/python bench/stream.py --followers {a.followers} --runs {a.runs} "
        f"--every {a.every:g} --seconds {a.seconds:g}` (ran {when})",
        f"- Machine: {machine()}; other processes took {others:.0%} of its CPU time during the run",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| progress events read by followers | {len(r.latencies):,} (about {expected:,} sent to them) |",
        f"| latency p50 / p99 / max | {_percentile(r.latencies, 0.5):.1f} / {p99:.1f} / "
        f"{max(r.latencies, default=float('nan')):.1f} ms |",
        f"| followers that saw their run end | {r.complete} of {r.followers} |",
        f"| follower errors | {len(r.errors)} |",
        f"| web process PSS, idle, before → with followers | {r.kib_before / 1024:.1f} → "
        f"{r.kib_after / 1024:.1f} MiB |",
        f"| memory per follower | {per_follower:.1f} KiB |",
        f"| acks/s bare / gateway, no followers | {r.ack['bare'].rate:,.0f} / "
        f"{r.ack['gateway'].rate:,.0f} (ratio {ratio:.2f}) |",
        f"| acks/s bare / gateway, followers and progress on | {r.ack['bare with followers'].rate:,.0f} / "
        f"{r.ack['gateway with followers'].rate:,.0f} (ratio {ratio_with:.2f}) |",
        "",
        "Targets:",
        f"- p99 from `run.progress()` to the follower ≤ {TARGET_P99_MS:g} ms: "
        f"**{'met' if p99 <= TARGET_P99_MS else 'not met'}** ({p99:.1f} ms)",
        f"- ack ratio with followers not lower than without: "
        f"**{'met' if ratio_with >= ratio * 0.97 else 'not met'}** "
        f"({ratio_with:.2f} vs {ratio:.2f}; single 8 s wrk runs, about ±3%)",
        "",
    ]
    if r.errors:
        lines.insert(-1, f"Follower errors: {sorted(set(r.errors))[:3]}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, bounded so that a run stays short."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add = parser.add_argument
    add("--followers", type=int, default=1000, help="event streams open at once (default 1000)")
    add("--runs", type=int, default=100, help="runs they follow, evenly (default 100)")
    add("--every", type=float, default=0.25, help="seconds between progress reports of a run (default 0.25)")
    add("--seconds", type=float, default=30.0, help="how long each run reports progress (default 30)")
    add("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not (
        1 <= args.runs <= args.followers <= 5000 and 0.05 <= args.every <= 10 and 1 <= args.seconds <= 300
    ):
        parser.error(
            "bounds: 1 <= --runs <= --followers <= 5000, 0.05 <= --every <= 10, 1 <= --seconds <= 300"
        )
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the results, and write the docs section unless ``--no-write``."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    signal.signal(signal.SIGTERM, _interrupt)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = CpuShare()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-stream-bench-")))
        results = Bench(args, tmp, stack).execute()
    text = section(results, args, when=when, others=cpu.others())
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote the {SECTION[3:]} section of {DOC}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: every process the bench started has been stopped")
