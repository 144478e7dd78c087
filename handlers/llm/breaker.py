"""A circuit breaker shared by every run of a worker process.

When the model server fails again and again (timeouts, 429, 5xx, refused connections), a worker
with 100 concurrent runs would otherwise keep 100 requests waiting on it. After ``threshold``
consecutive failures the breaker opens: calls fail at once with a ``TransientError`` (the runtime
retries the job later) until ``cooldown`` seconds have passed. Then one probe call is let
through (half-open); its success closes the breaker, its failure opens it again.

The worker runs all its agents on one event loop, so the state needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from handlers.errors import TransientError

__all__ = ["breaker_for", "CircuitBreaker", "CircuitOpen", "reset_breakers", "State"]

State = Literal["closed", "open", "half_open"]


class CircuitOpen(TransientError):
    """The breaker is open: the model server failed repeatedly; try the job again later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("LLM circuit breaker is open after repeated model failures", retry_after=retry_after)


class CircuitBreaker:
    """Consecutive-failure breaker with a cool-down and a single half-open probe."""

    def __init__(
        self, *, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        """``closed`` (calls pass), ``open`` (calls fail fast) or ``half_open`` (one probe may pass)."""
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` unless a call may go out now (marks the half-open probe as taken)."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._probing = True
            return
        raise CircuitOpen(retry_after=self._time_left())

    def record_success(self) -> None:
        """The server answered: close the breaker and forget earlier failures."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """The server failed (transiently); open after ``threshold`` in a row or a failed probe."""
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """The call ended without telling anything (cancelled, refused as a bad request): free the probe."""
        self._probing = False

    def _time_left(self) -> float:
        if self._opened_at is None:
            return 0.0
        # While a probe is out, others wait at least a little before trying again.
        return max(1.0, self.cooldown - (self._clock() - self._opened_at))


_BREAKERS: dict[str, CircuitBreaker] = {}


def breaker_for(base_url: str) -> CircuitBreaker:
    """The process-wide breaker of the model server at ``base_url``."""
    return _BREAKERS.setdefault(base_url, CircuitBreaker())


def reset_breakers() -> None:
    """Forget every breaker (tests, and a worker that wants a clean start)."""
    _BREAKERS.clear()
