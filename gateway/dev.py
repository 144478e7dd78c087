"""``gateway dev``: the whole stack on this machine, stopped cleanly by Ctrl-C.

Starts a private ``redis-server`` on a free port when ``REDIS_URL`` is not set, then the web app
and one worker as child processes, waits until the app is healthy and prints the webhook URLs.
Platforms without a signing secret get a fixed development secret so the stack works with no
configuration at all; it is bound to 127.0.0.1 unless ``--host`` says otherwise.

Progress goes to stderr as ``gateway dev: ...`` lines (with each child's pid), the URLs to stdout.
Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 a child failed or the port is taken, 2 a settings
problem (including ``redis-server`` missing with no ``REDIS_URL``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import redis

from gateway.cli import worker_side
from gateway.config import Settings, redact_url
from gateway.errors import ConfigError, StackFailed, StartAborted
from gateway.platforms import PLATFORMS

__all__ = ["DEV_SECRETS", "DevStack", "dev_command"]

DEV_SECRETS = {platform.secret_variable: platform.dev_secret for platform in PLATFORMS.values()}
"""The public signing secrets used for platforms whose secret is unset: never use them in production."""
STOP_GRACE_SECONDS = 15.0
# The worker's drain on SIGTERM; short, so Ctrl-C does not wait out a long agent run.
WORKER_GRACE_SECONDS = 5.0
START_TIMEOUT_SECONDS = 30.0


class DevStack:
    """The child processes of one ``gateway dev`` run, started and stopped together."""

    def __init__(self, environ: Mapping[str, str], *, host: str, port: int, socket: bool = False) -> None:
        self.environ = dict(environ)
        self.host, self.port = host, port
        self.socket = socket
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False
        self.force_stop = False
        self._redis_dir: str | None = None

    def prepare(self) -> Settings:
        """Fill in development secrets and check the web and worker settings; raises ``ConfigError``."""
        for name, value in DEV_SECRETS.items():
            if not self.environ.get(name):
                self.environ[name] = value
                _say(f"{name} is not set: using the development value {value!r} (never use it in production)")
        if not self.environ.get("GATEWAY_API_TOKEN"):
            # The console is on in dev: with a token made for this run, printed with its URL.
            self.environ["GATEWAY_API_TOKEN"] = secrets.token_urlsafe(24)
        settings = Settings.from_environ(self.environ)
        worker_side("handlers.config:check_environ")(self.environ)
        if self.socket and not self.environ.get("SLACK_APP_TOKEN", "").strip():
            raise ConfigError(
                "SLACK_APP_TOKEN", "is not set: --socket needs the Slack app-level token (xapp-...)"
            )
        return settings

    def start(self) -> None:
        """Start Redis (unless ``REDIS_URL`` is set), the web app and a worker; wait until healthy."""
        started = time.monotonic()
        self._check_port_free()
        if self.environ.get("REDIS_URL"):
            _say(f"using REDIS_URL={redact_url(self.environ['REDIS_URL'].strip())}")
        else:
            self.environ["REDIS_URL"] = self._start_redis()
        gateway = [sys.executable, "-m", "gateway.cli"]
        self._spawn("web", [*gateway, "serve", "--host", self.host, "--port", str(self.port)])
        self._spawn("worker", [*gateway, "worker", "--grace", f"{WORKER_GRACE_SECONDS:g}"])
        if self.socket:
            self._spawn("socket", [*gateway, "socket"])
        self._wait_healthy()
        _say(f"ready in {time.monotonic() - started:.1f}s")

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as sock:
            # As uvicorn does, so a port left in TIME_WAIT by the last run counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                raise StackFailed(
                    f"{self.host}:{self.port} is not available ({exc.strerror}): pass --port"
                ) from None

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(
                "REDIS_URL",
                "is not set and redis-server is not installed: install it "
                "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) "
                "or point REDIS_URL at a Redis",
            )
        port = _free_port()
        self._redis_dir = tempfile.mkdtemp(prefix="gateway-dev-redis-")
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", self._redis_dir, "--save", ""]
        args += ["--appendonly", "yes", "--maxmemory-policy", "noeviction"]
        args += ["--logfile", str(Path(self._redis_dir) / "redis.log")]
        self._spawn("redis", [binary, *args])
        self._wait_redis(port)
        return f"redis://127.0.0.1:{port}/0"

    def _spawn(self, name: str, command: list[str]) -> None:
        # Each child gets its own session so a terminal's Ctrl-C reaches only us; we stop them in order.
        process = subprocess.Popen(command, env=self.environ, start_new_session=True)  # noqa: S603
        self.processes[name] = process
        _say(f"started {name} (pid {process.pid})")

    def _wait_redis(self, port: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_starting()
            try:
                client.ping()
            except redis.RedisError:
                time.sleep(0.05)
            else:
                _say(f"redis-server answers on 127.0.0.1:{port} (data in {self._redis_dir})")
                return
        raise StackFailed(
            f"redis-server did not answer on 127.0.0.1:{port} within {START_TIMEOUT_SECONDS:g}s"
        )

    def _wait_healthy(self) -> None:
        url = f"http://{_local(self.host)}:{self.port}/health"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        _say(f"waiting for {url} ...")
        while time.monotonic() < deadline:
            self._check_starting()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (fixed http URL)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise StackFailed(f"the web app did not answer {url} within {START_TIMEOUT_SECONDS:g}s")

    def _check_starting(self) -> None:
        if self.stop_requested:
            raise StartAborted
        self.check_alive()

    def check_alive(self) -> None:
        """Raise ``StackFailed`` naming the first child that has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackFailed(f"{name} exited with status {process.returncode}")

    def stop(self) -> None:
        """SIGTERM the web app and the worker, then Redis; SIGKILL what outlives the grace or a 2nd Ctrl-C."""
        apps = [name for name in self.processes if name != "redis"]
        self._terminate(apps)
        self._terminate([name for name in self.processes if name == "redis"])
        if self._redis_dir:
            shutil.rmtree(self._redis_dir, ignore_errors=True)

    def _terminate(self, names: list[str]) -> None:
        for name in names:
            _signal_group(self.processes[name], signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(self.processes[name].poll() is None for name in names):
            if self.force_stop or time.monotonic() > deadline:
                for name in names:
                    if self.processes[name].poll() is None:
                        _say(f"killing {name} (pid {self.processes[name].pid})")
                        _signal_group(self.processes[name], signal.SIGKILL)
                        self.processes[name].wait()
                break
            time.sleep(0.05)
        for name in names:
            # Anything the child left behind in its process group goes with it.
            _signal_group(self.processes[name], signal.SIGKILL)

    def banner(self) -> str:
        """The webhook URLs to register and how to stop."""
        base = f"http://{_local(self.host)}:{self.port}"
        lines = ["", "gateway dev is running. Webhook URLs to register (behind your public tunnel or proxy):"]
        lines += [f"  {platform:<7} {base}/webhooks/{platform}" for platform in PLATFORMS]
        lines += [f"  health  {base}/health"]
        if self.socket:
            lines += ["Slack also arrives over Socket Mode (gateway socket): no public URL needed."]
        token = self.environ["GATEWAY_API_TOKEN"].split(",")[0].strip()
        lines += [
            f"Console: {base}/console  (sign in with the token {token})",
            f"Runs API: curl -H 'Authorization: Bearer {token}' {base}/api/runs",
            f"For gateway commands in another terminal: export REDIS_URL={self.environ['REDIS_URL']}",
            f"Try it: gateway replay fixtures/slack/app_mention.body --url {base} --new-ids --dev-secrets",
            "  then: gateway runs watch <the job id replay prints>   (or open it in the console)",
        ]
        lines += ["Press Ctrl-C to stop everything.", ""]
        return "\n".join(lines)


def dev_command(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C or SIGTERM (exit 0), or until a child dies (exit 1)."""
    stack = DevStack(os.environ, host=args.host, port=args.port, socket=args.socket)
    stack.prepare()

    def request_stop(signum: int, frame: object) -> None:
        if stack.stop_requested:
            stack.force_stop = True
            _say("second signal: killing what is left")
        stack.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stack.stop_requested:
            stack.check_alive()
            time.sleep(0.2)
        return 0
    except StartAborted:
        return 0
    except StackFailed as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        if stack.processes:
            _say("stopping ...")
            stack.stop()
            _say("stopped: " + ", ".join(f"{name} (pid {p.pid})" for name, p in stack.processes.items()))


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # start_new_session made each child the leader of its own process group (pgid == pid).
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (mapping, not binding)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(message: str) -> None:
    print(f"gateway dev: {message}", file=sys.stderr, flush=True)
