"""``gateway setup github --url PUBLIC_URL [--org ORG]``: GitHub's App manifest flow in one step.

The command serves the flow's page (``gateway.platforms.github.registration``) on this machine
(``--host``, ``--port``; a free port of 127.0.0.1 by default), prints its address and waits
(``--timeout``) for GitHub to send the browser back with the App's one-time code. It exchanges
the code, then writes the App's private key to a file beside the settings file (mode 0600) and
``GITHUB_APP_ID``, ``GITHUB_APP_PRIVATE_KEY_PATH`` and ``GITHUB_WEBHOOK_SECRET`` into the
settings file (``.env``, or ``GATEWAY_ENV_FILE``; mode 0600), keeping its other lines. It prints
what it wrote, never a secret. GitHub settings already in the file are replaced only with
``--replace``; ``GITHUB_TOKEN`` and ``GITHUB_APP_PRIVATE_KEY``, which an App takes the place
of, are then commented out.

Exit codes: 0 saved, 1 GitHub refused or did not send the browser back in time, 2 a usage or
settings error (nothing started).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from gateway.envfile import EnvChanges, update_env_file, write_private
from gateway.errors import ConfigError, SetupFailed, UsageError
from gateway.platforms.github.manifest import check_org

if TYPE_CHECKING:  # gateway.config imports the platforms; the flow loads starlette and httpx
    from pathlib import Path

    from gateway.config import EnvFile
    from gateway.platforms.github.registration import CreatedApp, ManifestFlow

__all__ = ["MANAGED", "REPLACED_BY_AN_APP", "SetupPlan", "add_arguments", "run", "summary"]

summary = "create the GitHub App from its manifest; write its id, key and webhook secret to .env"

MANAGED = ("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY_PATH", "GITHUB_WEBHOOK_SECRET")
"""The settings the command writes."""
REPLACED_BY_AN_APP = ("GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY")
"""Settings the worker refuses beside an App's id and key file: commented out with ``--replace``."""
_NOT_SECRET = frozenset({"GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY_PATH"})
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TIMEOUT = 900


