"""The worker's metrics port: runs, platform calls (429s too), replies and the model, as they happen."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import Ingress, recording
from tests.handlers.llm.fake_model import ModelFake
from tests.handlers.llm.model import answer
from tests.handlers.support import FAST, WorkerProcess, enqueue, job_status, slack_envelope, wait_until
from tests.support.prometheus import Samples, samples, value
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
JOB = "slack-Ev0001AM0001"


def _scrape(port: int, **headers: str) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    return samples(response.text)


def _reachable(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code in (200, 401, 404)
    except httpx.TransportError:
        return False


def test_runs_are_counted_by_status_with_their_duration(redis_url: str, redis_client: redis.Redis) -> None:
    ok = enqueue(redis_client, slack_envelope("EvOK", thread="1.0"))
    bad = enqueue(redis_client, slack_envelope("EvBAD", thread="2.0", test={"permanent": "no"}))
    slow = enqueue(redis_client, slack_envelope("EvSLOW", thread="3.0", test={"sleep": 30}))
    port = free_port()
    with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port)):
        wait_until(
            lambda: job_status(redis_client, ok) == "finished" and job_status(redis_client, bad) == "failed"
        )
        found = wait_until(lambda: value(s := _scrape(port), "gateway_worker_runs_in_flight") == 1 and s)
        assert job_status(redis_client, slow) == "started"
    assert value(found, "gateway_runs_total", platform="slack", status="succeeded") == 1
    assert value(found, "gateway_runs_total", platform="slack", status="failed") == 1
    assert value(found, "gateway_run_duration_seconds_count", platform="slack", status="succeeded") == 1
    assert value(found, "gateway_replies_total", platform="slack", result="logged") == 1  # no token


def test_platform_calls_count_429s_and_replies_count_what_landed(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    slack.fail_next("POST", "/chat.startStream", 429, headers={"Retry-After": "1"})
    assert gateway.post_recording(recording("slack", "app_mention")) == 200
    port = free_port()
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port), agent="triage", env=env):
        wait_until(lambda: job_status(redis_client, JOB) == "finished", timeout=40)
        found = _scrape(port)
    assert value(found, "gateway_platform_api_calls_total", platform="slack", result="rate_limited") == 1
    assert value(found, "gateway_platform_api_calls_total", platform="slack", result="ok") >= 2
    assert value(found, "gateway_replies_total", platform="slack", result="posted") == 1


def test_model_calls_and_tokens_are_counted(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    with ModelFake() as model:
        model.script(answer("The nightly build fails on a flaky test.", usage=(120, 9)))
        assert gateway.post_recording(recording("slack", "app_mention")) == 200
        port = free_port()
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "LLM_BASE_URL": model.base_url,
            "LLM_MODEL": "fake-model",
        }
        with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port), agent="llm", env=env):
            wait_until(lambda: job_status(redis_client, JOB) == "finished", timeout=40)
            found = _scrape(port)
    assert value(found, "gateway_model_calls_total", result="ok") == 1
    assert value(found, "gateway_model_tokens_total", kind="prompt") == 120
    assert value(found, "gateway_model_tokens_total", kind="completion") == 9


def test_the_port_is_guarded_like_the_web_apps_metrics(redis_url: str) -> None:
    port = free_port()
    env = {"GATEWAY_METRICS_TOKEN": "scrape-me"}
    with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port), env=env):
        wait_until(lambda: _reachable(port))
        refused = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert refused.status_code == 401
        assert "gateway_" not in refused.text
        assert _scrape(port, Authorization="Bearer scrape-me") is not None


def test_metrics_port_refused_when_metrics_are_off(redis_url: str) -> None:
    worker = WorkerProcess(redis_url, "--metrics-port", "9", env={"GATEWAY_METRICS": "off"})
    with worker:
        assert worker.wait() == 2
    assert "GATEWAY_METRICS is off" in worker.output()


def test_a_port_in_use_is_a_clear_error(redis_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        worker = WorkerProcess(redis_url, "--metrics-port", str(taken.getsockname()[1]))
        with worker:
            assert worker.wait() == 1
    assert "--metrics-port: cannot listen on 127.0.0.1" in worker.output()


def test_a_stray_scrape_path_is_404(redis_url: str) -> None:
    port = free_port()
    with WorkerProcess(redis_url, *FAST, "--metrics-port", str(port)):
        wait_until(lambda: _reachable(port))
        assert httpx.get(f"http://127.0.0.1:{port}/admin", timeout=5).status_code == 404
