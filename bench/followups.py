"""Follow-up benchmark: how fast a thread reply reaches the agent already working on that thread.

Run from anywhere (about a minute and a half with the defaults)::

    .venv/bin/python bench/followups.py [--runs 100] [--rounds 3] [--rate 50] [--concurrency 100]

One ``gateway serve`` and one ``gateway worker`` (``--concurrency`` slots; the default 100 means
every slot is busy once the runs are in flight) with their own throwaway redis-server, on
127.0.0.1. The worker runs ``bench/followups_agent.py``. Three phases, each offered at ``--rate``
signed Slack deliveries per second (open loop: each is sent at its scheduled time):

- start ``--runs`` runs, one ``app_mention`` per thread: the baseline is the time from a
  mention's acknowledgement (its 200 reached the client) to its agent starting;
- ``--rounds`` times, one follow-up mention into each thread: the time from its acknowledgement
  to the agent's ``run.next_message`` returning it (``GATEWAY_FOLLOWUPS=steer``);
- ``@bot stop`` into each thread: the time from its acknowledgement to the agent's cancellation.

Unless ``--no-compare``, the whole run is repeated with ``2 × --runs`` slots (slots to spare), for
comparison.

Then it checks that every follow-up was read once (its record says ``read``) and that no
follow-up started a run of its own. Reported: p50, p99 and max of each, the ratio of the
follow-up p99 to the baseline p99 (of the ``--concurrency`` run), met / not met for p99 ≤ 500 ms
(follow-ups) and ≤ 2 s (Stop), and the share of CPU time other processes took. Results replace
the "## Follow-ups" section of ``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._doc import DOC, write_section  # noqa: E402
from bench.ingress import HOST, SECRET, CpuShare, Target, gateway_env, start_target, stop_target  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402
from tests.support.signing import slack_headers  # noqa: E402

SECTION = "## Follow-ups"
BOT = "U0BENCHBOT"
TARGET_MS, STOP_TARGET_MS = 500.0, 2000.0
WAIT = 60.0  # seconds a phase may take to be seen through once everything is sent


def mention(delivery: str, thread: int, n: int, text: str) -> bytes:
    """A Slack ``app_mention`` ``event_callback`` in thread ``thread`` (its ``n``-th message)."""
    thread_ts = f"1800000000.{thread:06d}"
    ts = thread_ts if n == 0 else f"{1800000000 + n}.{thread:06d}"
    event = {"type": "app_mention", "user": "U0PERSON", "text": f"<@{BOT}> {text}", "ts": ts}
    event |= {"channel": "C0BENCH", "event_ts": ts, **({"thread_ts": thread_ts} if n else {})}
    body = {
        "token": "Z" * 24,
        "team_id": "T0BENCH01",
        "api_app_id": "A0BENCH01",
        "event": event,
        "type": "event_callback",
        "event_id": delivery,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0BENCH01", "user_id": BOT, "is_bot": True}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def offer(port: int, bodies: list[tuple[str, bytes]], rate: float) -> dict[str, float]:
    """POST each ``(delivery id, body)`` at ``rate`` per second; the time each 200 arrived."""
    acked: dict[str, float] = {}
    url = f"http://{HOST}:{port}/webhooks/slack"
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as client:

        async def send(delivery: str, body: bytes, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            headers = {"Content-Type": "application/json", **slack_headers(SECRET, body, int(time.time()))}
            response = await client.post(url, content=body, headers=headers)
            if response.status_code == 200:
                acked[delivery] = time.time()

        start = time.monotonic()
        await asyncio.gather(*(send(d, b, start + i / rate) for i, (d, b) in enumerate(bodies)))
    return acked


def wait_for(client: redis.Redis, key: str, count: int) -> None:
    """Until hash ``key`` has ``count`` fields, or ``WAIT`` s passed."""
    deadline = time.monotonic() + WAIT
    while client.hlen(key) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def latencies(client: redis.Redis, key: str, acked: dict[str, float]) -> list[float]:
    """Milliseconds from each acknowledgement to the time the agent noted under ``key``."""
    seen = {k.decode(): float(v) for k, v in client.hgetall(key).items()}
    return sorted((seen[d] - at) * 1000 for d, at in acked.items() if d in seen)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of sorted ``values``; NaN when empty."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def run_phases(args: argparse.Namespace, port: int, client: redis.Redis) -> dict[str, Any]:
    """The three phases; what each measured and the exactly-once checks."""
    threads = range(args.runs)
    starts = [(f"EvBS{i:05d}", mention(f"EvBS{i:05d}", i, 0, f"rounds={args.rounds}")) for i in threads]
    started = asyncio.run(offer(port, starts, args.rate))
    wait_for(client, "bench:started", args.runs)
    time.sleep(0.5)  # every agent is awaiting next_message
    follow_acked: dict[str, float] = {}
    for r in range(1, args.rounds + 1):
        bodies = [(f"EvBF{r:02d}{i:05d}", mention(f"EvBF{r:02d}{i:05d}", i, r, f"and {r}")) for i in threads]
        follow_acked |= asyncio.run(offer(port, bodies, args.rate))
        wait_for(client, "bench:heard", args.runs * r)
    stops = [(f"EvBX{i:05d}", mention(f"EvBX{i:05d}", i, args.rounds + 1, "stop")) for i in threads]
    stop_acked = asyncio.run(offer(port, stops, args.rate))
    wait_for(client, "bench:stopped", args.runs)
    time.sleep(1.0)  # let the stop jobs and the follow-ups' closing jobs end
    read = sum(client.hget(f"gateway:followup:slack-{d}", "state") == b"read" for d in follow_acked)
    return {
        "baseline": latencies(client, "bench:started", started),
        "followups": latencies(client, "bench:heard", follow_acked),
        # A stop's time is noted by the run it stopped, under that run's delivery id.
        "stops": latencies(
            client, "bench:stopped", {d.replace("EvBX", "EvBS"): t for d, t in stop_acked.items()}
        ),
        "sent": len(follow_acked),
        "read": read,
        "runs_started": client.hlen("bench:started"),
    }


def row(name: str, values: list[float], sent: int) -> str:
    """One table row: count, p50, p99, max in ms."""
    figures = (percentile(values, 50), percentile(values, 99), max(values, default=float("nan")))
    return f"| {name} | {len(values)} of {sent} | " + " | ".join(f"{v:.1f} ms" for v in figures) + " |"


def rows(args: argparse.Namespace, concurrency: int, found: dict[str, Any]) -> list[str]:
    """The three rows of one worker configuration."""
    slots = "every slot busy" if concurrency <= args.runs else f"{concurrency - args.runs} slots free"
    where = f"`--concurrency {concurrency}` ({slots})"
    return [
        row(f"{where}: baseline, a mention's ack → its run's agent starts", found["baseline"], args.runs),
        row(f"{where}: follow-up ack → `next_message` returns it", found["followups"], found["sent"]),
        row(f"{where}: `@bot stop` ack → the agent is cancelled", found["stops"], args.runs),
    ]


def section(args: argparse.Namespace, results: dict[int, dict[str, Any]], *, when: str, others: float) -> str:
    """The docs section for these results; the targets are judged on ``--concurrency``."""
    found = results[args.concurrency]
    p99, stop_p99 = percentile(found["followups"], 99), percentile(found["stops"], 99)
    base_p99 = percentile(found["baseline"], 99)
    command = (
        f"--runs {args.runs} --rounds {args.rounds} --rate {args.rate:g} --concurrency {args.concurrency}"
    )
    table = [line for concurrency, figures in results.items() for line in rows(args, concurrency, figures)]
    checks = [
        f"`--concurrency {c}`: {f['read']} of {f['sent']} follow-ups recorded as read by their run, "
        f"{f['runs_started']} runs started (one per thread, none for a follow-up)"
        for c, f in results.items()
    ]
    lines = "\n".join(table)
    ratio = p99 / base_p99 if base_p99 else float("nan")
    met, stop_met = (
        "met" if v <= t else "NOT met" for v, t in ((p99, TARGET_MS), (stop_p99, STOP_TARGET_MS))
    )
    return f"""{SECTION}

