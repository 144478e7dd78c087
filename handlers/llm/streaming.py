"""Passing the model's streamed text on to ``run.stream``, once, across steps and retried calls.

Every step's ``content`` is streamed as it arrives, including what the model says before tool
calls ("Let me read the thread."): nothing in an OpenAI-compatible stream says a completion will
call tools until its first tool-call piece, usually after that text, so holding text back until
the finish reason would stream nothing at all. The ``Reply`` stays the answer of record (the
platform shows it in place of what was streamed); a later step's text is streamed after a blank
line. A call the client retries streams again from its start: only text past what this step
already streamed goes on, and a retry that says something else streams nothing more (the reply
corrects it), so nothing is doubled. See docs/llm.md ("Streamed answers").
"""

from __future__ import annotations

from handlers.agent import Run

__all__ = ["STEP_BREAK", "AnswerStream"]

STEP_BREAK = "\n\n"


class AnswerStream:
    """One run's streamed text: call ``step()`` before each model call, give its ``feed`` to the client."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._text = ""  # what this step streamed
        self._diverged = False

    def step(self) -> None:
        """A new model call begins: its text follows what earlier steps streamed."""
        self._text, self._diverged = "", False

    def feed(self, piece: str, offset: int) -> None:
        """Take ``piece`` at ``offset`` of the current attempt's content (a ``ContentSink``)."""
        if self._diverged:
            return
        seen = len(self._text)
        overlap = self._text[offset : offset + len(piece)]
        if not piece.startswith(overlap) or offset > seen:
            self._diverged = True  # a retried call that says something else: the reply will correct it
            return
        new = piece[seen - offset :]
        if not new:
            return
        if not self._text and self._run.streamed:
            self._run.stream(STEP_BREAK)
        self._text += new
        self._run.stream(new)
