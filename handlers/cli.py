"""Worker-side commands, reached from ``gateway`` by dotted path (and ``python -m handlers``).

- ``gateway worker [--concurrency N] [--burst] ...``  -> ``worker_main``
- ``gateway failed list|show ID|retry ID...|--all``     -> ``handlers.failed_cli.failed_main``
- ``gateway runs list|show ID|watch ID|cancel ID``      -> ``runs_main``
- ``gateway recover github|stripe [--since D] [--dry-run]`` -> ``recover_main``
- ``gateway check``                                     -> ``check_main``

Exit codes and the shared plumbing: ``handlers.cli_support``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import redis

from gateway import keys, logs, tracing
from gateway.errors import ConfigError
from gateway.platforms import PLATFORMS as WEBHOOK_PLATFORMS
from gateway.queue import to_job_id
from gateway.recovery import COUNTS, decode
from gateway.runs import STATUSES
from handlers import recover, registry, watch
from handlers.agent import load_agent
from handlers.alerts import FailedWatch
from handlers.cli_support import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, run_command
from handlers.config import WorkerSettings, redacted
from handlers.errors import AgentLoadError, UsageError
from handlers.failed_cli import failed_main
from handlers.llm.client import ChatConfig
from handlers.llm.probe import ModelProbe
from handlers.metrics import MetricsServer
from handlers.retry import RetryPolicy
from handlers.runtime import Worker, WorkerOptions, cancel_run
from handlers.runtime.worker import Chore
from handlers.services import Services
from handlers.slack.alerts import AlertPoster
from handlers.state import runs

__all__ = ["check_main", "main", "recover_main", "runs_main", "worker_main"]


def main(argv: Sequence[str]) -> int:
    """``python -m handlers worker|failed|runs|check ...``."""
    commands = {
        "worker": worker_main,
        "failed": failed_main,
        "runs": runs_main,
        "recover": recover_main,
        "check": check_main,
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python -m handlers {{{','.join(commands)}}} ...", file=sys.stderr)
        return EXIT_USAGE
    return commands[argv[0]](list(argv[1:]))


def worker_main(argv: list[str]) -> int:
    """``gateway worker``: check settings and the agent, then run jobs until stopped."""
    try:
        args = _worker_parser().parse_args(argv)
        settings = WorkerSettings.from_environ()
        settings.apply_retention()
        options = _worker_options(args, settings)
        agent = load_agent(settings.agent)
    except AgentLoadError as exc:
        return fail(f"GATEWAY_AGENT: {exc}", EXIT_USAGE)
    except (ConfigError, UsageError) as exc:
        return fail(str(exc), EXIT_USAGE)
    logs.configure(settings.base.log_level)
    if (problem := _unreachable(settings.redis_url)) is not None:
        return fail(f"REDIS_URL: cannot reach Redis: {problem}", EXIT_FAILURE)
    services = Services(settings)
    worker = Worker(
        services,
        agent,
        options,
        session_key=registry.session_key,
        sweeps=list(registry.SWEEPS.values()),
        chores=_chores(services),
        followup_of=functools.partial(registry.followup, settings=settings.followups),
    )
    try:
        server = _metrics_server(args, settings)
    except OSError as exc:
        where = f"{args.metrics_host}:{args.metrics_port}"
        return fail(f"--metrics-port: cannot listen on {where}: {exc}", EXIT_FAILURE)
    tracing.start(settings.base.tracing, service="gateway-worker")
    try:
        return worker.run()
    finally:
        tracing.flush()
        if server is not None:
            server.close()


def _chores(services: Services) -> list[Chore]:
    """The worker's periodic tasks beyond its own upkeep: alerts, and the model server's probe."""
    settings, consumer = services.settings, f"{socket.gethostname()}.{os.getpid()}"
    chores: list[Chore] = [
        FailedWatch(services.redis, settings.queue_name, threshold=settings.alerts.failed_threshold)
    ]
    if settings.alerts.slack_channel:
        chores.append(AlertPoster(services, settings.alerts.slack_channel, consumer=consumer))
    if settings.agent == "llm":
        chores.append(ModelProbe(ChatConfig.from_settings(settings.llm), services.redis, worker=consumer))
    return chores


def _metrics_server(args: argparse.Namespace, settings: WorkerSettings) -> MetricsServer | None:
    """The metrics port when ``--metrics-port`` asks for one (``GATEWAY_METRICS`` guards it)."""
    if args.metrics_port is None:
        return None
    return MetricsServer(args.metrics_host, args.metrics_port, settings.base.metrics).start()


def runs_main(argv: list[str]) -> int:
    """``gateway runs list|show ID|watch ID|cancel ID``: the runs, one run's record or events, cancel."""
    parser = argparse.ArgumentParser(prog="gateway runs", description="List, show, follow or cancel runs.")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="the newest runs, one line each")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--platform")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    sub.add_parser("show", help="the run record as JSON").add_argument("job_id")
    following = sub.add_parser("watch", help="follow the run's events until it ends (exit 0: succeeded)")
    following.add_argument("job_id")
    following.add_argument("--timeout", type=float, default=3600.0, help="give up after S seconds (3600)")
    sub.add_parser("cancel", help="cancel the run; it is not retried").add_argument("job_id")
    return run_command(parser, argv, _runs)