Command: `.venv/bin/python bench/followups.py {command}`
Measured {when}; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, redis-server on 127.0.0.1.
Load: other processes took {others:.0%} of the machine's CPU time during the run (the machine is shared).

{args.runs} runs in flight on one `gateway worker`, each in its own Slack thread, its agent awaiting
`run.next_message`. Deliveries are signed `app_mention`s offered at {args.rate:g}/s through `gateway
serve`; each time runs from the moment the delivery's 200 reached the client. With every slot busy,
follow-ups take the worker's every-slot-busy path (queue heads looked at every 0.1 s); the second
configuration, measured in the same run, has slots to spare.

| what | measured | p50 | p99 | max |
|---|---|---|---|---|
{lines}

Follow-up p99 / baseline p99 (`--concurrency {args.concurrency}`): {ratio:.2f}.
Each follow-up consumed once: {"; ".join(checks)}.

Targets (`--concurrency {args.concurrency}`):
- follow-up p99 ≤ {TARGET_MS:.0f} ms: {met} ({p99:.1f} ms)
- Stop p99 ≤ {STOP_TARGET_MS / 1000:.0f} s: {stop_met} ({stop_p99:.1f} ms)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options, bounded so that a run stays short."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add = parser.add_argument
    add("--runs", type=int, default=100, help="runs in flight, one thread each (default 100)")
    add("--rounds", type=int, default=3, help="follow-ups sent into each thread (default 3)")
    add("--rate", type=float, default=50.0, help="deliveries offered per second (default 50)")
    add("--concurrency", type=int, default=100, help="the worker's slots (default 100)")
    add("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    add("--no-compare", action="store_true", help="skip the second run, with slots to spare")
    args = parser.parse_args(argv)
    if not (1 <= args.runs <= 1000 and 1 <= args.rounds <= 10 and 0 < args.rate <= 1000):
        parser.error("bounds: 1 <= --runs <= 1000, 1 <= --rounds <= 10, 0 < --rate <= 1000")
    if args.concurrency < args.runs:
        parser.error("--concurrency must hold every run at once (at least --runs)")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the results, and write the docs section unless ``--no-write``."""
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = CpuShare()
    configurations = [args.concurrency] + ([] if args.no_compare else [2 * args.runs])
    results = {concurrency: measure(args, concurrency) for concurrency in dict.fromkeys(configurations)}
    others = cpu.others()
    text = section(args, results, when=when, others=others)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote the {SECTION[3:]} section of {DOC}")
    return 0


def measure(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    """Start Redis, the web app and a worker of ``concurrency`` slots; run the phases; stop them all."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-")))
        server = RedisServer().start()
        stack.callback(server.cleanup)
        web, worker = Target("gateway", free_port(), tmp / "web.log"), Target("worker", 0, tmp / "worker.log")
        env = gateway_env(server.url) | {
            "GATEWAY_AGENT": "bench.followups_agent:agent",
            "PYTHONPATH": str(ROOT),
        }
        stack.callback(stop_target, web)
        serve = [str(ROOT / ".venv/bin/gateway"), "serve", "--host", HOST, "--port", str(web.port)]
        start_target(web, serve, env=env)
        stack.callback(stop_target, worker)
        _start_worker(worker, env, concurrency)
        client = stack.enter_context(redis.Redis.from_url(server.url))
        return run_phases(args, web.port, client)


def _start_worker(target: Target, env: dict[str, str], concurrency: int) -> None:
    """``gateway worker`` (no port to wait on: it is up once it registered in Redis)."""
    argv = [str(ROOT / ".venv/bin/python"), "-m", "handlers", "worker", "--concurrency", str(concurrency)]
    with open(target.log, "wb") as log:
        target.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    client = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + 20
    while not client.scard("gateway:workers") and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: every process the bench started has been stopped")
