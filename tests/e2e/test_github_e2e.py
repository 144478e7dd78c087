"""GitHub end to end: signed delivery → app → Redis → worker process → PyGithub → fake GitHub, once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.e2e.holding import HoldingGitHubFake
from tests.e2e.support import APP_ID, APP_KEY, APP_PEM, FILES, Ingress, ingress, kill_once_held, recording
from tests.handlers.support import FAST, WorkerProcess, job_status, wait_until

pytestmark = pytest.mark.timeout(120)

REPO = "Codertocat/Hello-World"
ISSUE_JOB = str(recording("github", "issues.opened").expect["job_id"])  # type: ignore[index]
PULL_JOB = str(recording("github", "pull_request.opened").expect["job_id"])  # type: ignore[index]
RETRY_FAST = ["--retry-base", "0.2", "--retry-cap", "1"]


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app


@pytest.fixture
def github_api() -> Iterator[HoldingGitHubFake]:
    with HoldingGitHubFake() as fake:
        fake.seed_issue(REPO, 1, title="Spelling error in the README file")
        yield fake


def _worker(redis_url: str, env: dict[str, str], *args: str) -> WorkerProcess:
    return WorkerProcess(redis_url, *FAST, *RETRY_FAST, *args, agent="triage", env=env)


def _token_env(fake: HoldingGitHubFake) -> dict[str, str]:
    return {"GITHUB_TOKEN": fake.token, "GITHUB_API_URL": fake.base_url}


def _deliver(gateway: Ingress, name: str, times: int = 1) -> None:
    rec = recording("github", name)
    assert [gateway.post_recording(rec) for _ in range(times)] == [200] * times


def test_an_issue_delivered_five_times_gets_one_comment(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    _deliver(gateway, "issues.opened", times=5)
    with _worker(redis_url, _token_env(github_api), "--burst") as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(redis_client, ISSUE_JOB) == "finished"
    (comment,) = github_api.comments(REPO, 1)
    assert "Suggested labels: `bug`, `documentation`" in comment["body"]


def test_worker_killed_after_commenting_before_the_marker(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    """The comment exists but its id was never stored: the rerun finds its hidden marker."""
    github_api.hold("POST", "/repos/*/issues/1/comments", seconds=10)
    _deliver(gateway, "issues.opened")
    kill_once_held(_worker(redis_url, _token_env(github_api)), github_api.held)
    with _worker(redis_url, _token_env(github_api)):
        wait_until(lambda: job_status(redis_client, ISSUE_JOB) == "finished", timeout=30)
    assert len(github_api.comments(REPO, 1)) == 1
    assert github_api.calls("GET", "/repos/*/issues/1/comments"), "the rerun searched for its marker"


def test_429_and_500_on_the_comment_are_survived(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    github_api.fail_next("POST", "/repos/*/issues/1/comments", 429, headers={"Retry-After": "1"})
    github_api.fail_next("POST", "/repos/*/issues/1/comments", 500)
    _deliver(gateway, "issues.opened")
    with _worker(redis_url, _token_env(github_api)):
        wait_until(lambda: job_status(redis_client, ISSUE_JOB) == "finished", timeout=40)
    assert len(github_api.comments(REPO, 1)) == 1
    assert [c.status for c in github_api.calls("POST", "/repos/*/issues/1/comments")] == [429, 500, 201]


def test_app_on_enterprise_pull_request_gets_one_comment_and_one_check_run(
    redis_url: str, redis_client: redis.Redis, gateway: Ingress
) -> None:
    with HoldingGitHubFake(app_id=APP_ID, app_public_key=APP_KEY.public_key(), prefix="/api/v3") as fake:
        fake.seed_pull(REPO, 2, title="Update the README", files=FILES)
        env = {
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_APP_PRIVATE_KEY": APP_PEM,
            "GITHUB_API_URL": fake.base_url,
        }
        _deliver(gateway, "pull_request.opened", times=5)
        with _worker(redis_url, env, "--burst") as worker:
            assert worker.wait(timeout=60) == 0
        assert job_status(redis_client, PULL_JOB) == "finished"
        (comment,) = fake.comments(REPO, 2)
        assert comment["user"] == "fake-app[bot]" and "4 files changed" in comment["body"]
        assert len(fake.check_runs(REPO)) == 1
