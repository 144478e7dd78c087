"""The console in a real browser (Debian's chromium, headless, driven by Playwright) against a real
``gateway serve``, a real worker process and a real Redis: sign in, watch a run finish, press Cancel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright import sync_api as playwright

from tests.e2e.support import API, API_TOKEN, SECRETS, recording, with_json
from tests.handlers.support import FAST, WorkerProcess, wait_until
from tests.support.redis_server import free_port
from tests.support.signing import sign

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(redis_url: str) -> Iterator[str]:
    port = free_port()
    env = dict(
        os.environ, REDIS_URL=redis_url, SLACK_SIGNING_SECRET=SECRETS["slack"], GATEWAY_API_TOKEN=API_TOKEN
    )
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _mention(url: str, event_id: str, script: dict[str, Any]) -> str:
    rec = recording("slack", "app_mention")
    body = with_json(rec.body, event_id=event_id, test=script)
    headers = {**rec.headers, **sign("slack", SECRETS["slack"], body, int(time.time()))}
    assert httpx.post(f"{url}/webhooks/slack", content=body, headers=headers, timeout=10).status_code == 200
    return f"slack-{event_id}"


def _sign_in(page: Any, url: str) -> None:
    page.goto(f"{url}/console")
    page.fill("#token", API_TOKEN)
    page.click("#sign-in")
    page.wait_for_selector("table#runs")


def test_a_wrong_token_does_not_sign_in(served: str, page: Any) -> None:
    page.goto(f"{served}/console")
    page.fill("#token", "not-the-token")
    page.click("#sign-in")
    assert "not one of GATEWAY_API_TOKEN" in page.inner_text("main")
    assert not [c for c in page.context.cookies() if c["name"] == "gateway_console"]


def test_sign_in_then_watch_a_run_finish_on_its_page(served: str, redis_url: str, page: Any) -> None:
    _sign_in(page, served)
    cookie = next(c for c in page.context.cookies() if c["name"] == "gateway_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != API_TOKEN
    job_id = _mention(served, "Ev0CONSOLE01", {"progress": ["reading the thread", "thinking"], "sleep": 1.5})
    page.wait_for_selector(f"text={job_id}", timeout=10_000)  # the list refreshes by itself
    with WorkerProcess(redis_url, *FAST, agent="tests.agents:scripted"):
        page.click(f"text={job_id}")
        page.wait_for_selector("#progress li", timeout=15_000)
        playwright.expect(page.locator('[data-field="status"]')).to_have_text("succeeded", timeout=20_000)
    assert page.inner_text("#progress") == "reading the thread\nthinking"
    assert page.inner_text("#reply").startswith("done Ev0CONSOLE01")
    assert "not posted" in page.inner_text("#reply-note")  # no Slack token: kept, shown here


def test_cancel_from_the_run_page_stops_the_run(served: str, redis_url: str, page: Any) -> None:
    _sign_in(page, served)
    job_id = _mention(served, "Ev0CONSOLE02", {"sleep": 60})
    with WorkerProcess(redis_url, *FAST, agent="tests.agents:scripted"):
        wait_until(
            lambda: redis.Redis.from_url(redis_url).hget(f"gateway:run:{job_id}", "status") == b"running"
        )
        page.goto(f"{served}/console/runs/{job_id}")
        page.wait_for_selector("#cancel:not([hidden])")
        page.click("#cancel")
        playwright.expect(page.locator('[data-field="status"]')).to_have_text("cancelled", timeout=10_000)
    assert httpx.get(f"{served}/api/runs/{job_id}", headers=API).json()["status"] == "cancelled"
    assert page.is_hidden("#cancel")


def test_a_cross_site_post_with_the_cookie_is_refused(served: str, page: Any) -> None:
    _sign_in(page, served)
    job_id = _mention(served, "Ev0CONSOLE03", {"sleep": 60})
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(
        f"{served}/api/runs/{job_id}/cancel", cookies=cookies, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    missing_origin = httpx.post(f"{served}/api/runs/{job_id}/cancel", cookies=cookies)
    assert missing_origin.status_code == 403
    assert httpx.get(f"{served}/api/runs/{job_id}", headers=API).json()["status"] == "queued"
