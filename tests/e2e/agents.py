"""Agents for reply tests, chosen with ``GATEWAY_AGENT=tests.e2e.agents:<name>``."""

from __future__ import annotations

from handlers.agent import Event, Reply, Run


async def verbose(event: Event, run: Run) -> Reply:
    """A reply far longer than any platform field it is written to."""
    return Reply(text="**Summary** " + "word " * 400)
