"""``gateway serve`` as a real process on a free port of 127.0.0.1, for tests where a platform
(a fake) must reach the gateway over HTTP, as GitHub does when it (re)delivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT = 20.0


@contextmanager
def served(redis_url: str, settings: Mapping[str, str]) -> Iterator[str]:
    """The web app on a free port with ``settings`` (signing secrets...); yields its base URL.

    Waits (at most 20 s) until ``/health`` answers 200, so Redis must be up when it starts.
    """
    port = free_port()
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_"))
    }
    env = {**kept, **settings, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _healthy(base):
            assert process.poll() is None, "gateway serve exited"
            assert time.monotonic() < deadline, "gateway serve did not become healthy"
            time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
