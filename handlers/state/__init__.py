"""Everything the worker side keeps in Redis besides RQ's own keys, one module per kind of state.

- ``keys``: every Redis key name (and the ingress's claim key, read from ``gateway.queue``);
- ``runs``: run records, one hash per delivery, read by ``gateway runs`` and the runs API;
- ``sessions``: conversation history per session (Slack thread, GitHub issue, Stripe customer);
- ``replies``: the exactly-once reply markers (what was posted for a delivery);
- ``outage``: waiting out a Redis outage instead of failing what depends on Redis;
- ``inbox``: the follow-ups handed to a running run, and what became of each.
"""

from __future__ import annotations

from handlers.state import inbox, keys, outage, replies, runs, sessions

__all__ = ["inbox", "keys", "outage", "replies", "runs", "sessions"]
