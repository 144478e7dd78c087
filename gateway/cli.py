"""The ``gateway`` command.

Exit codes scripts can rely on: 0 success, 1 a runtime failure (Redis unreachable, a command
failed), 2 a usage or configuration error (the message names the variable).

Worker-side commands (``worker``, ``failed``, ``runs``, ``recover``, and ``check``, which
validates the worker's settings too) live in ``handlers.cli`` and are reached by dotted path, so
the web process never imports the worker side or any platform SDK.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway import __version__
from gateway.config import Settings, load_env_file
from gateway.errors import ConfigError
from gateway.manifest import MANIFESTS
from gateway.platforms import PLATFORMS

__all__ = ["main", "port_number", "serve_command", "tune_garbage_collector", "worker_side"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
GC_YOUNGEST_THRESHOLD = 10_000

# Commands whose argument parsing and work happen on the worker side.
_WORKER_COMMANDS = {
    "worker": ("handlers.cli:worker_main", "run queued events: gateway worker [--concurrency N] [--burst]"),
    "failed": (
        "handlers.failed_cli:failed_main",
        "inspect and retry failed runs: gateway failed list|show|retry",
    ),
    "runs": ("handlers.cli:runs_main", "show or cancel a run: gateway runs show|cancel ID"),
    "recover": (
        "handlers.cli:recover_main",
        "bring back deliveries GitHub or Stripe could not deliver: gateway recover github|stripe",
    ),
    "check": ("handlers.cli:check_main", "validate settings and Redis reachability, secrets redacted"),
    "socket": ("handlers.slack.socket:socket_main", "receive Slack over Socket Mode (no public URL)"),
}

# Commands that run the gateway read the settings file (.env) first; the environment wins.
# (``setup`` reads and writes it itself: it must tell the file's values from the environment's.)
_READS_ENV_FILE = frozenset(
    {"serve", "dev", "worker", "check", "socket", "replay", "failed", "runs", "recover", "manifest"}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in _READS_ENV_FILE:
            path, names = load_env_file()
            if names and args[0] in ("dev", "check"):
                print(f"gateway {args[0]}: read {', '.join(names)} from {path}", file=sys.stderr)
        if args and args[0] in _WORKER_COMMANDS:
            return _dispatch(_WORKER_COMMANDS[args[0]][0], args[1:])
        parsed = _parser().parse_args(args)
        command: Callable[[argparse.Namespace], int] = parsed.command
        return command(parsed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def tune_garbage_collector() -> None:
    """Make the collector cheaper for the ack path, which allocates much and makes few cycles.

    Everything loaded so far (modules, the app) lives as long as the process: ``gc.freeze``
    takes it out of every later collection, which otherwise walked all of it each time a full
    collection came due. A request's objects are freed by reference counting, so the youngest
    generation is collected after 10,000 allocations rather than 700, which saw mostly the
    objects of requests still in flight. Together: about 5-10% more acks/s (``bench/ingress.py``).
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, middle, oldest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Webhook gateway for Slack, GitHub and Stripe."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the web app (acknowledges and queues deliveries)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8000, help="port to listen on (default 8000)")
    serve.set_defaults(command=serve_command)
    dev = commands.add_parser(
        "dev", help="run Redis, the web app and a worker on this machine; Ctrl-C stops all"
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="interface the web app listens on (default 127.0.0.1)"
    )
    dev.add_argument(
        "--port", type=port_number, default=8000, help="port the web app listens on (default 8000)"
    )
    dev.add_argument(
        "--socket", action="store_true", help="also receive Slack over Socket Mode (SLACK_APP_TOKEN)"
    )
    dev.set_defaults(command=_dev_command)
    _add_replay(commands)
    _add_manifest(commands)
    _add_setup(commands)
    for name, (_, help_text) in _WORKER_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="sign recorded payloads with the configured secrets and post them to a gateway",
        description="Sign recordings (fixtures/<platform>/<name>.body, or plain JSON with --platform) "
        "with the configured signing secrets and a fresh timestamp, post each to URL/webhooks/<platform> "
        "and print one line per answer. Exit 0 when every answer was 2xx, 1 otherwise, 2 on usage errors.",
    )
    replay.add_argument(
        "paths", nargs="+", metavar="PATH", help="a .body file, a plain JSON file or a folder"
    )
    replay.add_argument("--url", required=True, help="base URL of the gateway, e.g. https://gw.example.com")
    replay.add_argument(
        "--repeat", type=_positive, default=1, metavar="N", help="send each delivery N times (dedupe)"
    )
    replay.add_argument("--new-ids", action="store_true", help="give each recording a fresh delivery id")
    replay.add_argument("--platform", choices=tuple(PLATFORMS), help="platform of plain JSON payloads")
    replay.add_argument("--event", help="X-GitHub-Event of plain GitHub payloads")
    replay.add_argument(
        "--dev-secrets", action="store_true", help="sign with gateway dev's values where no secret is set"
    )
    replay.set_defaults(command=_replay_command)


