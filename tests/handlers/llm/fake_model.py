"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for worker subprocesses.

respx only patches the test process; a worker runs in its own process, so end-to-end tests need a
real HTTP server. It answers ``POST /v1/chat/completions`` with the scripted bodies in order (each
streamed as server-sent events when the request asks for a stream) and records every request.
``GET /v1/models`` lists the one model, as OpenAI, vLLM and llama-server do (the health probe).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request, Route, route
from tests.handlers.llm.model import sse


class ModelFake(FakeServer):
    """``base_url`` is what ``LLM_BASE_URL`` should be; ``script(*bodies)`` sets the next answers."""

    def __init__(self) -> None:
        self._script: list[dict[str, Any]] = []
        super().__init__(prefix="/v1")

    def script(self, *bodies: dict[str, Any]) -> None:
        """Answer the next requests with ``bodies``, in order (then 503)."""
        with self._cond:
            self._script.extend(bodies)

    def routes(self) -> Iterable[Route]:
        """Chat completions and the model list."""
        return [route("POST", "/chat/completions", self._complete), route("GET", "/models", self._models)]

    def _models(self, request: Request) -> Reply:
        return Reply(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def reset_state(self) -> None:
        """Forget the script."""
        self._script.clear()

    def _complete(self, request: Request) -> Reply:
        if not self._script:
            return Reply(503, {"error": {"message": "no scripted answer left"}})
        body = self._script.pop(0)
        if isinstance(request.body, dict) and request.body.get("stream"):
            return Reply(200, sse(body), {"Content-Type": "text/event-stream"})
        return Reply(200, body)
