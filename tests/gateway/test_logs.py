"""JSON log lines: the per-tick batching of ``log_fields`` and its fallback to ordinary records."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from gateway import logs

FIELDS = {"platform": "slack", "delivery_id": "Ev1", "status": 200}


class _Stream(io.StringIO):
    """A stream that remembers each ``write`` call separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def stream() -> _Stream:
    return _Stream()


@pytest.fixture
def logger(stream: _Stream) -> logging.Logger:
    # A logger outside logging's tree, out of reach of pytest's capture handlers.
    logger = logging.Logger("tests.logs", logging.INFO)
    logger.addHandler(logs.JSONLinesHandler(stream))
    return logger


def _lines(stream: _Stream) -> list[dict[str, object]]:
    return [json.loads(line) for line in "".join(stream.writes).splitlines()]


def test_lines_of_one_loop_tick_are_written_together_when_it_ends(
    logger: logging.Logger, stream: _Stream
) -> None:
    async def scenario() -> list[str]:
        for number in range(3):
            logs.log_fields(logger, logging.INFO, "delivery queued", {**FIELDS, "n": number})
        written_during_the_tick = list(stream.writes)
        await asyncio.sleep(0)
        return written_during_the_tick

    assert asyncio.run(scenario()) == []
    assert len(stream.writes) == 1
    assert [line["n"] for line in _lines(stream)] == [0, 1, 2]
    first = _lines(stream)[0]
    assert {k: first[k] for k in ("level", "logger", "message", "platform", "status")} == {
        "level": "info",
        "logger": "tests.logs",
        "message": "delivery queued",
        "platform": "slack",
        "status": 200,
    }


def test_an_ordinary_record_writes_the_waiting_lines_before_itself(
    logger: logging.Logger, stream: _Stream
) -> None:
    async def scenario() -> None:
        logs.log_fields(logger, logging.INFO, "delivery queued", FIELDS)
        logger.warning("shutting down")

    asyncio.run(scenario())
    assert [line["message"] for line in _lines(stream)] == ["delivery queued", "shutting down"]
    assert len(stream.writes) == 1


def test_a_tick_that_logs_too_many_lines_writes_them_without_waiting(
    logger: logging.Logger, stream: _Stream
) -> None:
    async def scenario() -> int:
        for number in range(logs.MAX_BATCHED_LINES + 1):
            logs.log_fields(logger, logging.INFO, "delivery queued", {"n": number})
        return len(stream.writes)

    assert asyncio.run(scenario()) == 1
    assert len(_lines(stream)) == logs.MAX_BATCHED_LINES + 1


def test_outside_an_event_loop_a_line_is_written_at_once(logger: logging.Logger, stream: _Stream) -> None:
    logs.log_fields(logger, logging.INFO, "delivery queued", FIELDS)
    assert _lines(stream)[0]["delivery_id"] == "Ev1"


def test_flush_writes_what_waits(logger: logging.Logger, stream: _Stream) -> None:
    async def scenario() -> None:
        logs.log_fields(logger, logging.INFO, "delivery queued", FIELDS)
        logger.handlers[0].flush()
        assert len(_lines(stream)) == 1

    asyncio.run(scenario())
    assert len(_lines(stream)) == 1, "the scheduled write found nothing left to write"


def test_lines_below_the_level_are_dropped(logger: logging.Logger, stream: _Stream) -> None:
    logs.log_fields(logger, logging.DEBUG, "delivery queued", FIELDS)
    assert stream.writes == []


def test_another_handler_gets_an_ordinary_record_with_the_fields(
    logger: logging.Logger, stream: _Stream
) -> None:
    collector = _Collector()
    logger.addHandler(collector)

    async def scenario() -> None:
        logs.log_fields(logger, logging.WARNING, "delivery rejected", FIELDS)

    asyncio.run(scenario())
    (record,) = collector.records
    assert (record.getMessage(), record.levelno, record.__dict__["fields"]) == (
        "delivery rejected",
        logging.WARNING,
        FIELDS,
    )
    assert _lines(stream)[0]["delivery_id"] == "Ev1", "the JSON handler still writes its line"


def test_a_filter_on_the_logger_is_honoured(logger: logging.Logger, stream: _Stream) -> None:
    logger.addFilter(lambda record: False)

    async def scenario() -> None:
        logs.log_fields(logger, logging.INFO, "delivery queued", FIELDS)

    try:
        asyncio.run(scenario())
    finally:
        logger.filters.clear()
    assert stream.writes == []


def test_a_rendered_line_equals_the_formatted_record() -> None:
    record = logging.LogRecord("gateway.delivery", logging.INFO, "", 0, "%s", ("delivery queued",), None)
    record.fields = FIELDS
    rendered = logs.render(record.created, "info", "gateway.delivery", "delivery queued", FIELDS)
    assert rendered == logs.JSONFormatter().format(record)
