"""Feedback buttons under a final Slack answer, and reading a click on them.

Slack's ``context_actions`` block with a ``feedback_buttons`` element
(https://docs.slack.dev/reference/block-kit/blocks/context-actions-block) shows a thumbs up and a
thumbs down under a message. A click sends a ``block_actions`` interaction whose action has
``action_id`` ``ACTION_ID`` and the pressed button's ``value``: ``good:<job_id>`` or
``bad:<job_id>``, so the click names its run even where the message carries no metadata.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["ACTION_ID", "BLOCK_ID", "Rating", "buttons", "read_value"]

ACTION_ID = "gateway_feedback"
BLOCK_ID = "gateway_feedback"
Rating = Literal["good", "bad"]


def buttons(job_id: str) -> dict[str, Any]:
    """The ``context_actions`` block with feedback buttons for run ``job_id``."""

    def button(label: str, rating: Rating, said: str) -> dict[str, Any]:
        return {
            "text": {"type": "plain_text", "text": label},
            "accessibility_label": said,
            "value": f"{rating}:{job_id}",
        }

    element = {
        "type": "feedback_buttons",
        "action_id": ACTION_ID,
        "positive_button": button("Good answer", "good", "Mark this answer as helpful"),
        "negative_button": button("Bad answer", "bad", "Mark this answer as not helpful"),
    }
    return {"type": "context_actions", "block_id": BLOCK_ID, "elements": [element]}


def read_value(value: object) -> tuple[Rating, str] | None:
    """``(rating, job_id)`` from a pressed button's value, or ``None`` when it is not one of ours."""
    if not isinstance(value, str):
        return None
    rating, _, job_id = value.partition(":")
    if rating not in ("good", "bad") or not job_id:
        return None
    return ("good" if rating == "good" else "bad"), job_id
