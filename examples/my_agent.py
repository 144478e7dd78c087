"""A custom agent in a few lines: ``GATEWAY_AGENT=examples.my_agent:agent gateway worker``.

It shows the whole protocol: read the ``Event``, report progress (stored in the run record and
shown in Slack's placeholder), use the session's history (earlier turns of this thread, issue or
customer), respect the deadline, and return a ``Reply``.
"""

from __future__ import annotations

from handlers.agent import Event, Reply, Run


async def agent(event: Event, run: Run) -> Reply:
    """Echo the event, counting how often this conversation has come back."""
    run.progress("Reading the conversation")
    asked_before = [turn.text for turn in run.history if turn.role == "user"]
    if run.remaining < 1:  # the runtime cancels us at the deadline; answer early instead
        return Reply(text="Out of time.")
    what = event.text or event.title or event.name
    seen = f" You have asked {len(asked_before)} time(s) before in this conversation." if asked_before else ""
    return Reply(text=f"{event.platform}: got “{what}” from {event.actor or 'someone'}.{seen}")
