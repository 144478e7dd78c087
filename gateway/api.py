"""The runs API under ``/api``: list and read runs, follow one live, cancel, retry, start one.

On only when ``GATEWAY_API_TOKEN`` is set (``gateway.auth``); otherwise every route is 404.
Reads go to Redis in a thread (the sync client the CLI shares); following a run goes through
the process's ``StreamHub``. The web side never imports the worker side: cancelling sets the
run's cancellation flag and announces it (the worker running it stops it; a worker taking a
queued one ends it before it starts), retrying requeues the job from RQ's failed registry, and
a new run is claimed and queued like a delivery (platform ``api``, ``handlers.api.handle``).

| route | answers |
|---|---|
| ``GET /api/runs?status=&platform=&limit=&cursor=`` | 200 ``{"runs": [...], "next_cursor"}`` newest first |
| ``GET /api/runs/{run_id}`` | 200 the run record; 404 |
| ``GET /api/runs/{run_id}/events`` | 200 ``text/event-stream`` (``Last-Event-ID`` resumes); 404 |
| ``POST /api/runs/{run_id}/cancel`` | 202; 404; 409 when it already ended |
| ``POST /api/runs/{run_id}/retry`` | 202; 404; 409 unless it failed, timed out or was cancelled |
| ``POST /api/runs`` ``{"text", "session_id"}`` (``Idempotency-Key``) | 202 ``{"run_id"}`` |
| ``GET /api/deliveries?platform=&outcome=&limit=`` | 200 ``{"deliveries": [...]}`` newest first |
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway import keys, runs
from gateway.auth import ApiAuth
from gateway.deliveries import read_deliveries
from gateway.errors import BadRequest, Conflict, NotFound, QueueUnavailable
from gateway.queue import MAX_DELIVERY_ID_BYTES, Enqueuer, to_job_id
from gateway.stream import StreamHub, follow, sse
from gateway.types import Envelope

__all__ = ["API_JOB_PATH", "MAX_TEXT", "Api"]

API_JOB_PATH = "handlers.api.handle"
MAX_TEXT = 40_000
_RETRYABLE = frozenset({"failed", "timed_out", "cancelled"})
_REDIS_ERRORS = (TimeoutError, redis.RedisError, OSError)


@dataclass
class Api:
    """The API's endpoints, with what they share: the tokens, Redis and the hub."""

    auth: ApiAuth
    queue_name: str
    connection: redis.Redis
    enqueuer: Callable[[], Enqueuer]
    hub: Callable[[], StreamHub]

    def routes(self) -> list[Route]:
        """The ``/api`` routes (each refuses before anything else when the API is off or unauthorised)."""
        return [
            Route("/api/runs", self._guard(self.list_runs), methods=["GET"]),
            Route("/api/runs", self._guard(self.create_run, writes=True), methods=["POST"]),
            Route("/api/runs/{run_id}", self._guard(self.get_run), methods=["GET"]),
            Route("/api/runs/{run_id}/events", self._guard(self.events), methods=["GET"]),
            Route("/api/runs/{run_id}/cancel", self._guard(self.cancel, writes=True), methods=["POST"]),
            Route("/api/runs/{run_id}/retry", self._guard(self.retry, writes=True), methods=["POST"]),
            Route("/api/deliveries", self._guard(self.deliveries), methods=["GET"]),
        ]

    def _guard(
        self, endpoint: Callable[[Request], Awaitable[Response]], *, writes: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if not self.auth.enabled:
                raise NotFound("the runs API is off: set GATEWAY_API_TOKEN to turn it on")
            self.auth.check(request, writes=writes)
            return await endpoint(request)

        return guarded

    async def list_runs(self, request: Request) -> Response:
        """``GET /api/runs``: newest first, a page at a time."""
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in runs.STATUSES:
            raise BadRequest(f"status must be one of {', '.join(runs.STATUSES)}")
        page = await self._redis(
            runs.list_runs,
            self.connection,
            limit=_limit(params.get("limit"), default=50, most=200),
            cursor=params.get("cursor") or None,
            status=status,
            platform=params.get("platform") or None,
        )
        return JSONResponse({"runs": page.runs, "next_cursor": page.cursor})

    async def get_run(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}``: the run record."""
        return JSONResponse(runs.public_record(await self._record(request.path_params["run_id"])))

    async def events(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/events``: history after ``Last-Event-ID``, then live, to ``done``."""
        job_id = request.path_params["run_id"]
        after = request.headers.get("last-event-id") or None
        if after is not None and not _is_event_id(after):
            raise BadRequest("Last-Event-ID must be an event id such as 1764631234567-0")
        history = await self._redis(runs.read_events, self.connection, job_id, after=after)
        if not history and after is None:
            raise NotFound(f"no run {job_id}")

        async def fetch(run_id: str, since: str) -> list[runs.RunEvent]:
            found: list[runs.RunEvent] = await self._redis(
                runs.read_events, self.connection, run_id, after=since
            )
            return found

        stream = sse(follow(self.hub(), job_id, history=history, fetch=fetch))
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def cancel(self, request: Request) -> Response:
        """``POST /api/runs/{run_id}/cancel``: ask whichever worker holds the run to stop it."""
        job_id = request.path_params["run_id"]
        status = (await self._record(job_id)).get("status")
        if status in runs.TERMINAL:
            raise Conflict(f"run {job_id} already ended ({status})")
        await self._redis(_request_cancel, self.connection, job_id)
        return JSONResponse({"run_id": job_id, "status": "cancelling"}, status_code=202)

    async def retry(self, request: Request) -> Response:
        """``POST /api/runs/{run_id}/retry``: requeue a run that failed, timed out or was cancelled."""
        job_id = request.path_params["run_id"]
        status = (await self._record(job_id)).get("status")
        if status not in _RETRYABLE:
            raise Conflict(f"run {job_id} is {status}: only failed, timed out or cancelled runs are retried")
        await self._redis(_requeue, self.connection, self.queue_name, job_id)
        return JSONResponse({"run_id": job_id, "status": "queued"}, status_code=202)

    async def create_run(self, request: Request) -> Response:
        """``POST /api/runs``: an agent run not tied to a platform, queued once per ``Idempotency-Key``."""
        text, session_id = _run_request(await request.body())
        key = request.headers.get("idempotency-key") or uuid.uuid4().hex
        if len(key.encode()) > MAX_DELIVERY_ID_BYTES:
            raise BadRequest(f"Idempotency-Key is longer than {MAX_DELIVERY_ID_BYTES} bytes")
        job_id = to_job_id("api", key)
        envelope: Envelope = {
            "platform": "api",
            "delivery_id": key,
            "event": "message",
            "action": None,
            "received_at": datetime.now(UTC).isoformat(),
            "payload": {"text": text, "session_id": session_id},
            "meta": {"kind": "api"},
        }
        queued = await self.enqueuer().submit(job_id, API_JOB_PATH, envelope)
        return JSONResponse({"run_id": job_id, "duplicate": not queued}, status_code=202)

    async def deliveries(self, request: Request) -> Response:
        """``GET /api/deliveries``: the newest deliveries the ingress saw, refused ones too."""
        params = request.query_params
        found = await self._redis(
            read_deliveries,
            self.connection,
            limit=_limit(params.get("limit"), default=100, most=1000),
            platform=params.get("platform") or None,
            outcome=params.get("outcome") or None,
        )
        return JSONResponse({"deliveries": found})

    async def _record(self, job_id: str) -> dict[str, Any]:
        record: dict[str, Any] | None = await self._redis(runs.get_run, self.connection, job_id)
        if record is None:
            raise NotFound(f"no run {job_id}")
        return record

    async def _redis(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking Redis read or write in a thread; Redis trouble is a 503."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except _REDIS_ERRORS as exc:
            raise QueueUnavailable(type(exc).__name__) from None


def _request_cancel(connection: redis.Redis, job_id: str) -> None:
    with connection.pipeline() as pipe:
        pipe.set(keys.cancel(job_id), "api", ex=runs.RUN_TTL)
        pipe.publish(keys.CANCEL_CHANNEL, job_id)
        pipe.execute()


def _requeue(connection: redis.Redis, queue_name: str, job_id: str) -> None:
    failed = FailedJobRegistry(queue_name, connection=connection, serializer=JSONSerializer)
    try:
        failed.requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):
        raise Conflict(f"run {job_id} is not in the failed registry of {queue_name}") from None
    with connection.pipeline() as pipe:
        pipe.delete(keys.cancel(job_id))
        runs.write(pipe, job_id, status="queued", note="retried through the runs API", error=None)
        pipe.execute()


def _run_request(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object: {"text": ..., "session_id": ...}')
    text, session_id = data.get("text"), data.get("session_id", uuid.uuid4().hex)
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"text is longer than {MAX_TEXT} characters")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= 200:
        raise BadRequest("session_id must be a string of 1 to 200 characters")
    return text, session_id


def _limit(raw: str | None, *, default: int, most: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadRequest(f"limit must be a whole number from 1 to {most}")
    return int(raw)


def _is_event_id(value: str) -> bool:
    ms, dash, seq = value.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and len(value) <= 40
