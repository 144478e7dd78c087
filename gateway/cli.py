"""The ``gateway`` command.

Exit codes scripts can rely on: 0 success, 1 a runtime failure (Redis unreachable, a command
failed), 2 a usage or configuration error (the message names the variable).

Worker-side commands (``worker``, ``failed``, ``runs``) live in ``handlers.cli`` and are
reached by dotted path, so the web process never imports the worker side or any platform SDK.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import redis

from gateway import __version__
from gateway.config import Settings, redacted
from gateway.errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# Commands whose argument parsing and work happen on the worker side.
_WORKER_COMMANDS = {
    "worker": ("handlers.cli:worker_main", "run queued events: gateway worker [--concurrency N] [--burst]"),
    "failed": ("handlers.cli:failed_main", "inspect and retry failed runs: gateway failed list|show|retry"),
    "runs": ("handlers.cli:runs_main", "show or cancel a run: gateway runs show|cancel ID"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _WORKER_COMMANDS:
        return _dispatch(_WORKER_COMMANDS[args[0]][0], args[1:])
    parsed = _parser().parse_args(args)
    command: Callable[[argparse.Namespace], int] = parsed.command
    try:
        return command(parsed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Webhook gateway for Slack, GitHub and Stripe."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the web app (acknowledges and queues deliveries)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.set_defaults(command=serve_command)
    dev = commands.add_parser(
        "dev", help="run Redis, the web app and a worker on this machine; Ctrl-C stops all"
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="interface the web app listens on (default 127.0.0.1)"
    )
    dev.add_argument("--port", type=int, default=8000, help="port the web app listens on (default 8000)")
    dev.set_defaults(command=_dev_command)
    check = commands.add_parser("check", help="validate settings and Redis reachability, secrets redacted")
    check.set_defaults(command=check_command)
    for name, (_, help_text) in _WORKER_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def serve_command(args: argparse.Namespace) -> int:
    """Check the settings, then serve ``gateway.app:create_app`` with uvicorn."""
    import uvicorn

    from gateway import logs

    settings = Settings.from_environ()
    if not settings.enabled_platforms:
        raise ConfigError(
            "SLACK_SIGNING_SECRET",
            "no platform is configured: set it, GITHUB_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET",
        )
    logs.configure(settings.log_level)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        # One JSON line per delivery replaces the access log; uvicorn keeps its own start/stop lines.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return EXIT_OK


def check_command(args: argparse.Namespace) -> int:
    """Print the effective settings (secrets redacted) and whether Redis answers."""
    settings = Settings.from_environ()
    width = max(len(name) for name in redacted(settings))
    for name, value in redacted(settings).items():
        print(f"{name:<{width}}  {value}")
    platforms = ", ".join(settings.enabled_platforms) or "none (set a signing secret to turn one on)"
    print(f"\nplatforms on: {platforms}")
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
    except redis.RedisError as exc:
        print(f"redis: unreachable ({type(exc).__name__})")
        return EXIT_FAILURE
    print("redis: ok")
    return EXIT_OK


def _dev_command(args: argparse.Namespace) -> int:
    from gateway.dev import dev_command

    return dev_command(args)


def _dispatch(target: str, argv: list[str]) -> int:
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"error: the worker side is not installed ({exc})", file=sys.stderr)
        return EXIT_USAGE
    entry: Callable[[list[str]], int] = getattr(module, function_name)
    return entry(argv)


if __name__ == "__main__":
    sys.exit(main())
