"""The Slack rate budget in Redis: shared by every worker, a reserve for answers, 429 pauses for all."""

from __future__ import annotations

import asyncio
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from handlers.errors import TransientError
from handlers.slack.budget import TIERS, SlackBudget

TEAM = "T0001"


def _budget(redis_url: str, **options: str) -> SlackBudget:
    """A budget on its own connection, as another worker process would have."""
    return SlackBudget(redis.Redis.from_url(redis_url), **options)


def _takes(budget: SlackBudget, count: int, **options: object) -> list[bool]:
    async def go() -> list[bool]:
        return [await budget.take(TEAM, "chat.update", **options) for _ in range(count)]  # type: ignore[arg-type]

    return asyncio.run(go())


def test_progress_stops_while_a_reserve_is_left_that_answers_may_use(redis_url: str) -> None:
    tier = TIERS["chat.update"]
    first, second = _budget(redis_url), _budget(redis_url)
    progress = _takes(first, tier.burst, until=None, progress=True)
    assert progress == [True] * (tier.burst - tier.reserve) + [False] * tier.reserve
    assert _takes(second, tier.reserve, until=None) == [True] * tier.reserve
    assert _takes(second, 1, until=None) == [False], "the bucket is shared across workers"


def test_an_answer_waits_for_the_next_token(redis_url: str) -> None:
    budget = _budget(redis_url)
    _takes(budget, TIERS["chat.update"].burst, until=None)
    started = time.monotonic()
    assert _takes(budget, 1, until=time.time() + 5) == [True]
    assert 0.5 < time.monotonic() - started < 3.0  # one token every 1.5 s at 40 a minute


def test_a_429_pauses_the_method_of_that_workspace_for_every_worker(redis_url: str) -> None:
    one, other = _budget(redis_url), _budget(redis_url)
    asyncio.run(one.pacer(TEAM, "chat.update").after_failure(TransientError("429", retry_after=1.0)))
    assert _takes(other, 1, until=None) == [False]
    assert asyncio.run(other.take("T0OTHER", "chat.update", until=None)) is True, "other workspaces go on"
    started = time.monotonic()
    assert _takes(other, 1, until=time.time() + 5) == [True]
    assert time.monotonic() - started >= 0.8


def test_an_unlisted_app_reads_a_thread_once_a_minute(redis_url: str) -> None:
    unlisted, internal = _budget(redis_url, distribution="unlisted"), _budget(redis_url)

    async def reads(budget: SlackBudget, team: str) -> list[bool]:
        return [await budget.take(team, "conversations.replies", until=None) for _ in range(3)]

    assert asyncio.run(reads(unlisted, "T1")) == [True, False, False]
    assert asyncio.run(reads(internal, "T2")) == [True, True, True]


def test_without_redis_the_budget_lets_calls_through() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    budget = SlackBudget(unreachable)
    assert _takes(budget, 2, until=None, progress=True) == [True, True]


def test_a_new_assistant_threads_calls_stay_within_slacks_tier_4() -> None:
    """Tier 4 is 100+ a minute (docs.slack.dev's specs of both methods): no 60 s window goes over it."""
    for method in ("assistant.threads.setSuggestedPrompts", "assistant.threads.setTitle"):
        tier = TIERS[method]
        assert tier.burst + tier.per_minute <= 100 and tier.reserve == 0
