"""An async client for any OpenAI-compatible ``POST {LLM_BASE_URL}/chat/completions``.

One ``httpx.AsyncClient`` per worker process (its connection pool is shared by every run), created
lazily inside the running loop. Each call streams the answer (server-sent events) unless
``LLM_STREAM=off``, and also accepts a plain JSON answer from servers that ignore ``stream``; the
pieces of a streamed answer's text go to the caller's ``on_content`` as they arrive. Connect
and read timeouts are separate: a model that keeps streaming slowly is fine, one that stalls is not.

Every request caps the answer (``max_tokens``, ``LLM_MAX_ANSWER_TOKENS``) and, when it offers
tools, says ``"tool_choice": "auto"`` (llama-cpp-python's function-calling format drops the tools
without it).

Failures: timeouts, connection errors, 429 and 5xx are retried in place with backoff under
``handlers.retry.RetryPolicy`` (``Retry-After`` honoured) while the run's deadline allows; every such
failure is reported to the process-wide circuit breaker. A pooled connection the server had closed
(llama.cpp's server closes one after every stream) is retried at once, and is no failure. Answers
that another attempt cannot change are not retried: a conversation past the model's context
(``ContextExceeded``) or one the server could not parse, even when it says 500
(``ConversationRefused``). What is left is raised as ``TransientError`` (the runtime retries the job
later) or ``PermanentError`` (bad key, unknown model). Error bodies are read in any server's shape
(``{"error": ...}``, FastAPI's ``{"detail": ...}``, plain text).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from handlers import metrics
from handlers.config import LLMSettings
from handlers.errors import (
    ContextExceeded,
    ConversationRefused,
    DeadlineReached,
    PermanentError,
    TransientError,
    UnusableAnswer,
)
from handlers.llm import spans
from handlers.llm.breaker import CircuitBreaker, breaker_for
from handlers.llm.completion import MAX_STREAM_CHUNKS, Completion, ContentSink, StreamAssembler, from_json
from handlers.retry import RetryPolicy, retry_after_header

__all__ = ["CONNECT_TIMEOUT", "MODEL_POLICY", "ChatClient", "ChatConfig", "shared_http"]

logger = logging.getLogger("handlers.llm")

# In-place retries of one model call; the job as a whole is retried by the runtime after these.
MODEL_POLICY = RetryPolicy(max_retries=3, base=1.0, cap=30.0)
CONNECT_TIMEOUT = 10.0
_ERROR_BODY_LIMIT = 4096
# How servers say the prompt is too long: OpenAI (context_length_exceeded), vLLM ("maximum context
# length"), llama.cpp (exceed_context_size_error), LiteLLM (ContextWindowExceededError), Anthropic.
_CONTEXT = re.compile(
    r"context[ _](length|size|window)|exceeds? the available context|maximum context length"
    r"|prompt is too long",
    re.IGNORECASE,
)
# A 5xx that says the server could not parse what it was sent: the same request fails the same way.
_UNPARSABLE = re.compile(r"failed to parse|parse[ _]error|json\.exception", re.IGNORECASE)


class _StaleConnection(TransientError):
    """The server closed a pooled connection before answering: the request may be sent again."""


_SHARED: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None


@dataclass(frozen=True)
class ChatConfig:
    """Where the model is and how to talk to it (from ``LLMSettings``)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    stream: bool = True
    max_tokens: int = 2048

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> ChatConfig:
        """The ``LLM_*`` settings' model server; ``PermanentError`` when it is not configured."""
        if not llm.base_url or not llm.model:
            raise PermanentError("LLM_BASE_URL and LLM_MODEL must be set for GATEWAY_AGENT=llm")
        return cls(
            base_url=llm.base_url,
            model=llm.model,
            api_key=llm.api_key,
            timeout=llm.timeout,
            stream=llm.stream,
            max_tokens=llm.max_answer_tokens,
        )

    @property
    def url(self) -> str:
        """The chat-completions URL; a base URL that already names it is used as is."""
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"


def shared_http() -> httpx.AsyncClient:
    """The process's ``AsyncClient`` for model calls, made in (and bound to) the running loop."""
    global _SHARED
    loop = asyncio.get_running_loop()
    if _SHARED is None or _SHARED[0] is not loop or _SHARED[1].is_closed:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        _SHARED = (loop, httpx.AsyncClient(limits=limits))
    return _SHARED[1]


