"""llama.cpp's ``llama-server`` on 127.0.0.1 with the tiny model, for tests of the ``llm`` agent
against a real OpenAI-compatible server.

``scripts/test`` builds the binary once (``scripts/_llama.sh``) and names it in ``LLAMA_SERVER``;
without it the tests that need it are skipped, saying so. One slot (``-np 1``): llama-server's
slots share one KV cache of ``-c`` cells, and concurrent requests that overflow it all fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import pytest

__all__ = ["LlamaServer", "binary"]

_READY_TIMEOUT = 30.0


def binary() -> Path:
    """The ``llama-server`` binary ``LLAMA_SERVER`` names; skips the test when there is none."""
    named = os.environ.get("LLAMA_SERVER")
    if not named:
        pytest.skip("LLAMA_SERVER is not set: scripts/test builds llama-server and sets it")
    path = Path(named)
    if not os.access(path, os.X_OK):
        pytest.fail(f"LLAMA_SERVER={named} is not an executable")
    return path


class LlamaServer:
    """One ``llama-server`` process; ``base_url`` is what ``LLM_BASE_URL`` should be."""

    def __init__(self, server: Path, model: Path, *, context: int, log: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._command = [
            str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
            "--jinja", "-c", str(context), "-np", "1", "--alias", "tiny",
        ]  # fmt: skip
        self._log_path = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        log = self._log_path.open("wb")
        self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def log(self) -> str:
        """What the server printed (for failure messages)."""
        return self._log_path.read_text(errors="replace")[-4000:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"llama-server was not ready within {_READY_TIMEOUT}s:\n{self.log()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
