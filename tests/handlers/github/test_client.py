"""PyGithub against the fake GitHub API: error translation and the in-place retry policy."""

from __future__ import annotations

import asyncio

import pytest

from handlers.config import WorkerSettings
from handlers.errors import PermanentError, TransientError
from handlers.github.client import build_client, call
from handlers.retry import RetryPolicy
from tests.fakes import GitHubFake

FAST = RetryPolicy(max_retries=3, base=0.01, cap=0.05)


def _settings(**environ: str) -> WorkerSettings:
    return WorkerSettings.from_environ(environ)


def test_github_500s_then_success_is_retried_and_404_is_permanent() -> None:
    with GitHubFake() as gh:
        gh.seed_issue("octo/repo", 3, title="Crash on start")
        client = build_client(_settings(GITHUB_API_URL=gh.base_url).github, gh.tokens[0])
        gh.fail_next("GET", "/repos/octo/repo", 500, times=2)
        repo = asyncio.run(call(client.get_repo, "octo/repo", policy=FAST))
        assert repo.full_name == "octo/repo"
        with pytest.raises(PermanentError, match="404"):
            asyncio.run(call(repo.get_issue, 99, policy=FAST))


def test_github_gives_up_after_the_policy_cap_as_a_transient_error() -> None:
    with GitHubFake() as gh:
        client = build_client(_settings(GITHUB_API_URL=gh.base_url).github, gh.tokens[0])
        gh.fail_next("GET", "/repos/octo/repo", 502, times=10)
        with pytest.raises(TransientError, match="502"):
            asyncio.run(call(client.get_repo, "octo/repo", policy=FAST))
        assert len(gh.calls("GET", "/repos/octo/repo")) == FAST.max_retries + 1
