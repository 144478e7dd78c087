"""``gateway dev`` as a real process: its own redis-server, web app and worker, and a clean stop.

The worker replies through the real slack-sdk to the fake Slack API, so a delivery posted to the
dev stack is followed all the way to a reply.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from gateway.dev import DEV_SECRETS
from tests.fakes import SlackFake
from tests.support.redis_server import free_port
from tests.support.signing import slack_headers

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@dataclass
class Dev:
    """A running ``gateway dev`` and where its output goes."""

    process: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def pids(self) -> dict[str, int]:
        """The children ``gateway dev`` says it started, by name."""
        return {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", self.stderr)}

    def redis_port(self) -> int:
        match = re.search(r"redis-server answers on 127\.0\.0\.1:(\d+)", self.stderr)
        assert match, self.stderr
        return int(match.group(1))

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=40)


def _environ(**values: str) -> dict[str, str]:
    drop = ("SLACK_", "GITHUB_", "STRIPE_", "GATEWAY_", "LLM_", "REDIS_URL")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**kept, "GATEWAY_ENV_FILE": os.devnull, **values}


def _start(
    tmp_path: Path, env: dict[str, str], *, port: int | None = None, extra: list[str] | None = None
) -> Dev:
    port = port or free_port()
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "dev", "--port", str(port), *(extra or [])],
            env=env,
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
    return Dev(process, port, out, err)


def _wait_ready(dev: Dev) -> None:
    """Until dev prints its banner (it does so once /health answers), then /health must be 200."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while "Press Ctrl-C" not in dev.out.read_text():
        assert dev.process.poll() is None, dev.stderr
        assert time.monotonic() < deadline, dev.stderr
        time.sleep(0.1)
    assert httpx.get(f"http://127.0.0.1:{dev.port}/health", timeout=5).status_code == 200


def _children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``, read from /proc (independent of what dev prints)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.add(int(stat.parent.name))
    return children


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def dev(tmp_path: Path, slack: SlackFake) -> Iterator[Dev]:
    env = _environ(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url)
    running = _start(tmp_path, env)
    try:
        _wait_ready(running)
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        for pid in running.pids().values():
            if _is_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_dev_runs_a_delivery_end_to_end_and_ctrl_c_stops_every_child(dev: Dev, slack: SlackFake) -> None:
    pids = dev.pids()
    assert set(pids) == {"redis", "web", "worker"}
    assert _children_of(dev.process.pid) == set(pids.values())
    banner = dev.out.read_text()
    for platform in ("slack", "github", "stripe"):
        assert f"http://127.0.0.1:{dev.port}/webhooks/{platform}" in banner
    assert "SLACK_SIGNING_SECRET is not set: using the development value" in dev.stderr
    assert re.search(r"ready in \d+\.\ds", dev.stderr)

    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "EvDev0001",
            "team_id": "T0001",
            "event": {
                "type": "app_mention",
                "user": "U0001",
                "text": "<@U0002> hi",
                "channel": "C0001",
                "ts": "1.2",
            },
        }
    ).encode()
    headers = {"content-type": "application/json"}
    headers |= slack_headers(DEV_SECRETS["SLACK_SIGNING_SECRET"], body, int(time.time()))
    response = httpx.post(f"http://127.0.0.1:{dev.port}/webhooks/slack", content=body, headers=headers)
    assert response.status_code == 200

    connection = redis.Redis(port=dev.redis_port())
    job = Job.fetch("slack-EvDev0001", connection=connection, serializer=JSONSerializer)
    deadline = time.monotonic() + 60
    while job.get_status(refresh=True) != "finished":
        assert time.monotonic() < deadline, (job.get_status(), dev.stderr)
        time.sleep(0.1)
    assert slack.calls(path="/chat.*"), "the worker replied through the Slack API"
    connection.close()

    # The banner names the console, its token and the REDIS_URL other commands need; the token works.
    token = re.search(r"sign in with the token (\S+)\)", banner)
    assert token and f"http://127.0.0.1:{dev.port}/console" in banner
    assert f"export REDIS_URL=redis://127.0.0.1:{dev.redis_port()}/0" in banner
    api = httpx.get(
        f"http://127.0.0.1:{dev.port}/api/runs/slack-EvDev0001",
        headers={"Authorization": f"Bearer {token[1]}"},
    )
    assert api.status_code == 200 and api.json()["status"] == "succeeded"

    redis_port = dev.redis_port()
    assert dev.stop(signal.SIGINT) == 0
    assert not [name for name, pid in pids.items() if _is_alive(pid)]
    assert not _port_is_open(dev.port) and not _port_is_open(redis_port)
    assert "stopped:" in dev.stderr


