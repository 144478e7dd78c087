"""GitHub replies: comments, review-thread replies and check runs, once — real PyGithub against the fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.types import Envelope
from handlers.errors import PermanentError
from handlers.github import handle
from tests.e2e.holding import HoldingGitHubFake
from tests.e2e.support import APP_ID, APP_KEY, APP_PEM, FILES, Ingress, ingress, recording, with_json

REPO = "Codertocat/Hello-World"


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app


@pytest.fixture
def github_api(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[HoldingGitHubFake]:
    """A token set-up (GITHUB_TOKEN) against github.com-style URLs."""
    with HoldingGitHubFake() as fake:
        fake.seed_pull(REPO, 2, title="Update the README", files=FILES, head_sha="ec26c3e")
        fake.seed_issue(REPO, 1, title="Spelling error in the README file", labels=["documentation"])
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("GITHUB_TOKEN", fake.token)
        monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
        monkeypatch.setenv("GATEWAY_AGENT", "triage")
        yield fake


@pytest.fixture
def github_app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[HoldingGitHubFake]:
    """A GitHub App on GitHub Enterprise (``/api/v3``)."""
    public = APP_KEY.public_key()
    with HoldingGitHubFake(app_id=APP_ID, app_public_key=public, prefix="/api/v3") as fake:
        fake.seed_pull(REPO, 2, title="Update the README", files=FILES, head_sha="ec26c3e")
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("GITHUB_APP_ID", str(APP_ID))
        monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", APP_PEM)
        monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
        monkeypatch.setenv("GATEWAY_AGENT", "triage")
        yield fake


def _queued(gateway: Ingress, name: str, body: bytes | None = None) -> Envelope:
    rec = recording("github", name)
    assert gateway.post_recording(rec, body=body) == 200
    return gateway.envelope(rec.expect["job_id"])  # type: ignore[index]


def test_opened_issue_gets_one_comment_with_suggested_labels(
    github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    envelope = _queued(gateway, "issues.opened")
    asyncio.run(handle(envelope))
    asyncio.run(handle(envelope))  # a rerun posts nothing
    (comment,) = github_api.comments(REPO, 1)
    assert "Suggested labels: `bug`" in comment["body"]  # "error" → bug; documentation is already set
    assert "`documentation`" not in comment["body"]
    assert comment["body"].endswith(f"<!-- gateway:delivery=github-{envelope['delivery_id']} -->")


def test_opened_pull_request_gets_a_summary_but_no_check_run_with_a_token(
    github_api: HoldingGitHubFake, gateway: Ingress, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    asyncio.run(handle(_queued(gateway, "pull_request.opened")))
    (comment,) = github_api.comments(REPO, 2)
    assert "4 files changed, +55 −15" in comment["body"]
    assert "Areas: `README.md`, `docs/`, `src/`" in comment["body"]
    assert "`src/app/main.py` (modified, +40 −12)" in comment["body"]
    assert github_api.check_runs() == []
    assert "check runs need a GitHub App" in caplog.text


def test_app_on_enterprise_comments_as_the_bot_and_adds_a_check_run(
    github_app: HoldingGitHubFake, gateway: Ingress
) -> None:
    asyncio.run(handle(_queued(gateway, "pull_request.opened")))
    (comment,) = github_app.comments(REPO, 2)
    assert comment["user"] == "fake-app[bot]"
    (check,) = github_app.check_runs(REPO)
    assert check["head_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert check["conclusion"] == "neutral" and "4 files changed" in check["output"]["summary"]
    assert all(call.path.startswith("/repos") or call.path.startswith("/app") for call in github_app.calls())
    assert github_app.calls()[0].target.startswith("/api/v3/")


def test_synchronize_updates_the_check_run_only(github_app: HoldingGitHubFake, gateway: Ingress) -> None:
    asyncio.run(handle(_queued(gateway, "pull_request.synchronize")))
    assert github_app.comments(REPO, 2) == []
    assert len(github_app.check_runs(REPO)) == 1


def test_comment_on_a_pull_request_conversation_is_answered_with_its_summary(
    github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    github_api.seed_pull(REPO, 1, title="Fix the spelling", files=FILES[:1])
    asyncio.run(handle(_queued(gateway, "issue_comment.created.pull-request")))
    (comment,) = github_api.comments(REPO, 1)
    assert "Pull request #1: Fix the spelling" in comment["body"]
    assert "1 file changed, +3 −1" in comment["body"]


def test_diff_comment_is_answered_in_its_review_thread(
    github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    asyncio.run(handle(_queued(gateway, "pull_request_review_comment.created")))
    (reply,) = github_api.review_replies
    assert reply["in_reply_to_id"] == 284312630 and "<!-- gateway:delivery=" in reply["body"]
    assert github_api.comments(REPO, 2) == []


@pytest.mark.parametrize(
    "change",
    [
        {"sender": {"login": "fake-app[bot]", "type": "Bot"}},
        {"sender": {"login": "renovate[bot]", "type": "User"}},
        {"comment": {"body": "Summary\n\n<!-- gateway:delivery=github-x -->"}},
    ],
    ids=["bot", "bot-login", "our-marker"],
)
def test_comments_from_bots_or_carrying_our_marker_get_no_reply(
    change: dict[str, Any], github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    rec = recording("github", "issue_comment.created")
    result = asyncio.run(handle(_queued(gateway, "issue_comment.created", with_json(rec.body, **change))))
    assert result == {"status": "ignored"}
    assert github_api.calls() == []


def test_events_without_a_reply_post_nothing(github_api: HoldingGitHubFake, gateway: Ingress) -> None:
    result = asyncio.run(handle(_queued(gateway, "push")))
    assert result["status"] == "succeeded"
    assert [c.method for c in github_api.calls()] == []


def test_a_long_non_ascii_answer_fits_the_check_run_and_the_comment_in_bytes(
    github_app: HoldingGitHubFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_AGENT", "tests.agents:scripted")
    rec = recording("github", "pull_request.opened")
    body = with_json(rec.body, test={"reply": "Résumé: " + "é" * 70_000})
    asyncio.run(handle(_queued(gateway, "pull_request.opened", body)))
    (check,) = github_app.check_runs(REPO)
    summary = check["output"]["summary"]
    assert len(summary.encode()) <= 65_535 and summary.endswith("(cut to fit GitHub's size limit)")
    (comment,) = github_app.comments(REPO, 2)
    assert len(comment["body"].encode()) <= 65_536 and comment["body"].endswith("-->")


def test_an_installation_token_github_refuses_is_replaced_once(
    github_app: HoldingGitHubFake, gateway: Ingress
) -> None:
    github_app.seed_pull(REPO, 1, title="Fix the spelling", files=FILES[:1])
    asyncio.run(handle(_queued(gateway, "pull_request.opened")))
    github_app.expire_tokens()  # revoked early, or the worker's clock drifted: GitHub says 401
    asyncio.run(handle(_queued(gateway, "issue_comment.created.pull-request")))
    assert len(github_app.issued_tokens) == 2
    assert [c.status for c in github_app.calls("GET", "/repos/*/pulls/1/files")] == [401, 200]
    assert len(github_app.comments(REPO, 1)) == 1


def test_a_refused_token_is_refreshed_only_once(github_app: HoldingGitHubFake, gateway: Ingress) -> None:
    github_app.fail_next("POST", "/repos/*/issues/*/comments", 401, times=2)
    with pytest.raises(PermanentError, match="401"):
        asyncio.run(handle(_queued(gateway, "pull_request.opened")))
    assert len(github_app.issued_tokens) == 2
