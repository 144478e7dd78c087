"""The shapes a recovery sweep deals in: what a source lists, what a platform offers, what a sweep found."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from handlers.services import Services

__all__ = ["Found", "Missed", "Page", "Report", "Source", "SourceReport", "Sweep"]


@dataclass(frozen=True)
class Missed:
    """A delivery the platform did not get to us, as its source lists it.

    ``at`` is when it was delivered or created (Unix time); ``ref`` is what the source needs to
    bring it back (GitHub's delivery attempt id, the Stripe event itself).
    """

    delivery_id: str
    event: str
    at: float
    ref: Any = None


@dataclass(frozen=True)
class Page:
    """One page of a source's list, newest first: the missed deliveries on it, when its oldest
    entry happened (``None`` for an empty page) and the cursor of the next page."""

    missed: list[Missed]
    oldest: float | None
    next: str | None


class Source(Protocol):
    """One list of deliveries a platform keeps (a GitHub App's hook, a repository's, Stripe's v1 events).

    ``name`` keys its checkpoint and names it in logs; ``retention`` is how far back the platform
    keeps the list, in seconds.
    """

    name: str
    retention: float

    async def page(self, cursor: str | None, floor: float) -> Page:
        """The page at ``cursor`` (``None``: the newest); entries before ``floor`` are not needed."""

    async def bring_back(self, missed: Missed) -> bool:
        """Redeliver or queue ``missed``; False when it turned out to be claimed meanwhile.

        Raises ``HandlerError``: ``TransientError`` stops the source (the next sweep resumes
        here), ``PermanentError`` is counted and the sweep goes on.
        """


class Sweep(Protocol):
    """What a platform offers the recovery sweep (``WorkerPlatform.recover``)."""

    platform: str

    def unavailable(self, services: Services) -> str | None:
        """Why this platform cannot be swept with these settings (naming what to set), or ``None``."""

    def open(self, services: Services) -> AbstractAsyncContextManager[list[Source]]:
        """The sources to sweep, with what they hold open (HTTP clients, an enqueuer) for one sweep."""


@dataclass
class SourceReport:
    """How one source's walk went."""

    name: str
    found: int = 0
    requeued: int = 0
    errors: list[str] = field(default_factory=list)
    complete: bool = False


@dataclass
class Report:
    """How one sweep of a platform went; ``skipped`` says why it did not run at all."""

    platform: str
    dry_run: bool = False
    sources: list[SourceReport] = field(default_factory=list)
    skipped: str | None = None

    @property
    def found(self) -> int:
        """Missed deliveries the gateway had not claimed, over every source."""
        return sum(source.found for source in self.sources)

    @property
    def requeued(self) -> int:
        """Of those, how many were redelivered or queued."""
        return sum(source.requeued for source in self.sources)

    @property
    def errors(self) -> list[str]:
        """What failed, over every source."""
        return [error for source in self.sources for error in source.errors]

    @property
    def complete(self) -> bool:
        """True when every source was walked down to where it had to go."""
        return self.skipped is None and all(source.complete for source in self.sources)


Found = Callable[[Missed, str, str], None]
"""Told of each missed delivery: (it, its source's name, what was done: queued, redelivered...)."""