def test_sigterm_stops_it_too(dev: Dev) -> None:
    pids = dev.pids()
    assert dev.stop(signal.SIGTERM) == 0
    assert not [name for name, pid in pids.items() if _is_alive(pid)]


def test_a_child_that_dies_stops_the_others_and_exits_1(dev: Dev) -> None:
    pids = dev.pids()
    os.kill(pids["worker"], signal.SIGKILL)
    assert dev.process.wait(timeout=40) == 1
    assert "worker exited" in dev.stderr
    assert not [name for name, pid in pids.items() if _is_alive(pid)]


def test_without_redis_server_installed_it_says_how_to_install_it(tmp_path: Path) -> None:
    running = _start(tmp_path, _environ(PATH=str(tmp_path)))
    assert running.process.wait(timeout=30) == 2
    assert "REDIS_URL: is not set and redis-server is not installed" in running.stderr
    assert "apt-get install redis-server" in running.stderr
    assert running.pids() == {}


def test_a_taken_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        running = _start(tmp_path, _environ(), port=taken.getsockname()[1])
        assert running.process.wait(timeout=30) == 1
    assert "is not available" in running.stderr and "--port" in running.stderr
    assert running.pids() == {}


def test_a_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    running = _start(tmp_path, _environ(GATEWAY_DEDUPE_TTL="5"))
    assert running.process.wait(timeout=30) == 2
    assert "error: GATEWAY_DEDUPE_TTL:" in running.stderr and running.pids() == {}


def test_dev_socket_without_an_app_token_exits_2_naming_it(tmp_path: Path) -> None:
    running = _start(tmp_path, _environ(), extra=["--socket"])
    assert running.process.wait(timeout=30) == 2
    assert "error: SLACK_APP_TOKEN: is not set" in running.stderr and running.pids() == {}


def test_the_readmes_socket_mode_steps_get_a_mention_answered_without_a_public_url(
    tmp_path: Path, slack: SlackFake
) -> None:
    """README "Slack app", Socket Mode: .env holds the app and bot tokens, scripts/dev --socket runs."""
    from tests.fakes.socket_mode import DEFAULT_APP_TOKEN, SocketModeFake

    with SocketModeFake() as socket_mode:
        slack.socket_mode = socket_mode
        env_file = tmp_path / ".env"
        env_file.write_text(f"SLACK_APP_TOKEN={DEFAULT_APP_TOKEN}\nSLACK_BOT_TOKEN={slack.token}\n")
        env = {**_environ(SLACK_API_URL=slack.base_url), "GATEWAY_ENV_FILE": str(env_file)}
        running = _start(tmp_path, env, extra=["--socket"])
        try:
            _wait_ready(running)
            assert set(running.pids()) == {"redis", "web", "worker", "socket"}
            event = {
                "type": "app_mention",
                "user": "U1",
                "text": "<@U0FAKEBOT> help",
                "channel": "C9",
                "ts": "1.5",
            }
            body = {"type": "event_callback", "event_id": "EvDevSock1", "team_id": "T0FAKE", "event": event}
            envelope_id = socket_mode.send("events_api", body, timeout=30)
            socket_mode.wait_acked(envelope_id, timeout=30)
            slack.wait_for("POST", "/chat.stopStream", timeout=60)  # the answer streamed in, then stopped
            (answer,) = [m for m in slack.messages("C9") if m.get("thread_ts") == "1.5"]
            assert answer["text"] and slack.stream("C9", answer["ts"])["state"] == "stopped"
            assert running.stop() == 0
        finally:
            if running.process.poll() is None:
                running.process.kill()
            for pid in running.pids().values():
                if _is_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        assert socket_mode.violations == []