class ChatClient:
    """Calls the model: ``await client.complete(messages, tools=..., deadline=...)``."""

    def __init__(
        self,
        config: ChatConfig,
        *,
        breaker: CircuitBreaker | None = None,
        policy: RetryPolicy = MODEL_POLICY,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.breaker = breaker or breaker_for(config.base_url)
        self._policy = policy
        self._http = http

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] = (),
        deadline: float,
        on_content: ContentSink | None = None,
    ) -> Completion:
        """One answer for ``messages``; ``deadline`` (Unix time) bounds the call and its retries.

        ``on_content(piece, offset)`` gets the answer's ``content`` as a streamed answer brings it
        (nothing when the server answers whole, as with ``LLM_STREAM=off``); an attempt that is
        retried starts again at offset 0. Raises ``DeadlineReached``, ``UnusableAnswer``,
        ``TransientError`` (including ``CircuitOpen``) or ``PermanentError``. With tracing on, the
        call and its retries are one ``chat`` span.
        """
        with spans.chat(self.config) as span:
            completion = await self._complete(messages, tools, deadline, on_content)
            span.set(spans.answered(completion))
            return completion

    async def _complete(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        deadline: float,
        on_content: ContentSink | None,
    ) -> Completion:
        retries, resent = 0, False
        while True:
            self.breaker.before_call()
            try:
                completion = await self._counted_attempt(messages, tools, deadline, on_content)
            except _StaleConnection:
                self.breaker.release()
                if resent:
                    raise
                resent = True
                continue
            except TransientError as error:
                self.breaker.record_failure()
                delay = self._retry_delay(error, retries, deadline)
                if delay is None:
                    raise
                retries += 1
                logger.info("model call failed; retrying", extra={"fields": {"error": str(error)}})
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.breaker.release()  # cancelled, bad request or unusable: says nothing about health
                raise
            self.breaker.record_success()
            return completion

    def _retry_delay(self, error: TransientError, retries: int, deadline: float) -> float | None:
        decision = self._policy.decide(error, retries_so_far=retries)
        if not decision.retry or time.time() + decision.delay >= deadline:
            return None
        return decision.delay

    async def _counted_attempt(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        deadline: float,
        on_content: ContentSink | None,
    ) -> Completion:
        try:
            completion = await self._attempt(messages, tools, deadline, on_content)
        except Exception:
            metrics.count_model_call("error")
            raise
        metrics.count_model_call("ok")
        return completion

    async def _attempt(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        deadline: float,
        on_content: ContentSink | None,
    ) -> Completion:
        left = deadline - time.time()
        if left <= 0:
            raise DeadlineReached()
        try:
            async with asyncio.timeout(left):
                return await self._post(messages, tools, on_content)
        except TimeoutError:
            raise DeadlineReached() from None
        except httpx.RemoteProtocolError as exc:
            raise _StaleConnection(f"the model server closed the connection ({type(exc).__name__})") from None
        except httpx.TimeoutException as exc:
            raise TransientError(f"model server timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach the model server ({type(exc).__name__})") from None

    async def _post(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        on_content: ContentSink | None,
    ) -> Completion:
        http = self._http or shared_http()
        request = http.build_request(
            "POST",
            self.config.url,
            json=self._body(messages, tools),
            headers=self._headers(),
            timeout=httpx.Timeout(self.config.timeout, connect=min(CONNECT_TIMEOUT, self.config.timeout)),
        )
        response = await http.send(request, stream=True)
        try:
            await _raise_for_status(response)
            return await _read_answer(response, on_content)
        finally:
            await response.aclose()

    def _body(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "max_tokens": self.config.max_tokens,
        }
        if tools:
            body["tools"] = list(tools)
            body["tool_choice"] = "auto"
        if self.config.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # else streamed answers carry no usage
        return body

    def _headers(self) -> dict[str, str]:
        accept = "text/event-stream" if self.config.stream else "application/json"
        headers = {"Accept": accept}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers


async def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = await _error_detail(response)
    if 400 <= status < 500 and _CONTEXT.search(detail):
        raise ContextExceeded(f"the model server says the conversation is too long (HTTP {status}): {detail}")
    if status >= 500 and _UNPARSABLE.search(detail):
        raise ConversationRefused(
            f"the model server could not parse the conversation (HTTP {status}): {detail}"
        )
    if status in (408, 409, 429) or status >= 500:
        raise TransientError(
            f"model server HTTP {status}: {detail}", retry_after=retry_after_header(response.headers)
        )
    if status in (401, 403):
        raise PermanentError(f"the model server refused the credentials (HTTP {status}): check LLM_API_KEY")
    if status == 404:
        raise PermanentError(f"the model server answered 404 ({detail}): check LLM_BASE_URL and LLM_MODEL")
    raise PermanentError(f"the model server refused the request (HTTP {status}): {detail}")


async def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, short (it never echoes our key; it may quote the request)."""
    raw = b""
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) >= _ERROR_BODY_LIMIT:
            break
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200] or "no details"
    return (_message_of(body) or "no details")[:200]


def _message_of(body: Any) -> str:
    """The message in ``{"error": {"message", "type", "code"}}``, ``{"error": "..."}``, FastAPI's
    ``{"detail": "..."}`` or ``{"detail": [{"msg": ...}]}``, or ``{"message": ...}``."""
    if not isinstance(body, dict):
        return str(body) if body else ""
    error, detail = body.get("error"), body.get("detail")
    if isinstance(error, dict):
        kind = " ".join(str(error[name]) for name in ("type", "code") if error.get(name))
        return f"{error.get('message') or ''} ({kind})" if kind else str(error.get("message") or "")
    if error:
        return str(error)
    if isinstance(detail, list):
        return "; ".join(
            str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail
        )
    return str(detail or body.get("message") or "")


async def _read_answer(response: httpx.Response, on_content: ContentSink | None) -> Completion:
    if "json" in response.headers.get("content-type", ""):
        return _parse_json(await response.aread())
    assembler = StreamAssembler(on_content)
    other: list[str] = []  # lines that are not SSE: a JSON answer with the wrong content type
    async for line in response.aiter_lines():
        assembler.feed_line(line)
        if not assembler.seen_data and len(other) < MAX_STREAM_CHUNKS:
            other.append(line)
        if assembler.done or assembler.chunks >= MAX_STREAM_CHUNKS:
            break
    if not assembler.seen_data and "".join(other).strip().startswith("{"):
        return _parse_json("\n".join(other).encode())
    if not assembler.done and assembler.finish_reason is None:
        # The connection closed mid-answer (a crashed server, a proxy's timeout): not an answer.
        raise TransientError("the model's stream ended before the answer was complete")
    return assembler.result()


def _parse_json(raw: bytes) -> Completion:
    # The server ignored "stream" (or was asked for none): a plain chat-completions body.
    try:
        return from_json(json.loads(raw))
    except ValueError:
        raise UnusableAnswer("the answer is not valid JSON") from None
