"""The chat-completions client against respx playing an OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import respx

from handlers.errors import ContextExceeded, DeadlineReached, PermanentError, TransientError, UnusableAnswer
from handlers.llm.breaker import CircuitBreaker, CircuitOpen
from handlers.llm.client import ChatClient, ChatConfig
from handlers.llm.completion import Completion
from handlers.retry import RetryPolicy
from tests.handlers.llm.model import BASE_URL, URL, answer, calls, plain, sse, streamed

FAST = RetryPolicy(max_retries=3, base=0.01, cap=0.05)
MESSAGES = [{"role": "user", "content": "hi"}]


def _client(
    *, stream: bool = True, breaker: CircuitBreaker | None = None, policy: RetryPolicy = FAST
) -> ChatClient:
    config = ChatConfig(
        base_url=BASE_URL, model="test-model", api_key="sk-test-secret", timeout=5.0, stream=stream
    )
    return ChatClient(config, policy=policy, breaker=breaker or CircuitBreaker())


def _complete(client: ChatClient, *, seconds: float = 30.0) -> Completion:
    return asyncio.run(client.complete(MESSAGES, tools=[], deadline=time.time() + seconds))


@respx.mock
def test_streamed_answer_is_assembled_with_usage_and_the_request_asks_for_a_stream() -> None:
    route = respx.post(URL).mock(return_value=streamed(answer("The build is green again.", usage=(42, 7))))
    completion = _complete(_client())
    assert completion.content == "The build is green again."
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (42, 7)  # type: ignore[union-attr]
    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "test-model" and "tools" not in sent
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test-secret"


@respx.mock
def test_streamed_tool_call_deltas_are_joined_by_index() -> None:
    body = calls(("github_file", '{"path": "src/app.py", "ref": "main"}'), ("github_issue", '{"number": 7}'))
    respx.post(URL).mock(return_value=streamed(body))
    completion = _complete(_client())
    assert [(c.id, c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("call_0", "github_file", {"path": "src/app.py", "ref": "main"}),
        ("call_1", "github_issue", {"number": 7}),
    ]
    assert completion.finish_reason == "tool_calls" and completion.content is None


@respx.mock
def test_a_server_that_ignores_stream_and_answers_json_is_understood() -> None:
    respx.post(URL).mock(return_value=plain(answer("plain JSON")))
    assert _complete(_client()).content == "plain JSON"


@respx.mock
def test_stream_off_sends_no_stream_flag() -> None:
    route = respx.post(URL).mock(return_value=plain(answer("ok")))
    _complete(_client(stream=False))
    assert "stream" not in json.loads(route.calls.last.request.content)


@respx.mock
def test_whole_tool_calls_without_index_in_one_chunk_are_accepted() -> None:
    chunk = {
        "choices": [
            {
                "delta": {
                    "tool_calls": [
                        {"id": "a", "function": {"name": "slack_thread", "arguments": {"limit": 5}}},
                        {"id": "b", "function": {"name": "slack_thread", "arguments": "{}"}},
                    ]
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    content = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    respx.post(URL).mock(
        return_value=httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})
    )
    completion = _complete(_client())
    assert [(c.id, json.loads(c.arguments)) for c in completion.tool_calls] == [
        ("a", {"limit": 5}),
        ("b", {}),
    ]


@respx.mock
def test_429_with_retry_after_is_retried_and_then_succeeds() -> None:
    route = respx.post(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.2"}, json={"error": {"message": "slow down"}}),
            streamed(answer("second time lucky")),
        ]
    )
    started = time.monotonic()
    assert (
        _complete(_client(policy=RetryPolicy(max_retries=3, base=0.01, cap=5.0))).content
        == "second time lucky"
    )
    assert route.call_count == 2
    assert time.monotonic() - started >= 0.2  # the server's hint, longer than the policy's own backoff


@respx.mock
def test_read_timeouts_are_retried_then_raised_as_transient() -> None:
    route = respx.post(URL).mock(side_effect=httpx.ReadTimeout("no bytes"))
    with pytest.raises(TransientError, match="timed out"):
        _complete(_client())
    assert route.call_count == 1 + FAST.max_retries


@respx.mock
def test_a_slow_server_is_cut_off_at_the_run_deadline() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return plain(answer("too late"))

    respx.post(URL).mock(side_effect=slow)
    started = time.monotonic()
    with pytest.raises(DeadlineReached):
        _complete(_client(), seconds=0.3)
    assert time.monotonic() - started < 2


@respx.mock
def test_bad_credentials_are_permanent_and_not_retried() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(PermanentError, match="LLM_API_KEY"):
        _complete(_client())
    assert route.call_count == 1


@respx.mock
def test_an_error_object_inside_a_stream_is_transient() -> None:
    content = b'data: {"error": {"message": "engine overloaded"}}\n\n'
    respx.post(URL).mock(
        return_value=httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})
    )
    with pytest.raises(TransientError, match="engine overloaded"):
        _complete(_client())


@respx.mock
def test_an_answer_without_choices_is_unusable() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, json={"id": "x", "choices": []}))
    with pytest.raises(UnusableAnswer, match="no choices"):
        _complete(_client())


@respx.mock
def test_breaker_opens_after_repeated_failures_fails_fast_then_closes_after_cooldown() -> None:
    now = [1000.0]
    breaker = CircuitBreaker(threshold=4, cooldown=30.0, clock=lambda: now[0])
    route = respx.post(URL).mock(return_value=httpx.Response(503, json={"error": {"message": "down"}}))
    with pytest.raises(TransientError):
        _complete(_client(breaker=breaker))  # 1 try + 3 retries = 4 failures: opens
    assert breaker.state == "open" and route.call_count == 4
    with pytest.raises(CircuitOpen) as raised:
        _complete(_client(breaker=breaker))
    assert route.call_count == 4  # failed fast: no request went out
    assert raised.value.retry_after == pytest.approx(30.0)
    now[0] += 31
    assert breaker.state in ("half_open",)  # (a tuple: mypy narrowed the property above)
    route.mock(return_value=streamed(answer("back")))
    assert _complete(_client(breaker=breaker)).content == "back"
    assert breaker.state == "closed"


@respx.mock
def test_a_failed_probe_reopens_the_breaker() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown=10.0, clock=lambda: now[0])
    respx.post(URL).mock(return_value=httpx.Response(500))
    client = ChatClient(
        ChatConfig(base_url=BASE_URL, model="m"), policy=RetryPolicy(max_retries=0), breaker=breaker
    )
    with pytest.raises(TransientError):
        _complete(client)
    now[0] += 11
    with pytest.raises(TransientError):
        _complete(client)  # the half-open probe fails
    assert breaker.state == "open"


def test_sse_helper_round_trips() -> None:
    assert sse(answer("x")).endswith(b"data: [DONE]\n\n")


@respx.mock
def test_a_json_answer_with_a_text_content_type_is_still_understood() -> None:
    content = json.dumps(answer("mislabelled")).encode()
    respx.post(URL).mock(
        return_value=httpx.Response(200, content=content, headers={"content-type": "text/plain"})
    )
    assert _complete(_client()).content == "mislabelled"


@respx.mock
def test_tools_are_sent_with_tool_choice_auto_and_every_request_caps_the_answer() -> None:
    route = respx.post(URL).mock(return_value=streamed(answer("ok")))
    tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "object", "properties": {}}}}
    asyncio.run(_client().complete(MESSAGES, tools=[tool], deadline=time.time() + 30))
    sent = json.loads(route.calls.last.request.content)
    assert sent["tool_choice"] == "auto" and sent["max_tokens"] == 2048
    _complete(_client())
    assert "tool_choice" not in json.loads(route.calls.last.request.content)


@pytest.mark.parametrize(
    "stream",
    [b"", b": keep-alive\n\n", b'data: {"choices":[{"index":0,"delta":{"content":"half an"}}]}\n\n'],
    ids=["nothing", "comment-only", "cut-mid-answer"],
)
@respx.mock
def test_a_stream_that_ends_without_done_or_a_finish_is_an_error(stream: bytes) -> None:
    respx.post(URL).mock(
        return_value=httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})
    )
    with pytest.raises(TransientError, match="ended before the answer was complete"):
        _complete(_client(policy=RetryPolicy(max_retries=0)))


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"detail": "Model tiny not found"}, "Model tiny not found"),
        ({"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}, "field required"),
        ({"error": "plain string error"}, "plain string error"),
        ({"message": "bad request"}, "bad request"),
    ],
)
@respx.mock
def test_error_bodies_in_other_servers_shapes_are_shown(body: dict[str, object], shown: str) -> None:
    respx.post(URL).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(PermanentError, match=shown):
        _complete(_client())


@respx.mock
def test_a_plain_text_error_body_is_shown() -> None:
    respx.post(URL).mock(return_value=httpx.Response(422, text="Unprocessable: messages[0].role"))
    with pytest.raises(PermanentError, match="Unprocessable: messages"):
        _complete(_client())


@respx.mock
def test_a_connection_the_server_closed_is_sent_again_at_once_without_counting_as_a_failure() -> None:
    breaker = CircuitBreaker()
    route = respx.post(URL).mock(
        side_effect=[httpx.RemoteProtocolError("Server disconnected without sending a response."),
                     streamed(answer("ok"))]
    )  # fmt: skip
    no_retries = RetryPolicy(max_retries=0)  # not an ordinary retry: the request never got an answer
    assert _complete(_client(breaker=breaker, policy=no_retries)).content == "ok"
    assert route.call_count == 2
    assert breaker.state == "closed"


@respx.mock
def test_a_context_exceeded_answer_is_not_retried() -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 4096 tokens",
            "code": "context_length_exceeded",
        }
    }
    route = respx.post(URL).mock(return_value=httpx.Response(400, json=body))
    with pytest.raises(ContextExceeded):
        _complete(_client())
    assert route.call_count == 1
