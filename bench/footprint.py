"""Redis footprint benchmark: what Redis keeps per completed delivery, key by key, at steady state.

Run from anywhere (about a minute)::

    .venv/bin/python bench/footprint.py [--deliveries 300] [--baseline REF]

A throwaway redis-server, the real web app (in this process, starlette's TestClient) and a real
``gateway worker --burst`` with the built-in triage agent and no platform tokens (replies are kept
in the run record, as under ``gateway dev``). The deliveries are the project's recorded Slack,
GitHub and Stripe fixtures, each with fresh delivery ids, several per conversation. Once every run
ended, each key's ``MEMORY USAGE`` is summed by what it holds; shared structures (the queue,
registries, the runs index, the deliveries log) are counted by their growth per delivery. The run
record (its hash, progress list and event stream) is reported apart: the target is what is kept
*beyond* it. The same measurement runs first on the code of ``--baseline`` (a git ref, default
the commit before this benchmark's changes; exported to a temporary directory and run from
there, web app and worker alike), so the ratio compares two runs on the same machine. Results
replace the "## Redis footprint" section of ``docs/benchmarks.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))  # bench._doc; the project's own code is imported from --code's root
from bench._doc import write_section  # noqa: E402

# Before issue 17 (one copy of each thing, retention settings): what the ratio compares with.
DEFAULT_BASELINE = "55bdf1f"

SECRETS = {"slack": "bench-slack", "github": "bench-github", "stripe": "whsec_bench"}
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


def _code(root: Path) -> dict[str, Any]:
    """The functions this benchmark uses, imported from the project at ``root``."""
    sys.path.insert(0, str(root))
    names = {
        "create_app": ("gateway.app", "create_app"),
        "Settings": ("gateway.config", "Settings"),
        "discover": ("gateway.recorded", "discover"),
        "renew_ids": ("gateway.replay", "renew_ids"),
        "RedisServer": ("tests.support.redis_server", "RedisServer"),
        "sign": ("tests.support.signing", "sign"),
    }
    return {name: getattr(importlib.import_module(module), attr) for name, (module, attr) in names.items()}


def deliveries(code: dict[str, Any], root: Path, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """``count`` recorded deliveries with fresh ids (handshakes left out), cycling the fixtures."""
    discover, renew_ids = code["discover"], code["renew_ids"]
    recordings = [r for r in discover(root / "fixtures") if r.expect and r.expect.get("job_id")]
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


Sizes = dict[str, tuple[int, int, int]]


def run(root: Path, count: int) -> tuple[Sizes, int, float]:
    """Post ``count`` deliveries to the project at ``root``, run them to the end, and measure."""
    from starlette.testclient import TestClient

    code = _code(root)
    server = code["RedisServer"]().start()
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
        with TestClient(code["create_app"](code["Settings"].from_environ(environ))) as app:
            for name, body, headers in deliveries(code, root, count):
                signed = {**headers, **code["sign"](name, SECRETS[name], body, int(time.time()))}
                sent += app.post(f"/webhooks/{name}", content=body, headers=signed).status_code == 200
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_"))
        }
        env |= {"REDIS_URL": server.url, "GATEWAY_AGENT": "triage", "PYTHONPATH": str(root)}
        worker = [sys.executable, "-m", "gateway.cli", "worker", "--burst", "--concurrency", "50"]
        subprocess.run(worker, env=env, cwd=root, capture_output=True, timeout=600, check=True)
        return measure(client), sent, time.monotonic() - started
    finally:
        server.cleanup()


def summary(sizes: Sizes, sent: int) -> dict[str, float]:
    """Bytes per delivery: in the run record, kept beyond it (an hour or more), brief, shared."""
    record = {kind for kind, _, is_record in KINDS if is_record}

    def per(select: Any) -> float:
        return sum(size for kind, (_, size, ttl) in sizes.items() if select(kind, ttl)) / sent

    return {
        "record": per(lambda kind, ttl: kind in record),
        # Kept: what lives about as long as the run record (hours and more). Shared structures are
        # capped (their bytes per delivery fall as deliveries pass their cap); brief keys expire soon.
        "beyond": per(lambda kind, ttl: kind not in record and ttl >= 3600),
        "brief": per(lambda kind, ttl: kind not in record and 0 <= ttl < 3600),
        "shared": per(lambda kind, ttl: ttl < 0),
    }


def section(sizes: Sizes, sent: int, base: tuple[Sizes, int] | None, args: argparse.Namespace) -> str:
    """The "## Redis footprint" section: this code, and the baseline beside it."""
    record = {kind for kind, _, is_record in KINDS if is_record}
    now = summary(sizes, sent)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    base_sizes, base_sent = base if base is not None else ({}, 1)
    lines = [
        SECTION,
        "",
        f"{sent} recorded deliveries (Slack, GitHub, Stripe fixtures, fresh ids) through the real web app",
        "and a `gateway worker --burst` with the triage agent and no platform tokens, every run ended;",
        "then `MEMORY USAGE` and `TTL` of every key, summed by what it holds. The baseline is the same",
        f"run on the code of `{args.baseline}` (before issue 17), in the same invocation.",
        "",
        f"- Command: `.venv/bin/python bench/footprint.py --deliveries {args.deliveries}"
        f" --baseline {args.baseline}` (ran {when})",
        f"- Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, redis-server {version}",
        "",
        "| what | keys | bytes per delivery | kept | in the run record | baseline bytes | baseline kept |",
        "|---|---:|---:|---|---|---:|---|",
    ]
    kinds = sorted(set(sizes) | set(base_sizes), key=lambda k: -sizes.get(k, (0, 0, 0))[1])
    for kind in kinds:
        keys, size, ttl = sizes.get(kind, (0, 0, 0))
        _, base_size, base_ttl = base_sizes.get(kind, (0, 0, 0))
        lines.append(
            f"| {kind} | {keys} | {size / sent:,.0f} | {kept(ttl) if keys else '-'} "
            f"| {'yes' if kind in record else ''} | {base_size / base_sent:,.0f} "
            f"| {kept(base_ttl) if base_size else '-'} |"
        )
    met = "met" if now["beyond"] <= TARGET_BYTES else "not met"
    lines += [
        "",
        "Kept per completed delivery beyond the run record (what lives an hour or more): "
        f"**{now['beyond']:,.0f} bytes** (target ≤ {TARGET_BYTES:,}: **{met}**). The run record itself: "
        f"{now['record']:,.0f} bytes.",
        f"Brief (gone within the hour): {now['brief']:,.0f} bytes. Shared and capped (the same memory",
        f"whatever the volume, once full): {now['shared']:,.0f} bytes per delivery at {sent} deliveries.",
    ]
    if base is not None:
        was = summary(base_sizes, base_sent)
        lasting, was_lasting = now["record"] + now["beyond"], was["record"] + was["beyond"]
        lines += [
            "",
            f"Baseline: {was['beyond']:,.0f} bytes beyond the run record, {was['record']:,.0f} in it, "
            f"{was['brief']:,.0f} brief. Ratio, this code to the baseline: beyond the record "
            f"**{now['beyond'] / was['beyond']:.2f}×**, everything kept an hour or more "
            f"**{lasting / was_lasting:.2f}×** ({lasting:,.0f} vs {was_lasting:,.0f} bytes).",
        ]
    return "\n".join(lines + [""])


def baseline(ref: str, count: int) -> tuple[Sizes, int]:
    """The measurement on the code of ``ref``: exported to a temporary directory, run from there."""
    with tempfile.TemporaryDirectory(prefix="footprint-baseline-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=HERE, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        command = [sys.executable, __file__, "--code", tmp, "--json", "--deliveries", str(count)]
        found = json.loads(subprocess.run(command, capture_output=True, check=True, timeout=900).stdout)
    return {kind: tuple(value) for kind, value in found["sizes"].items()}, found["sent"]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    """Measure (the baseline first), print, and write the docs section unless ``--no-write``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=300, help="deliveries to send (default 300)")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref to compare with ('none': skip)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--code", type=Path, default=HERE, help=argparse.SUPPRESS)  # the baseline's run
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 10 <= args.deliveries <= 5000:
        parser.error("bounds: 10 <= --deliveries <= 5000")
    if args.json:
        sizes, sent, _ = run(args.code, args.deliveries)
        print(json.dumps({"sizes": sizes, "sent": sent}))
        return 0
    base = None if args.baseline == "none" else baseline(args.baseline, args.deliveries)
    sizes, sent, seconds = run(HERE, args.deliveries)
    text = section(sizes, sent, base, args)
    print(text + f"\ntook {seconds:.0f} s (this code)")
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
