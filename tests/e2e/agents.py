"""Agents for reply tests, chosen with ``GATEWAY_AGENT=tests.e2e.agents:<name>``."""

from __future__ import annotations

from opentelemetry import trace

from handlers.agent import Event, Reply, Run


async def verbose(event: Event, run: Run) -> Reply:
    """A reply far longer than any platform field it is written to."""
    return Reply(text="**Summary** " + "word " * 400)


async def traced(event: Event, run: Run) -> Reply:
    """Makes a span of its own with the OpenTelemetry API, as a custom agent may."""
    with trace.get_tracer("custom-agent").start_as_current_span("custom step"):
        return Reply(text="traced")


def traced_in_a_thread(event: Event, run: Run) -> Reply:
    """``traced`` as a synchronous agent, which the worker runs in a thread."""
    with trace.get_tracer("custom-agent").start_as_current_span("custom step"):
        return Reply(text="traced")
