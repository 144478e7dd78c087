"""``run.stream`` and the ``StreamRelay``: coalesced, in order, one call at a time, throttled, flushed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from handlers.agent import Run
from handlers.config import WorkerSettings
from handlers.errors import TransientError
from handlers.logs import bind
from handlers.progress import StreamRelay
from handlers.services import Services

LOG = bind(logging.getLogger("tests.stream"), job_id="j")


class Platform:
    """An ``on_stream`` that records each call's delta and when it started and ended."""

    def __init__(self, *, seconds: float = 0.0, fail: set[int] | None = None) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self.seconds, self.fail = seconds, fail or set()
        self.active = 0
        self.most_at_once = 0

    async def send(self, delta: str) -> None:
        started = time.monotonic()
        self.active += 1
        self.most_at_once = max(self.most_at_once, self.active)
        try:
            await asyncio.sleep(self.seconds)
            if len(self.calls) in self.fail:
                self.calls.append((delta, started, time.monotonic()))
                raise TransientError("slack said ratelimited", retry_after=0.3)
            self.calls.append((delta, started, time.monotonic()))
        finally:
            self.active -= 1

    @property
    def deltas(self) -> list[str]:
        return [delta for delta, _, _ in self.calls]


def make_run(on_stream: object = None) -> Run:
    return Run(
        job_id="j",
        delivery_id="d",
        attempt=1,
        history=(),
        deadline=time.time() + 60,
        log=LOG,
        on_progress=lambda text: None,
        services=Services(WorkerSettings.from_environ({})),
        on_stream=on_stream,  # type: ignore[arg-type]
    )


def test_run_stream_keeps_the_whole_text_and_ignores_empty_and_cancelled_text() -> None:
    seen: list[str] = []
    run = make_run(seen.append)
    run.stream("Hel")
    run.stream("")
    run.stream("lo")
    assert run.streamed == "Hello" and seen == ["Hel", "lo"]
    run.cancel()
    run.stream(" world")
    assert run.streamed == "Hello" and seen == ["Hel", "lo"]


def test_run_without_a_relay_still_keeps_what_was_streamed() -> None:
    run = make_run()
    run.stream("text")
    assert run.streamed == "text"


def test_pieces_pushed_within_an_interval_are_coalesced_into_one_call_in_order() -> None:
    async def scenario() -> Platform:
        platform = Platform()
        relay = StreamRelay(platform.send, interval=0.3, log=LOG)
        for piece in ["The ", "deploy ", "is ", "stuck"]:
            relay.push(piece)
        await asyncio.sleep(0.05)
        relay.push(" at 40%")
        relay.push(".")
        await relay.close()
        return platform

    platform = asyncio.run(scenario())
    assert platform.deltas == ["The deploy is stuck", " at 40%."]
    assert platform.calls[1][1] - platform.calls[0][1] >= 0.3 - 0.01, "at most one call per interval"


def test_a_slow_platform_never_gets_two_calls_at_once_and_push_never_waits() -> None:
    async def scenario() -> tuple[Platform, float]:
        platform = Platform(seconds=0.2)
        relay = StreamRelay(platform.send, interval=0.0, log=LOG)
        slowest = 0.0
        for index in range(30):
            started = time.monotonic()
            relay.push(f"{index},")
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.02)
        await relay.close()
        return platform, slowest

    platform, slowest = asyncio.run(scenario())
    assert platform.most_at_once == 1
    assert "".join(platform.deltas) == "".join(f"{index}," for index in range(30))
    assert all(delta for delta in platform.deltas), "never an empty call"
    assert len(platform.deltas) < 30, "pieces that gathered while a call was on the wire went together"
    for (_, _, ended), (_, started, _) in zip(platform.calls, platform.calls[1:], strict=False):
        assert started >= ended
    assert slowest < 0.01


def test_close_flushes_what_is_pending_after_the_interval_and_awaits_the_call() -> None:
    async def scenario() -> tuple[Platform, float, float]:
        platform = Platform(seconds=0.1)
        relay = StreamRelay(platform.send, interval=0.4, log=LOG)
        relay.push("first")
        await asyncio.sleep(0.05)
        relay.push(" second")
        started = time.monotonic()
        await relay.close()
        closed = time.monotonic()
        relay.push(" late")  # refused: the answer of record is about to be shown
        await asyncio.sleep(0.05)
        return platform, started, closed

    platform, started, closed = asyncio.run(scenario())
    assert platform.deltas == ["first", " second"]
    assert platform.calls[-1][2] <= closed, "the last call ended before close returned"
    assert platform.calls[1][1] - platform.calls[0][1] >= 0.4 - 0.01
    assert closed - started < 1.0


def test_close_with_nothing_streamed_returns_at_once_without_a_call() -> None:
    async def scenario() -> tuple[Platform, float]:
        platform = Platform()
        relay = StreamRelay(platform.send, interval=5.0, log=LOG)
        started = time.monotonic()
        await relay.close()
        return platform, time.monotonic() - started

    platform, took = asyncio.run(scenario())
    assert platform.calls == [] and took < 0.05


def test_a_failed_call_is_logged_and_later_text_still_goes_after_its_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Platform, StreamRelay]:
        platform = Platform(fail={0})
        relay = StreamRelay(platform.send, interval=0.0, log=LOG)
        relay.push("lost")
        await asyncio.sleep(0.05)
        relay.push("kept")
        await relay.close()
        return platform, relay

    with caplog.at_level(logging.WARNING):
        platform, relay = asyncio.run(scenario())
    assert platform.deltas == ["lost", "kept"]
    assert platform.calls[1][1] - platform.calls[0][2] >= 0.3 - 0.01, "Retry-After was honoured"
    assert relay.sent_chars == len("kept")
    assert any(record.getMessage() == "streamed text not forwarded" for record in caplog.records)


def test_a_synchronous_agent_streams_from_its_thread_in_order() -> None:
    async def scenario() -> tuple[Platform, Run]:
        platform = Platform(seconds=0.01)
        relay = StreamRelay(platform.send, interval=0.02, log=LOG)
        run = make_run(relay.push)

        def agent() -> None:
            for index in range(200):
                run.stream(f"<{index}>")
                if index % 20 == 0:
                    time.sleep(0.01)

        workers = [threading.Thread(target=agent)]
        for worker in workers:
            worker.start()
        await asyncio.to_thread(workers[0].join)
        await relay.close()  # the agent returned: everything it streamed is in the relay
        return platform, run

    platform, run = asyncio.run(scenario())
    expected = "".join(f"<{index}>" for index in range(200))
    assert run.streamed == expected and "".join(platform.deltas) == expected
    assert platform.most_at_once == 1 and 1 < len(platform.deltas) < 200


def test_two_threads_streaming_at_once_reach_the_platform_in_the_order_streamed_records() -> None:
    async def scenario() -> tuple[Platform, Run]:
        platform = Platform()
        relay = StreamRelay(platform.send, interval=0.0, log=LOG)
        run = make_run(relay.push)

        def agent(tag: str) -> None:
            for index in range(300):
                run.stream(f"{tag}{index};")

        threads = [threading.Thread(target=agent, args=(tag,)) for tag in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await relay.close()
        return platform, run

    platform, run = asyncio.run(scenario())
    assert "".join(platform.deltas) == run.streamed and len(run.streamed) > 2000