def _add_manifest(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    manifest = commands.add_parser(
        "manifest",
        help="print a Slack app manifest (YAML) or a GitHub App manifest (JSON)",
        description="Print an app manifest whose webhook URLs point at PUBLIC_URL/webhooks/<platform> "
        "(Slack with --socket: none, events arrive over Socket Mode); how to use it is printed to stderr.",
    )
    manifest.add_argument("platform", choices=tuple(MANIFESTS))
    manifest.add_argument(
        "--url", metavar="PUBLIC_URL", help="the gateway's public https URL (Slack --socket: optional)"
    )
    manifest.add_argument("--name", default="Agent Gateway", help="app name (default: Agent Gateway)")
    manifest.add_argument(
        "--command", dest="slash_command", default="/agent", help="Slack slash command (default: /agent)"
    )
    manifest.add_argument("--form", action="store_true", help="GitHub: an HTML page that starts the flow")
    manifest.add_argument(
        "--socket", action="store_true", help="Slack: Socket Mode, no request URLs (gateway socket)"
    )
    manifest.add_argument("--org", help="GitHub: register the App under this organization")
    manifest.set_defaults(command=_manifest_command)


def _add_setup(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    setup = commands.add_parser(
        "setup",
        help="register an app in one step and write its credentials to .env (github)",
        description="Create the app on the platform and write its credentials to the settings file "
        "(.env, or GATEWAY_ENV_FILE), printing what was written but never a secret. Exit 0 when "
        "saved, 1 when the platform refused or did not answer in time, 2 on usage errors.",
    )
    platforms = setup.add_subparsers(title="platforms", required=True, metavar="PLATFORM")
    for name, platform in PLATFORMS.items():
        if platform.setup is not None:
            summary = platform.setup.summary
            parser = platforms.add_parser(name, help=summary, description=summary)
            platform.setup.add_arguments(parser)
            parser.set_defaults(command=platform.setup.run)


def port_number(text: str) -> int:
    """A TCP port, 1-65535 (argparse exits 2 on anything else; 0 would pick a random port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def serve_command(args: argparse.Namespace) -> int:
    """Check the settings, build the app (``gateway.app:create_app``) and serve it with uvicorn."""
    import uvicorn

    from gateway import logs
    from gateway.app import create_app

    settings = Settings.from_environ()
    if not settings.enabled_platforms:
        raise ConfigError(
            "SLACK_SIGNING_SECRET",
            "no platform is configured: set it, GITHUB_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRET",
        )
    logs.configure(settings.log_level)
    app = create_app(settings)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        # One JSON line per delivery replaces the access log; uvicorn keeps its own start/stop lines.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return EXIT_OK


def _dev_command(args: argparse.Namespace) -> int:
    from gateway.dev import dev_command

    return dev_command(args)


def _replay_command(args: argparse.Namespace) -> int:
    from gateway.replay import replay_command

    return replay_command(args)


def _manifest_command(args: argparse.Namespace) -> int:
    from gateway.manifest import manifest_command

    return manifest_command(args)


def worker_side(target: str) -> Callable[..., Any]:
    """The worker-side function ``target`` (``module:function``), imported only now, by dotted path.

    Raises ``ConfigError`` when the worker side is not installed.
    """
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("GATEWAY_AGENT", f"the worker side is not installed ({exc})") from None
    entry: Callable[..., Any] = getattr(module, function_name)
    return entry


def _dispatch(target: str, argv: list[str]) -> int:
    try:
        entry = worker_side(target)
    except ConfigError as exc:
        print(f"error: {exc.problem}", file=sys.stderr)
        return EXIT_USAGE
    code: int = entry(argv)
    return code


if __name__ == "__main__":
    sys.exit(main())