def check_main(argv: list[str]) -> int:
    """``gateway check``: the effective settings (secrets redacted), the agent, the platforms on,
    what ``gateway dev`` would do differently, Redis reachability and the last recovery sweeps."""
    parser = argparse.ArgumentParser(
        prog="gateway check", description="Validate settings and Redis reachability, secrets redacted."
    )
    parser.add_argument(
        "--serve", action="store_true", help="also fail (exit 2) when gateway serve would refuse to start"
    )
    try:
        args = parser.parse_args(argv)
        settings = WorkerSettings.from_environ()
        settings.apply_retention()
        load_agent(settings.agent)
        if args.serve and not settings.base.enabled_platforms:
            raise ConfigError(
                "SLACK_SIGNING_SECRET",
                "gateway serve needs a signing secret: set it, "
                "GITHUB_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET",
            )
    except AgentLoadError as exc:
        return fail(f"GATEWAY_AGENT: {exc}", EXIT_USAGE)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    view = redacted(settings)
    width = max(len(name) for name in view)
    for name, value in view.items():
        print(f"{name:<{width}}  {value}")
    print(f"\nagent: {settings.agent} (loads)")
    for line in _platform_lines(settings):
        print(line)
    if (problem := _unreachable(settings.redis_url)) is not None:
        print(f"redis: unreachable ({problem})")
        return EXIT_FAILURE
    print("redis: ok")
    for line in _recovery_lines(settings):
        print(line)
    return EXIT_OK


def recover_main(argv: list[str]) -> int:
    """``gateway recover github|stripe [--since DURATION] [--dry-run]``: one sweep, now.

    Prints a line per missed delivery (job id, event, when, source, what was done) and a summary
    on stderr. Exit 0 when the sweep went through cleanly, 1 when something failed or another
    sweep holds the lock, 2 when the platform cannot be swept with these settings.
    """
    parser = argparse.ArgumentParser(
        prog="gateway recover",
        description="Find deliveries the platform could not get to the gateway and bring each back "
        "once: GitHub redelivers them, Stripe events are queued.",
    )
    parser.add_argument("platform", choices=sorted(registry.SWEEPS))
    parser.add_argument(
        "--since",
        type=_duration,
        metavar="DURATION",
        help="look back this far (30m, 6h, 3d); default: since the last sweep (a first sweep: a day)",
    )
    parser.add_argument("--dry-run", action="store_true", help="only list what would be brought back")
    return run_command(parser, argv, _recover)


def _platform_lines(settings: WorkerSettings) -> list[str]:
    """Which platforms ``serve`` turns on, and what ``gateway dev`` would run on development secrets."""
    on = settings.base.enabled_platforms
    off = [name for name in WEBHOOK_PLATFORMS if name not in on]
    lines = [f"platforms on: {', '.join(on) or 'none (serve refuses to start: set a signing secret)'}"]
    if off:
        lines.append(f"gateway dev would also run {', '.join(off)} on its public development secrets")
    return lines


def _recovery_lines(settings: WorkerSettings) -> list[str]:
    """Each sweepable platform's last recovery sweep, as ``gateway check`` shows it."""
    connection = redis.Redis.from_url(settings.redis_url, socket_timeout=3)
    services = Services(settings, connection=connection)
    return [
        f"recovery {name}: {_last_sweep(services, sweep, connection.hgetall(keys.last_sweep(name)))}"
        for name, sweep in registry.SWEEPS.items()
    ]


def _runs(args: argparse.Namespace, settings: WorkerSettings, connection: redis.Redis) -> int:
    try:
        if args.action == "list":
            if not 1 <= args.limit <= 1000:
                return fail("--limit: must be from 1 to 1000", EXIT_USAGE)
            return watch.list_runs(connection, limit=args.limit, status=args.status, platform=args.platform)
        if args.action == "watch":
            return watch.watch(connection, args.job_id, timeout=args.timeout)
        if args.action == "show":
            record = runs.get_run(connection, args.job_id)
            if record is None:
                return fail(f"no run {args.job_id}", EXIT_FAILURE)
            print(json.dumps(record, indent=2, ensure_ascii=False))
            return EXIT_OK
        outcome = cancel_run(connection, args.job_id, session_key=registry.session_key)
        print(f"{args.job_id}: {outcome}")
        return EXIT_OK
    except LookupError:
        return fail(f"no run {args.job_id}", EXIT_FAILURE)


