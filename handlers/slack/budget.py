"""Slack's rate limits as one budget per workspace and method, shared by every worker through Redis.

Slack counts calls "per API method per workspace per app" (https://docs.slack.dev/apis/web-api/rate-limits):
``chat.update`` is Tier 3 (50+ a minute), ``conversations.replies`` Tier 3 or, for apps distributed
outside the Marketplace, 1 a minute; ``chat.postMessage`` about one a second per channel;
``chat.startStream``/``chat.stopStream`` Tier 2, ``chat.appendStream`` Tier 4 and
``assistant.threads.setStatus`` (its spec: ``t5``, "Special", no number) budgeted like
``chat.update``. Several
runs in one workspace, in several worker processes, share those numbers, so the budget is a token
bucket in Redis (``_TAKE``, atomic, on Redis's clock), keyed by team and method
(``keys.slack_budget``). Each bucket holds a burst and refills so that no 60 s window sees more
calls than the tier allows.

- An answer (``take(..., until=deadline)``) waits for a token; progress (``until=None``) only
  takes one while a reserve is left for answers, and is dropped otherwise.
- A 429 pauses the workspace's method for every worker for its ``Retry-After`` (``pause``);
  ``pacer`` ties both to ``handlers.clients.call``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis

from handlers.errors import HandlerError, TransientError
from handlers.state import keys

__all__ = ["TIERS", "Pacer", "SlackBudget", "Tier"]


@dataclass(frozen=True)
class Tier:
    """A bucket of ``burst`` calls refilled at ``per_minute``; ``reserve`` tokens are kept for answers."""

    per_minute: float
    burst: int
    reserve: int = 0


# burst + per_minute stays within Slack's per-minute figure, so no 60 s window goes over it.
TIERS: dict[str, Tier] = {
    "chat.update": Tier(per_minute=40, burst=10, reserve=5),
    "chat.postMessage": Tier(per_minute=55, burst=5),  # per channel
    "conversations.replies": Tier(per_minute=40, burst=10),
    # Tier 4 (100+ a minute; docs.slack.dev's method specs): a new assistant thread's prompts and title.
    "assistant.threads.setSuggestedPrompts": Tier(per_minute=90, burst=10),
    "assistant.threads.setTitle": Tier(per_minute=90, burst=10),
    # Streams: start and stop are Tier 2 (20+ a minute), appends Tier 4 (100+); the status is
    # "t5" ("Special", no number) in Slack's method spec, budgeted like chat.update. A start
    # never waits: with no token left the answer takes the placeholder path; stops wait like
    # answers. Appends and status updates are progress: dropped when only the reserve is left.
    "chat.startStream": Tier(per_minute=16, burst=4),
    "chat.stopStream": Tier(per_minute=16, burst=4),
    "chat.appendStream": Tier(per_minute=80, burst=20, reserve=10),
    "assistant.threads.setStatus": Tier(per_minute=40, burst=10, reserve=5),
}
UNLISTED: dict[str, Tier] = {"conversations.replies": Tier(per_minute=1 / 1.05, burst=1)}
_WAIT_STEP = 5.0  # seconds between looks at the bucket while waiting (a pause may end sooner)

# KEYS: bucket hash, pause key. ARGV: refill per ms, burst, tokens to keep, bucket TTL ms.
# Returns 0 when a token was taken, else the milliseconds until one may be.
_TAKE = """
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local rate, burst, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = tokens >= 1 + keep
if taken then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if taken then return 0 end
return math.max(1, math.ceil((1 + keep - tokens) / rate))
"""


class SlackBudget:
    """The shared budget; every method does its Redis I/O in a thread."""

    def __init__(self, connection: redis.Redis, *, distribution: str = "internal") -> None:
        self._connection = connection
        self._take = connection.register_script(_TAKE)
        self._tiers = {**TIERS, **(UNLISTED if distribution == "unlisted" else {})}

    async def take(
        self, team: str, method: str, *, until: float | None, scope: str = "", progress: bool = False
    ) -> bool:
        """Take one call of ``method`` for ``team`` (``scope``: the channel, for chat.postMessage).

        ``until`` (Unix time) is how long to wait for it; ``None`` waits not at all. ``progress``
        calls leave the tier's reserve for answers. False when no token came in time.
        """
        tier = self._tiers.get(method)
        if tier is None:
            return True
        while True:
            wait = await asyncio.to_thread(self._try, tier, team, method, scope, progress)
            if wait <= 0:
                return True
            if until is None or time.time() + wait > until:
                return False
            await asyncio.sleep(min(wait, _WAIT_STEP))

    async def pause(self, team: str, method: str, seconds: float, *, scope: str = "") -> None:
        """Stop every worker calling ``method`` for ``team`` for ``seconds`` (a 429's ``Retry-After``)."""
        ms = max(1, int(seconds * 1000))
        try:
            await asyncio.to_thread(self._connection.set, keys.slack_pause(team, method, scope), 1, px=ms)
        except redis.RedisError:
            return  # the budget is advice: without Redis each call still honours its own 429

    def pacer(self, team: str, method: str, *, scope: str = "", taken: bool = False) -> Pacer:
        """What ``handlers.clients.call`` consults around each attempt (``taken``: the first
        attempt's token is already taken, as progress takes it before calling)."""
        return Pacer(self, team, method, scope, first_taken=taken)

    def _try(self, tier: Tier, team: str, method: str, scope: str, progress: bool) -> float:
        keep = tier.reserve if progress else 0
        rate = tier.per_minute / 60_000
        ttl = int((tier.burst / rate) + 60_000)
        bucket, pause = keys.slack_budget(team, method, scope), keys.slack_pause(team, method, scope)
        try:
            return float(self._take(keys=[bucket, pause], args=[rate, tier.burst, keep, ttl])) / 1000
        except redis.RedisError:
            return 0.0  # Redis unreachable: go ahead rather than drop an answer; Slack's 429 still counts


class Pacer:
    """Waits for the budget before each attempt of one call, and turns a 429 into a shared pause."""

    def __init__(self, budget: SlackBudget, team: str, method: str, scope: str, *, first_taken: bool) -> None:
        self._budget, self._team, self._method, self._scope = budget, team, method, scope
        self._taken = first_taken

    async def before_attempt(self, deadline: float | None) -> None:
        """Wait for a token (until ``deadline``); past it, go ahead: an answer is never dropped here."""
        if self._taken:
            self._taken = False
            return
        await self._budget.take(self._team, self._method, until=deadline, scope=self._scope)

    async def after_failure(self, error: HandlerError) -> None:
        """A ``Retry-After`` (a 429, or a 503 that names one) pauses the method for the whole workspace."""
        if isinstance(error, TransientError) and error.retry_after is not None:
            await self._budget.pause(self._team, self._method, error.retry_after, scope=self._scope)
