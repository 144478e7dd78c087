"""Reading a Slack thread with ``conversations.replies``: page by page through the cursor, within the limits.

Slack answers a thread oldest first, a page at a time, with ``response_metadata.next_cursor`` to
the next (https://docs.slack.dev/reference/methods/conversations.replies). Apps distributed outside
the Marketplace get at most 15 messages a page and one call a minute (``SLACK_APP_DISTRIBUTION=unlisted``);
other apps are Tier 3, and Slack recommends no more than 200 a page. Both readers page through under
the workspace's shared budget (``handlers.slack.budget``): the placeholder search looks at what was
posted since the delivery arrived (``oldest``), the thread tool keeps the newest messages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from handlers.agent import Event, Run
from handlers.services import Services
from handlers.slack.client import budget_for, call, web_client
from handlers.slack.payload import team_of

__all__ = ["MAX_PAGES", "PAGE_SIZE", "SEARCH_MARGIN", "ThreadReader", "slack_ts"]

PAGE_SIZE = {"internal": 200, "marketplace": 200, "unlisted": 15}
MAX_PAGES = 25  # 5,000 messages (375 for unlisted apps): a bound on a runaway thread
_METHOD = "conversations.replies"
SEARCH_MARGIN = 300.0
"""Seconds before a delivery arrived that a search for what its run posted also reads (clock skew)."""


def slack_ts(unix_time: float) -> str:
    """A Slack timestamp (``"1700000000.000100"``) for ``unix_time``."""
    return f"{unix_time:.6f}"


class ThreadReader:
    """The messages of one thread, oldest first; ``complete`` tells whether every page was read."""

    def __init__(
        self,
        services: Services,
        *,
        team: str,
        channel: str,
        ts: str,
        oldest: str | None = None,
        metadata: bool = False,
    ) -> None:
        self._services, self._team, self._channel, self._ts = services, team, channel, ts
        self._oldest, self._metadata = oldest, metadata
        self.complete = False
        self.pages = 0

    @classmethod
    def since_delivery(cls, event: Event, run: Run, *, channel: str, thread_ts: str) -> ThreadReader:
        """The thread's messages posted since ``event`` arrived, with their metadata: where a
        rerun looks for what an earlier attempt of the run posted."""
        since = datetime.fromisoformat(event.received_at).timestamp() - SEARCH_MARGIN
        return cls(
            run.services,
            team=team_of(event.payload, event.meta),
            channel=channel,
            ts=thread_ts,
            oldest=slack_ts(since),
            metadata=True,
        )

    async def messages(
        self, *, deadline: float, patience: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Each message once (a later page may repeat the parent), fetching pages as needed.

        ``patience`` bounds each wait for the budget in seconds; when it or ``deadline`` runs out
        (or ``MAX_PAGES`` were read), iteration stops with ``complete`` still false.
        """
        budget, seen, cursor = budget_for(self._services), set(), None
        size = PAGE_SIZE.get(self._services.settings.slack.distribution, 15)
        while self.pages < MAX_PAGES:
            until = deadline if patience is None else min(deadline, time.time() + patience)
            if not await budget.take(self._team, _METHOD, until=until):
                return
            response = await self._page(cursor, size, budget.pacer(self._team, _METHOD, taken=True), deadline)
            self.pages += 1
            for message in response.get("messages") or []:
                if isinstance(message, dict) and message.get("ts") not in seen:
                    seen.add(message.get("ts"))
                    yield message
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                self.complete = True
                return

    async def _page(self, cursor: str | None, size: int, pacer: Any, deadline: float) -> Any:
        options = {
            "cursor": cursor,
            "oldest": self._oldest,
            "inclusive": True if self._oldest else None,
            "include_all_metadata": True if self._metadata else None,
        }
        return await call(
            web_client(self._services).conversations_replies,
            channel=self._channel,
            ts=self._ts,
            limit=size,
            deadline=deadline,
            pacer=pacer,
            **{name: value for name, value in options.items() if value is not None},
        )
