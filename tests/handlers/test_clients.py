"""The one SDK call: exceptions no platform translates still become our errors."""

from __future__ import annotations

from handlers.clients import translate
from handlers.errors import PermanentError, TransientError


def test_unknown_exceptions_become_permanent_errors() -> None:
    assert isinstance(translate(ValueError("bug")), PermanentError)
    assert isinstance(translate(ConnectionResetError()), TransientError)
