"""A run's mailbox: arrival order, waiting, taking once, stopping, and use from threads."""

from __future__ import annotations

import asyncio
import threading
import time

from handlers.messages import Mailbox, Message


def _message(n: int) -> Message:
    return Message(f"m{n}", "<@U1>", "slack", f"Ev{n}", "2026-11-22T11:00:00+00:00")


def test_messages_are_taken_once_in_arrival_order() -> None:
    mailbox = Mailbox()
    mailbox.add([_message(1), _message(2)])
    assert mailbox.take_next() == _message(1)
    mailbox.add([_message(3)])
    assert mailbox.take_pending() == [_message(2), _message(3)]
    assert mailbox.take_pending() == [] and mailbox.take_next() is None
    assert (mailbox.loaded, mailbox.read) == (3, 3)
    assert mailbox.taken() == (_message(1), _message(2), _message(3))


def test_next_waits_for_a_message_added_from_another_thread() -> None:
    mailbox = Mailbox()

    async def main() -> Message | None:
        threading.Timer(0.1, mailbox.add, args=([_message(1)],)).start()
        return await mailbox.next(5.0)

    started = time.monotonic()
    assert asyncio.run(main()) == _message(1)
    assert time.monotonic() - started < 4.0, "woken by the add, not by the timeout"


def test_next_gives_up_after_its_time_and_on_close() -> None:
    mailbox = Mailbox()
    assert asyncio.run(mailbox.next(0.05)) is None
    threading.Timer(0.1, mailbox.close).start()
    assert asyncio.run(mailbox.next(None)) is None
    mailbox.add([_message(1)])
    assert asyncio.run(mailbox.next(None)) == _message(1), "a waiting message is still given after close"


def test_counting_read_ahead_of_loading_marks_later_loads_as_read() -> None:
    mailbox = Mailbox()
    mailbox.count_read(2)
    mailbox.add([_message(1), _message(2), _message(3)])
    assert mailbox.take_pending() == [_message(3)] and mailbox.read == 3