@dataclass(frozen=True)
class SetupPlan:
    """What one run registers, and where its settings go; checked before anything starts."""

    public_url: str
    name: str
    org: str | None
    api_url: str
    env: EnvFile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` (required), ``--org``, ``--name``, ``--host``, ``--port``, ``--timeout``, ``--replace``."""
    from gateway.cli import port_number  # the CLI imports the platforms, so not at import time

    parser.add_argument("--url", required=True, metavar="PUBLIC_URL", help="the gateway's public https URL")
    parser.add_argument("--org", help="register the App under this organization (default: your account)")
    parser.add_argument("--name", default="Agent Gateway", help="the App's name (editable on GitHub)")
    parser.add_argument("--host", default="127.0.0.1", help="interface of this command's page (127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="port of this command's page (default: a free one)")
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, help="seconds to wait for GitHub (default 900)"
    )
    parser.add_argument("--replace", action="store_true", help="replace GitHub settings the file holds")


def run(args: argparse.Namespace) -> int:
    """Check, serve the flow until GitHub's redirect is handled (or the timeout), report."""
    try:
        plan = _plan(args)
        listener = _listen(args.host, args.port)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SetupFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from gateway.platforms.github.registration import ManifestFlow

    flow = ManifestFlow(
        plan.public_url,
        name=plan.name,
        org=plan.org,
        api_url=plan.api_url,
        save=partial(_save, plan),
        ttl=args.timeout,
    )
    _log_to_terminal()
    try:
        _announce(plan, flow.state, listener, args)  # Ctrl-C may come as soon as the page is shown
        stopped = asyncio.run(_serve(flow, listener, seconds=args.timeout))
    except KeyboardInterrupt:
        stopped = True
    if stopped:
        return _outcome(flow, unfinished="stopped before GitHub sent the browser back")
    return _outcome(flow, unfinished=f"GitHub did not send the browser back within {args.timeout} s")


def _plan(args: argparse.Namespace) -> SetupPlan:
    from gateway.config import Settings, read_env_file
    from gateway.manifest import public_url

    base = public_url(args.url)
    check_org(args.org)
    if not 1 <= len(args.name) <= 34:  # GitHub's limit for an App's name
        raise UsageError(f"--name must be 1 to 34 characters, got {len(args.name)}")
    env = read_env_file()
    settings = Settings.from_environ(env.merged())
    _check_existing(env, replace=args.replace)
    if not os.access(env.path.parent, os.W_OK):
        raise UsageError(f"cannot write {env.path}: its folder is missing or not writable")
    api_url = settings.option("github", "GITHUB_API_URL") or DEFAULT_API_URL
    return SetupPlan(base, args.name, args.org, api_url.rstrip("/"), env)


def _check_existing(env: EnvFile, *, replace: bool) -> None:
    """Refuse to start when the file holds GitHub settings, unless they are to be replaced."""
    held = [name for name in (*MANAGED, *REPLACED_BY_AN_APP) if name in env.values]
    if held and not replace:
        shown = [f"{name}={env.values[name]}" if name in _NOT_SECRET else name for name in held]
        raise UsageError(
            f"{env.path} already holds GitHub settings ({', '.join(shown)}): pass --replace to "
            "replace them (GITHUB_TOKEN and GITHUB_APP_PRIVATE_KEY are then commented out), "
            "or set GATEWAY_ENV_FILE to write another file"
        )


def _listen(host: str, port: int | None) -> socket.socket:
    """The page's listening socket, bound now so a taken port is said before anything starts."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port or 0))
        listener.listen(16)
    except OSError as exc:
        listener.close()
        raise SetupFailed(f"{host}:{port} is not available ({exc.strerror}): pass another --port") from None
    return listener


def _announce(plan: SetupPlan, state: str, listener: socket.socket, args: argparse.Namespace) -> None:
    page = f"/github/setup?state={state}"
    local = _local_origin(args.host, listener.getsockname()[1])
    lines = [
        "Open this page in a browser on this machine; its button creates the App on GitHub:",
        f"  {local}{page}",
    ]
    if args.port:
        lines.append(f"  (or {plan.public_url}{page} where that URL leads to {args.host}:{args.port})")
    lines += [
        f"The App's webhooks will go to {plan.public_url}/webhooks/github; its settings to {plan.env.path}.",
        f"Waiting up to {args.timeout} s for GitHub to send the browser back (Ctrl-C stops; nothing is"
        " written before).",
    ]
    print("\n".join(lines), flush=True)


async def _serve(flow: ManifestFlow, listener: socket.socket, *, seconds: float) -> bool:
    """Serve the flow until it finished or ``seconds`` passed; True when a signal stopped it first."""
    import uvicorn
    from starlette.applications import Starlette

    config = uvicorn.Config(
        Starlette(routes=flow.routes()),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=15,  # an exchange in flight (10 s timeout) finishes and is saved
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    finished = asyncio.create_task(flow.finished.wait())
    done, _ = await asyncio.wait({serving, finished}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finished.cancel()
    server.should_exit = True
    await serving
    return serving in done and finished not in done  # uvicorn stops on SIGINT and SIGTERM


def _outcome(flow: ManifestFlow, *, unfinished: str) -> int:
    if flow.report is not None:
        print(flow.report, flush=True)
        return 0
    if flow.error is not None:
        print(f"error: {flow.error}", file=sys.stderr)
        return 1
    print(f"error: {unfinished}: nothing was written.", file=sys.stderr)
    return 1


def _save(plan: SetupPlan, app: CreatedApp) -> str:
    """Write the App's key file and its settings; the report says what was written."""
    key_path = plan.env.path.parent / f"github-app-{app.id}.private-key.pem"
    values = {"GITHUB_APP_ID": str(app.id), "GITHUB_APP_PRIVATE_KEY_PATH": str(key_path)}
    if app.webhook_secret:
        values["GITHUB_WEBHOOK_SECRET"] = app.webhook_secret
    note = f"GitHub App {app.slug} ({app.html_url}), written by gateway setup github"
    try:
        write_private(key_path, app.pem)
        changes = update_env_file(plan.env.path, values, turn_off=REPLACED_BY_AN_APP, note=note)
    except OSError as exc:
        raise SetupFailed(
            f"GitHub created the App {app.html_url} (id {app.id}), but {exc.filename or plan.env.path} "
            f"could not be written ({exc.strerror or exc}). On the App's page, generate a private key "
            "and set a webhook secret, then put them in the settings by hand."
        ) from None
    return "\n".join(_report(plan, app, key_path, values, changes))


def _report(
    plan: SetupPlan, app: CreatedApp, key_path: Path, values: dict[str, str], changes: EnvChanges
) -> list[str]:
    where = plan.env.path
    lines = [
        f'GitHub App "{app.name}" (id {app.id}) created for {app.owner}: {app.html_url}',
        f"wrote {key_path}: the App's private key (mode 0600)",
        f"wrote {where} (mode 0600): {_shown(values, hidden='(not shown)')}",
    ]
    if changes.replaced:
        lines.append(f"replaced what {where} held: {_shown(changes.replaced, hidden='', was=True)}")
    if changes.turned_off:
        lines.append(f"commented out, as an App takes their place: {', '.join(changes.turned_off)}")
    if not app.webhook_secret:
        lines.append(
            "warning: GitHub made no webhook secret: set one on the App's page, and in GITHUB_WEBHOOK_SECRET"
        )
    shadowed = [name for name in (*MANAGED, *REPLACED_BY_AN_APP) if name in plan.env.environment]
    if shadowed:
        lines.append(
            f"warning: this shell's environment sets {', '.join(shadowed)}, which wins over {where}: "
            "unset it before starting the gateway"
        )
    lines.append(f"next: install the App on your repositories: {app.install_url}")
    lines.append(f"then (re)start the gateway so it reads {where}: scripts/dev, or gateway serve and worker")
    return lines


def _shown(values: Mapping[str, str], *, hidden: str, was: bool = False) -> str:
    """``NAME=value`` (``NAME (was value)``) for settings that are not secret, ``NAME hidden`` else."""
    shown = [
        (f"{name} (was {value})" if was else f"{name}={value}")
        if name in _NOT_SECRET
        else f"{name} {hidden}".rstrip()
        for name, value in values.items()
    ]
    return ", ".join(shown)


def _local_origin(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log_to_terminal() -> None:
    """The flow's refusals (a wrong state, GitHub's answers) as ``gateway setup: ...`` on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gateway setup: %(message)s"))
    flow_logger = logging.getLogger("gateway.github.setup")
    flow_logger.addHandler(handler)
    flow_logger.setLevel(logging.INFO)
    flow_logger.propagate = False


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
