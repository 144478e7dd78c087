"""``gateway dev``: the whole stack on this machine, stopped cleanly by Ctrl-C.

Starts a private ``redis-server`` on a free port when ``REDIS_URL`` is not set, then the web app
and one worker as child processes, waits until the app is healthy and prints the webhook URLs.
Platforms without a signing secret get a fixed development secret so the stack works with no
configuration at all; it is bound to 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping

DEV_SECRETS = {
    "SLACK_SIGNING_SECRET": "dev-slack-signing-secret",
    "GITHUB_WEBHOOK_SECRET": "dev-github-webhook-secret",
    "STRIPE_WEBHOOK_SECRET": "whsec_dev_stripe_webhook_secret",
}
STOP_GRACE_SECONDS = 15.0


class DevStack:
    """The child processes of one ``gateway dev`` run, started and stopped together."""

    def __init__(self, environ: Mapping[str, str], *, host: str, port: int) -> None:
        self.environ = dict(environ)
        self.host, self.port = host, port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._redis_dir: str | None = None

    def start(self) -> None:
        if not self.environ.get("REDIS_URL"):
            self.environ["REDIS_URL"] = self._start_redis()
        for name, value in DEV_SECRETS.items():
            if not self.environ.get(name):
                self.environ[name] = value
                _say(f"{name} is not set: using the development value {value!r} (never use it in production)")
        gateway = [sys.executable, "-m", "gateway.cli"]
        self._spawn("web", [*gateway, "serve", "--host", self.host, "--port", str(self.port)])
        self._spawn("worker", [*gateway, "worker"])
        self._wait_healthy()

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(
                "error: REDIS_URL is not set and redis-server is not installed.\n"
                "Install it (Debian/Ubuntu: sudo apt-get install redis-server) or point REDIS_URL at a Redis."
            )
        port = _free_port()
        self._redis_dir = tempfile.mkdtemp(prefix="gateway-dev-redis-")
        args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", self._redis_dir, "--save", ""]
        args += ["--appendonly", "yes", "--maxmemory-policy", "noeviction"]
        self._spawn("redis", [binary, *args])
        _say(f"started redis-server on 127.0.0.1:{port}")
        return f"redis://127.0.0.1:{port}/0"

    def _spawn(self, name: str, command: list[str]) -> None:
        # Each child gets its own session so a terminal's Ctrl-C reaches only us; we stop them in order.
        self.processes[name] = subprocess.Popen(command, env=self.environ, start_new_session=True)  # noqa: S603

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        url = f"http://127.0.0.1:{self.port}/health"
        deadline = time.monotonic() + timeout
        _say("waiting for the web app to answer /health ...")
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (fixed http URL)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the web app did not answer {url} within {timeout:.0f}s")

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` naming the first child that has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}")

    def stop(self) -> None:
        """SIGTERM every child (web and worker first, Redis last), then SIGKILL stragglers."""
        for name in ("web", "worker", "redis"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._redis_dir:
            shutil.rmtree(self._redis_dir, ignore_errors=True)

    def banner(self) -> str:
        base = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::') else self.host}:{self.port}"  # noqa: S104
        lines = ["", "gateway dev is running. Webhook URLs to register (behind your public tunnel or proxy):"]
        lines += [f"  {platform:<7} {base}/webhooks/{platform}" for platform in ("slack", "github", "stripe")]
        lines += [f"  health  {base}/health", "Press Ctrl-C to stop everything.", ""]
        return "\n".join(lines)


def dev_command(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C or SIGTERM, or until a child dies (exit 1)."""
    stack = DevStack(os.environ, host=args.host, port=args.port)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stopping:
            stack.check_alive()
            time.sleep(0.2)
        return 0
    except RuntimeError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        _say("stopping ...")
        stack.stop()
        _say("stopped")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(message: str) -> None:
    print(f"gateway dev: {message}", file=sys.stderr, flush=True)
