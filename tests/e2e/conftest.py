"""What the end-to-end tests share: a page of a real browser (Debian's chromium, headless, driven
by Playwright); the fake Slack holding the recorded mention's thread (``slack``); the real
ingress (``gateway``). A test module may define its own ``slack`` or ``gateway`` instead."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright import sync_api as playwright

from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import Ingress, ingress

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/test installs it (apt-get install chromium)"
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def slack() -> Iterator[HoldingSlackFake]:
    """The fake Slack, holding the message of the recorded mention (``fixtures/slack/app_mention``)
    so that ``conversations.replies`` finds its thread."""
    with HoldingSlackFake() as fake:
        text = "<@U0002> why is the nightly build failing?"
        fake.seed_message(MENTION_CHANNEL, text, ts=MENTION_THREAD, user="U0001")
        yield fake


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    """The real ingress on the test session's Redis, every platform on."""
    with ingress(redis_url) as app:
        yield app
