"""Redis footprint benchmark: what Redis keeps per completed delivery, key by key, at steady state.

Run from anywhere (about a minute)::

    .venv/bin/python bench/footprint.py [--deliveries 300]

A throwaway redis-server, the real web app (in this process, starlette's TestClient) and a real
``gateway worker --burst`` with the built-in triage agent and no platform tokens (replies are kept
in the run record, as under ``gateway dev``). The deliveries are the project's recorded Slack,
GitHub and Stripe fixtures, each with fresh delivery ids, several per conversation. Once every run
ended, each key's ``MEMORY USAGE`` is summed by what it holds; shared structures (the queue,
registries, the runs index, the deliveries log) are counted by their growth per delivery. The run
record (its hash, progress list and event stream) is reported apart: the target is what is kept
*beyond* it. Results replace the "## Redis footprint" section of ``docs/benchmarks.md`` unless
``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import redis
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gateway.app import create_app  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.recorded import discover  # noqa: E402
from gateway.replay import renew_ids  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.signing import sign  # noqa: E402

SECRETS = {"slack": "bench-slack", "github": "bench-github", "stripe": "whsec_bench"}
DOC = ROOT / "docs/benchmarks.md"
SECTION = "## Redis footprint"
TARGET_BYTES = 2048
# What each key holds, by its name; the first pattern that matches wins.
KINDS: list[tuple[str, str, bool]] = [
    # (kind, key regex, part of the run record)
    ("run record (hash)", r"^gateway:run:[^:]+$", True),
    ("run progress (list)", r"^gateway:run:.+:progress$", True),
    ("run events (stream)", r"^gateway:run:.+:events$", True),
    ("delivery claim", r"^gateway:claim:", False),
    ("reply marker", r"^gateway:reply:", False),
    ("session history", r"^gateway:session:.+:history$", False),
    ("session lock / waiting", r"^gateway:session", False),
    ("RQ job hash (holds the envelope)", r"^rq:job:", False),
    ("RQ result", r"^rq:results:", False),
    ("RQ executions", r"^rq:execution", False),
    (
        "RQ finished/failed/started registries",
        r"^rq:(finished|failed|wip|scheduled|deferred|canceled)",
        False,
    ),
    ("runs index (shared)", r"^gateway:runs$", False),
    ("deliveries log (shared, capped)", r"^gateway:deliveries$", False),
    ("events stream (shared, capped)", r"^gateway:events$", False),
    ("other", r"", False),
]


def deliveries(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """``count`` recorded deliveries with fresh ids (handshakes left out), cycling the fixtures."""
    recordings = [r for r in discover(ROOT / "fixtures") if r.expect and r.expect.get("job_id")]
    found = []
    for n in range(count):
        renewed = renew_ids(recordings[n % len(recordings)])
        found.append((renewed.platform, renewed.body, renewed.headers))
    return found


def measure(client: redis.Redis) -> dict[str, tuple[int, int, int]]:
    """``{kind: (keys, bytes, longest TTL in seconds, -1 for none)}`` over every key in Redis."""
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for raw in client.scan_iter(count=1000):
        name = raw.decode()
        used = client.memory_usage(name, samples=0) or 0
        kind = next(k for k, pattern, _ in KINDS if re.search(pattern, name))
        ttl = client.ttl(name)
        sizes[kind][0] += 1
        sizes[kind][1] += used
        sizes[kind][2] = -1 if ttl < 0 or sizes[kind][2] < 0 else max(sizes[kind][2], ttl)
    return {kind: (keys, size, ttl) for kind, (keys, size, ttl) in sizes.items()}


def kept(ttl: int) -> str:
    """A TTL for people: ``7 d``, ``10 min``, ``capped`` (no TTL: a bounded shared structure)."""
    if ttl < 0:
        return "capped, shared"
    if ttl >= 86400:
        return f"{round(ttl / 86400)} d"
    if ttl >= 3600:
        return f"{round(ttl / 3600)} h"
    return f"{max(1, round(ttl / 60))} min"


def run(args: argparse.Namespace) -> tuple[dict[str, tuple[int, int, int]], int, float]:
    """Post the deliveries, run them to the end, and measure."""
    server = RedisServer().start()
    try:
        environ = {
            "REDIS_URL": server.url,
            **{
                f"{p.upper()}_{'SIGNING_SECRET' if p == 'slack' else 'WEBHOOK_SECRET'}": s
                for p, s in SECRETS.items()
            },
        }
        client = redis.Redis.from_url(server.url)
        sent = 0
        started = time.monotonic()
        with TestClient(create_app(Settings.from_environ(environ))) as app:
            for name, body, headers in deliveries(args.deliveries):
                signed = {**headers, **sign(name, SECRETS[name], body, int(time.time()))}
                sent += app.post(f"/webhooks/{name}", content=body, headers=signed).status_code == 200
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_"))
        }
        env |= {"REDIS_URL": server.url, "GATEWAY_AGENT": "triage", "PYTHONPATH": str(ROOT)}
        worker = [str(ROOT / ".venv/bin/gateway"), "worker", "--burst", "--concurrency", "50"]
        subprocess.run(worker, env=env, cwd=ROOT, capture_output=True, timeout=600, check=True)
        return measure(client), sent, time.monotonic() - started
    finally:
        server.cleanup()


def section(sizes: dict[str, tuple[int, int, int]], sent: int, args: argparse.Namespace) -> str:
    """The "## Redis footprint" section."""
    record = {kind for kind, _, is_record in KINDS if is_record}
    rows = sorted(sizes.items(), key=lambda item: -item[1][1])
    # Kept: what lives about as long as the run record (hours and more). Shared structures are
    # capped (their bytes per delivery fall as deliveries pass their cap); brief keys expire soon.
    lasting = {kind for kind, (_, _, ttl) in sizes.items() if ttl >= 3600 and kind not in record}
    beyond = sum(sizes[kind][1] for kind in lasting) / sent
    in_record = sum(size for kind, (_, size, _) in sizes.items() if kind in record) / sent
    brief = sum(size for kind, (_, size, ttl) in sizes.items() if 0 <= ttl < 3600) / sent
    shared = sum(size for kind, (_, size, ttl) in sizes.items() if ttl < 0) / sent
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"{sent} recorded deliveries (Slack, GitHub, Stripe fixtures, fresh ids) through the real web app",
        "and a `gateway worker --burst` with the triage agent and no platform tokens, every run ended;",
        "then `MEMORY USAGE` and `TTL` of every key, summed by what it holds.",
        "",
        f"- Command: `.venv/bin/python bench/footprint.py --deliveries {args.deliveries}` (ran {when})",
        f"- Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, redis-server "
        f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}",
        "",
        "| what | keys | bytes per delivery | kept | part of the run record |",
        "|---|---:|---:|---|---|",
    ]
    lines += [
        f"| {kind} | {keys} | {size / sent:,.0f} | {kept(ttl)} | {'yes' if kind in record else ''} |"
        for kind, (keys, size, ttl) in rows
    ]
    lines += [
        "",
        f"Kept per completed delivery beyond the run record (what lives an hour or more): **{beyond:,.0f}"
        f" bytes** (target ≤ {TARGET_BYTES:,}: **{'met' if beyond <= TARGET_BYTES else 'not met'}**).",
        f"The run record itself: {in_record:,.0f} bytes. Brief (gone within the hour): {brief:,.0f} bytes.",
        f"Shared and capped (the same memory whatever the volume, once full): {shared:,.0f} bytes per",
        f"delivery at {sent} deliveries, less as more pass.",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace (or append) the section in docs/benchmarks.md."""
    doc = DOC.read_text()
    start = doc.find(SECTION + "\n")
    if start < 0:
        DOC.write_text(doc.rstrip() + "\n\n" + text)
        return
    end = doc.find("\n## ", start + len(SECTION))
    DOC.write_text(doc[:start] + text + (doc[end + 1 :] if end >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and write the docs section unless ``--no-write``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=300, help="deliveries to send (default 300)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if not 10 <= args.deliveries <= 5000:
        parser.error("bounds: 10 <= --deliveries <= 5000")
    sizes, sent, seconds = run(args)
    text = section(sizes, sent, args)
    print(text + f"\ntook {seconds:.0f} s")
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
