"""Alerts: something an operator must act on, raised by either side, posted once by a worker.

``raise_alert`` (or ``raise_alert_async`` on the web side) adds ``{cause, text, next}`` to the
``keys.ALERTS`` stream unless an alert of the same cause was raised in the last
``ALERT_WINDOW`` seconds: the gate (``SET NX EX``) and the append are one Lua script, so two
processes noticing the same trouble raise it once. Each alert names what to run next. A worker
with ``GATEWAY_ALERT_SLACK_CHANNEL`` set posts them (``handlers.alerts``); either way each is
logged where it is raised.

``WebAlerts`` is the web side's part: many refused signatures (``SignatureWatch``: a secret
rotated on the platform but not here, or the other way round) and Redis having been unavailable,
raised in the background once Redis answers again, so no delivery's answer waits for an alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from gateway import keys
from gateway.types import Clock

__all__ = [
    "ALERTS_KEPT",
    "ALERT_WINDOW",
    "Alert",
    "SignatureWatch",
    "WebAlerts",
    "raise_alert",
    "raise_alert_async",
]

logger = logging.getLogger("gateway.alerts")

ALERT_WINDOW = 600
ALERTS_KEPT = 1000

_RAISE = """
-- KEYS: gate, alerts stream    ARGV: window s, kept, cause, text, next
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                  'cause', ARGV[3], 'text', ARGV[4], 'next', ARGV[5])
"""


@dataclass(frozen=True)
class Alert:
    """One alert: its ``cause`` (what it is gated by), what happened, and what to run next."""

    cause: str
    text: str
    next: str

    def _args(self) -> list[str | int]:
        return [ALERT_WINDOW, ALERTS_KEPT, self.cause, self.text, self.next]


def raise_alert(connection: redis.Redis, alert: Alert) -> bool:
    """Raise ``alert`` unless its cause was raised in the last ``ALERT_WINDOW`` s; True if raised."""
    raised = connection.eval(_RAISE, 2, keys.alert_gate(alert.cause), keys.ALERTS, *alert._args())
    return _logged(alert, raised)


async def raise_alert_async(connection: aioredis.Redis, alert: Alert) -> bool:
    """``raise_alert`` on an asyncio client."""
    raised = await connection.eval(_RAISE, 2, keys.alert_gate(alert.cause), keys.ALERTS, *alert._args())
    return _logged(alert, raised)


def _logged(alert: Alert, raised: object) -> bool:
    if raised:
        logger.warning(alert.text, extra={"fields": {"alert": alert.cause, "next": alert.next}})
    return bool(raised)


@dataclass
class SignatureWatch:
    """Counts refused signatures per platform; ``refused`` says when there were too many."""

    threshold: int = 20
    window: float = 300.0
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def refused(self, platform: str, now: float) -> Alert | None:
        """Note one refusal at ``now``; the alert to raise when ``threshold`` fell in ``window``."""
        times = self._seen.setdefault(platform, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.threshold:
            return None
        times.clear()
        return Alert(
            cause=f"signatures:{platform}",
            text=(
                f"{platform}: {self.threshold} deliveries refused for a bad signature in "
                f"{self.window / 60:g} minutes; a signing secret was probably rotated on one side only"
            ),
            next=(
                "compare the platform's signing secret with ours (`gateway check`); during a rotation "
                "set both, comma-separated, newest first"
            ),
        )


class WebAlerts:
    """The web app's alerts, raised on its asyncio Redis client in background tasks."""

    def __init__(self, connection: aioredis.Redis, *, clock: Clock, signatures: SignatureWatch | None = None):
        self._connection = connection
        self._clock = clock
        self._signatures = signatures or SignatureWatch()
        self._down_since: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def signature_refused(self, platform: str) -> None:
        """A delivery of ``platform`` was refused for its signature."""
        alert = self._signatures.refused(platform, self._clock())
        if alert is not None:
            self._raise(alert)

    def redis_failed(self) -> None:
        """Redis could not take a delivery (it was answered 503)."""
        if self._down_since is None:
            self._down_since = self._clock()

    def redis_answered(self) -> None:
        """Redis took a delivery: if it had failed before, say for how long."""
        if self._down_since is None:
            return
        seconds, self._down_since = self._clock() - self._down_since, None
        self._raise(
            Alert(
                cause="redis_unavailable",
                text=(
                    f"Redis was unavailable to the web app for about {seconds:.0f} s: deliveries were "
                    "answered 503 meanwhile, and the platforms retry them"
                ),
                next=(
                    "check Redis (memory, persistence, `redis-cli ping`); GitHub and Stripe deliveries "
                    "whose retries ran out meanwhile: `gateway recover github|stripe`"
                ),
            )
        )

    async def aclose(self) -> None:
        """Wait for alerts being raised."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _raise(self, alert: Alert) -> None:
        task = asyncio.get_running_loop().create_task(self._send(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, alert: Alert) -> None:
        try:
            await raise_alert_async(self._connection, alert)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            logger.warning(
                "%s (not raised as an alert: %s)",
                alert.text,
                type(exc).__name__,
                extra={"fields": {"alert": alert.cause}},
            )