def _recover(args: argparse.Namespace, settings: WorkerSettings, connection: redis.Redis) -> int:
    services = Services(settings, connection=connection)
    sweep = registry.SWEEPS[args.platform]
    if (problem := sweep.unavailable(services)) is not None:
        return fail(problem, EXIT_USAGE)
    logs.configure(settings.base.log_level)
    report = asyncio.run(
        recover.sweep(
            services, sweep, owner="cli", since=args.since, dry_run=args.dry_run, on_found=_print_found(sweep)
        )
    )
    if report.skipped is not None:
        return fail(report.skipped, EXIT_FAILURE)
    state = "complete" if report.complete else "incomplete: the next sweep resumes where this one stopped"
    done = f"would bring back {report.found}" if args.dry_run else f"brought back {report.requeued}"
    print(
        f"{args.platform}: {report.found} missed, {done}, {len(report.errors)} error(s); {state}",
        file=sys.stderr,
    )
    for problem in report.errors:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_OK if report.complete and not report.errors else EXIT_FAILURE


def _print_found(sweep: recover.Sweep) -> recover.Found:
    def found(missed: recover.Missed, source: str, action: str) -> None:
        when = datetime.fromtimestamp(missed.at, UTC).isoformat(timespec="seconds")
        job_id = to_job_id(sweep.platform, missed.delivery_id)
        print(f"{job_id}\t{missed.event}\t{when}\t{source}\t{action}", flush=True)

    return found


def _duration(text: str) -> float:
    try:
        return recover.parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--since: ")) from None


def _last_sweep(services: Services, sweep: recover.Sweep, raw: Mapping[bytes | str, bytes | str]) -> str:
    """``gateway check``'s line about a platform's recovery."""
    if (problem := sweep.unavailable(services)) is not None:
        return f"off ({problem})"
    record = decode(raw)
    every = services.settings.recover_interval
    schedule = (
        f"the workers sweep every {every}s" if every else "GATEWAY_RECOVER_INTERVAL=0: only gateway recover"
    )
    if not record:
        return f"never swept ({schedule})"
    when = record.get("finished_at") or record.get("started_at", "?")
    counts = ", ".join(f"{name} {record.get(name, 0)}" for name in COUNTS)
    error = f"; last error: {record['error']}" if record.get("error") else ""
    by, state = record.get("by", "?"), record.get("state", "?")
    return f"last sweep {when} by {by}, {state}: {counts}{error} ({schedule})"


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway worker", description="Run queued events, many at once.")
    add = parser.add_argument
    add("--concurrency", type=int, help="runs at once in this process (default GATEWAY_CONCURRENCY)")
    add("--burst", action="store_true", help="exit once the queue is empty and nothing runs")
    add("--queue", action="append", dest="queues", help="queue to take jobs from (default GATEWAY_QUEUE)")
    add("--deadline", type=float, help="seconds a run may take (default GATEWAY_RUN_DEADLINE)")
    add("--grace", type=float, default=30.0, help="seconds running jobs get to finish on SIGTERM (30)")
    add("--name", help="worker name shown by rq info (default host.pid.random)")
    add("--heartbeat-interval", type=float, default=5.0, help="seconds between heartbeats (5)")
    add("--lease-ttl", type=float, default=20.0, help="seconds without a heartbeat before reaping (20)")
    add("--reap-interval", type=float, default=10.0, help="seconds between reaper passes (10)")
    add("--max-retries", type=int, default=5, help="retries of a transient failure (5)")
    add("--retry-base", type=float, default=2.0, help="first backoff ceiling in seconds (2)")
    add("--retry-cap", type=float, default=300.0, help="largest backoff in seconds (300)")
    add(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (GATEWAY_METRICS says to whom)",
    )
    add("--metrics-host", default="127.0.0.1", help="address of the metrics port (127.0.0.1)")
    return parser


def _worker_options(args: argparse.Namespace, settings: WorkerSettings) -> WorkerOptions:
    concurrency = args.concurrency if args.concurrency is not None else settings.concurrency
    if concurrency < 1:
        raise UsageError("--concurrency: must be at least 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError("--metrics-port: must be a port number, 0 to 65535")
    if args.metrics_port is not None and settings.base.metrics.mode == "off":
        raise UsageError("--metrics-port: GATEWAY_METRICS is off")
    if args.lease_ttl < 2 * args.heartbeat_interval:
        raise UsageError("--lease-ttl: must be at least twice --heartbeat-interval")
    deadline = args.deadline if args.deadline is not None else settings.run_deadline
    if deadline <= 0 or args.grace < 0 or args.reap_interval <= 0 or args.heartbeat_interval <= 0:
        raise UsageError(
            "--deadline, --heartbeat-interval and --reap-interval must be positive, --grace not negative"
        )
    return WorkerOptions(
        queues=tuple(args.queues or [settings.queue_name]),
        concurrency=concurrency,
        burst=args.burst,
        deadline=deadline,
        grace=args.grace,
        name=args.name,
        heartbeat_interval=args.heartbeat_interval,
        lease_ttl=args.lease_ttl,
        reap_interval=args.reap_interval,
        retry=RetryPolicy(max_retries=args.max_retries, base=args.retry_base, cap=args.retry_cap),
        recover_interval=float(settings.recover_interval),
    )


def _unreachable(url: str) -> str | None:
    """Why Redis at ``url`` does not answer a ping (the exception's name), or ``None`` when it does."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        return type(exc).__name__
    return None
