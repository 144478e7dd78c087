"""The ceiling for the ingress benchmark: one POST route that reads the body and answers 200.

Served by uvicorn with exactly the server options ``gateway serve`` uses, and with the same
garbage-collector settings, so the difference between the two is what the gateway does per
delivery (verify, claim, enqueue, log), not the HTTP stack or the process::

    .venv/bin/uvicorn bare_app:app --app-dir bench --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.cli import tune_garbage_collector


async def receive(request: Request) -> Response:
    """Read the whole body, as the gateway must before verifying it, and answer an empty 200."""
    await request.body()
    return Response(status_code=200)


app = Starlette(routes=[Route("/webhooks/slack", receive, methods=["POST"])])
tune_garbage_collector()
