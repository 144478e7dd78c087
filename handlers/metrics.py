"""Prometheus metrics of a worker process, and the port that serves them (``--metrics-port``).

Counted where each thing happens: runs as they end (by platform and status, with their
duration), runs in flight, every platform API call by its result (``rate_limited`` is a 429 or
Slack's ``ratelimited``), replies delivered, model calls and tokens, follow-ups, recoveries.
Label values come from fixed sets, never from payloads. The port answers under the same rule
as the web app's ``/metrics`` (``GATEWAY_METRICS``, ``gateway.auth.MetricsAccess``); queue and
worker figures shared by every process are the web app's to report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import ThreadingWSGIServer

from gateway.auth import MetricsAccess
from gateway.errors import NotAuthorized
from gateway.metrics import platform_label, scrape

__all__ = [
    "REGISTRY",
    "MetricsServer",
    "count_api_call",
    "count_feedback",
    "count_followup",
    "count_model_call",
    "count_model_tokens",
    "count_recovered",
    "count_reply",
    "count_run",
    "runs_in_flight",
]

# Agent runs take 10-60 s; the deadline is 600 s by default.
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600)
RUN_STATUSES = ("succeeded", "failed", "timed_out", "cancelled", "retrying", "requeued", "lost")
CALL_RESULTS = ("ok", "rate_limited", "transient", "refused")
REPLY_RESULTS = ("posted", "logged", "failed")
MODEL_RESULTS = ("ok", "error")
FEEDBACK_RATINGS = ("good", "bad")
FEEDBACK_RESULTS = ("recorded", "unknown_run")

REGISTRY = CollectorRegistry(auto_describe=True)
_RUNS = Counter(
    "gateway_runs",
    "Runs that ended in this worker, by platform and status.",
    ["platform", "status"],
    registry=REGISTRY,
)
_RUN_SECONDS = Histogram(
    "gateway_run_duration_seconds",
    "Seconds from a run's start to its end, by platform and status.",
    ["platform", "status"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
_IN_FLIGHT = Gauge("gateway_worker_runs_in_flight", "Runs this worker runs now.", registry=REGISTRY)
_API_CALLS = Counter(
    "gateway_platform_api_calls",
    "Calls to Slack, GitHub and Stripe by platform and result (rate_limited: 429).",
    ["platform", "result"],
    registry=REGISTRY,
)
_REPLIES = Counter(
    "gateway_replies", "Replies delivered, by platform and result.", ["platform", "result"], registry=REGISTRY
)
_FEEDBACK = Counter(
    "gateway_feedback",
    "Feedback clicks on answers, by platform, rating and whether a run record took them.",
    ["platform", "rating", "result"],
    registry=REGISTRY,
)
_MODEL_CALLS = Counter("gateway_model_calls", "Model server calls, by result.", ["result"], registry=REGISTRY)
_MODEL_TOKENS = Counter(
    "gateway_model_tokens",
    "Tokens the model read (prompt) and wrote (completion).",
    ["kind"],
    registry=REGISTRY,
)
_FOLLOWUPS = Counter(
    "gateway_followups",
    "Follow-up messages that reached a running run, by platform.",
    ["platform"],
    registry=REGISTRY,
)
_RECOVERED = Counter(
    "gateway_recovered_deliveries",
    "Deliveries a recovery sweep found missed and queued, by platform.",
    ["platform"],
    registry=REGISTRY,
)


def _one_of(value: str, allowed: tuple[str, ...], fallback: str) -> str:
    return value if value in allowed else fallback


def count_run(platform: str | None, status: str, seconds: float) -> None:
    """Count a run that ended with ``status`` after ``seconds``."""
    labels = (platform_label(platform or ""), _one_of(status, RUN_STATUSES, "lost"))
    _RUNS.labels(*labels).inc()
    _RUN_SECONDS.labels(*labels).observe(max(0.0, seconds))


def runs_in_flight(count: Callable[[], int]) -> None:
    """Report ``count()`` (the runner's running jobs) as the in-flight gauge, read at scrape time."""
    _IN_FLIGHT.set_function(count)


def count_api_call(platform: str, result: str) -> None:
    """Count one platform API call attempt (retries are attempts too)."""
    _API_CALLS.labels(platform_label(platform), _one_of(result, CALL_RESULTS, "refused")).inc()


def count_reply(platform: str, result: str) -> None:
    """Count one reply (a run's final answer): ``posted``, ``logged`` (no credentials), ``failed``."""
    _REPLIES.labels(platform_label(platform), _one_of(result, REPLY_RESULTS, "failed")).inc()


def count_feedback(platform: str, rating: str, result: str) -> None:
    """Count one feedback click: ``good`` or ``bad``, ``recorded`` or for an ``unknown_run``."""
    _FEEDBACK.labels(
        platform_label(platform),
        _one_of(rating, FEEDBACK_RATINGS, "bad"),
        _one_of(result, FEEDBACK_RESULTS, "unknown_run"),
    ).inc()


def count_model_call(result: str) -> None:
    """Count one model call attempt."""
    _MODEL_CALLS.labels(_one_of(result, MODEL_RESULTS, "error")).inc()


def count_model_tokens(prompt: int, completion: int) -> None:
    """Add the tokens of one model call."""
    _MODEL_TOKENS.labels("prompt").inc(max(0, prompt))
    _MODEL_TOKENS.labels("completion").inc(max(0, completion))


def count_followup(platform: str) -> None:
    """Count one follow-up handed to a running run."""
    _FOLLOWUPS.labels(platform_label(platform)).inc()


def count_recovered(platform: str, deliveries: int) -> None:
    """Add the deliveries one recovery sweep queued."""
    _RECOVERED.labels(platform_label(platform)).inc(max(0, deliveries))


class _Quiet(WSGIRequestHandler):
    """No access log on stderr: the worker's log is JSON lines."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return


class MetricsServer:
    """``GET /metrics`` on ``host:port`` in a daemon thread, under ``access``."""

    def __init__(self, host: str, port: int, access: MetricsAccess) -> None:
        self.access = access
        self._server = make_server(host, port, self._app, ThreadingWSGIServer, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> MetricsServer:
        """Serve until ``close``."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            return _answer(start_response, "404 Not Found", b"not found\n")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"}
        refusal = self.access.refusal(environ.get("REMOTE_ADDR"), headers)
        if refusal is not None:
            status = "401 Unauthorized" if isinstance(refusal, NotAuthorized) else "404 Not Found"
            return _answer(start_response, status, f"{refusal}\n".encode())
        return _answer(start_response, "200 OK", *scrape(REGISTRY, environ.get("HTTP_ACCEPT", "")))


def _answer(
    start_response: Callable[..., Any], status: str, body: bytes, content_type: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
