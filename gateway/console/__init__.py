"""The console at ``/console``: deliveries and runs as they happen, one run live, Cancel and Retry.

Served by the web app itself with no build step and nothing from elsewhere: server-rendered pages
(``pages``), one small script and one stylesheet (``assets``). Sign-in takes a
``GATEWAY_API_TOKEN`` value once and sets the console's HttpOnly, SameSite=Strict cookie
(``gateway.auth``); the pages then read the runs API with it, and its POSTs (cancel, retry) are
checked against the Origin. Every page forbids framing and any script, style or connection
that is not the console's own (Content-Security-Policy).
"""

from __future__ import annotations

from gateway.console.routes import Console

__all__ = ["Console"]
