"""``/health`` tells the truth: workers alive or not, the model server as a worker last found it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from tests.handlers.llm.fake_model import ModelFake
from tests.handlers.support import FAST, WorkerProcess, enqueue, slack_envelope, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def web(redis_url: str) -> Iterator[TestClient]:
    settings = Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": "s"})
    with TestClient(create_app(settings)) as client:
        yield client


def _health(web: TestClient) -> dict[str, Any]:
    response = web.get("/health")
    assert response.status_code == 200, "only Redis being down is a 503"
    found: dict[str, Any] = response.json()
    return found


def test_a_live_worker_is_counted_with_its_heartbeat_and_a_killed_one_stops_counting(
    redis_url: str, web: TestClient
) -> None:
    assert _health(web)["workers"]["alive"] == 0
    with WorkerProcess(redis_url, *FAST) as worker:
        health = wait_until(lambda: (h := _health(web))["workers"]["alive"] == 1 and h)
        assert health["status"] == "ok" and "problems" not in health
        assert health["workers"]["last_heartbeat_age"] < 5
        worker.signal(signal.SIGKILL)
        worker.wait()
        # Its lease (1.5 s) runs out: no longer alive, and /health says what to do.
        health = wait_until(lambda: (h := _health(web))["workers"]["alive"] == 0 and h, timeout=10)
    assert health["status"] == "degraded"
    assert any("gateway worker" in problem for problem in health["problems"])


def test_the_oldest_queued_delivery_ages_while_no_worker_takes_it(
    redis_client: redis.Redis, web: TestClient
) -> None:
    enqueue(redis_client, slack_envelope("EvOLD"))
    time.sleep(1.1)
    health = _health(web)
    assert health["queued"] == 1
    assert health["oldest_queued_age"] >= 1.0


def test_the_model_server_is_reported_as_the_workers_probe_found_it(redis_url: str, web: TestClient) -> None:
    with ModelFake() as model:
        env = {"LLM_BASE_URL": model.base_url, "LLM_MODEL": "fake-model"}
        with WorkerProcess(redis_url, *FAST, agent="llm", env=env):
            health = wait_until(lambda: "model" in (h := _health(web)) and h)
            assert health["model"]["status"] == "ok"
            assert health["status"] == "ok"
            probes = [call for call in model.calls() if call.path == "/models"]
            assert len(probes) == 1, "probed on a timer, not on every /health"
            for _ in range(5):
                _health(web)
            assert len([call for call in model.calls() if call.path == "/models"]) == 1


def test_an_unreachable_model_server_degrades_health_but_deliveries_are_still_taken(
    redis_url: str, web: TestClient
) -> None:
    from tests.support.redis_server import free_port

    env = {"LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "LLM_MODEL": "m"}
    with WorkerProcess(redis_url, *FAST, agent="llm", env=env):
        health = wait_until(lambda: "model" in (h := _health(web)) and h)
    assert health["model"]["status"] == "unreachable"
    assert health["status"] == "degraded"
    assert any("model server" in problem for problem in health["problems"])
