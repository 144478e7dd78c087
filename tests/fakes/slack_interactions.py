"""The ``block_actions`` payload a button press sends, for ``SlackFake.press`` and ``press_feedback``.

``interaction(...)`` is the payload Slack posts to the app's interactivity URL when someone
presses a button of a stored message
(https://api.slack.com/reference/interaction-payloads/block-actions); ``feedback_interaction(...)``
the one of a click on a ``feedback_buttons`` element of a ``context_actions`` block, whose action
carries the pressed button's ``text`` and ``value`` (bolt-js ``FeedbackButtonsAction``). What Slack
refuses in ``blocks`` is ``slack_rules.block_errors``.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from tests.fakes.slack_rules import parse_blocks

__all__ = ["feedback_interaction", "interaction"]

_FEEDBACK_BUTTONS = {"good": "positive_button", "bad": "negative_button"}


def interaction(
    message: dict[str, Any], *, channel: str, action_id: str, user: str, team: str, response_url: str
) -> dict[str, Any]:
    """The ``block_actions`` payload of ``user`` pressing button ``action_id`` of ``message``."""
    block, button = _find_button(message, action_id)
    pressed = {**button, "block_id": block.get("block_id", ""), "action_ts": f"{time.time():.6f}"}
    return _payload(message, channel=channel, user=user, team=team, response_url=response_url, action=pressed)


def feedback_interaction(
    message: dict[str, Any], *, channel: str, rating: str, user: str, team: str, response_url: str
) -> dict[str, Any]:
    """The ``block_actions`` payload of ``user`` clicking the ``"good"`` (positive) or ``"bad"``
    (negative) feedback button of ``message``; ``LookupError`` if it has none."""
    if rating not in _FEEDBACK_BUTTONS:
        raise ValueError(f"rating must be 'good' or 'bad', not {rating!r}")
    block, element = _find_feedback(message)
    button = element[_FEEDBACK_BUTTONS[rating]]
    pressed = {
        "type": "feedback_buttons",
        "action_id": element.get("action_id", ""),
        "block_id": block.get("block_id", ""),
        "text": copy.deepcopy(button["text"]),
        "value": button["value"],
        "action_ts": f"{time.time():.6f}",
    }
    return _payload(message, channel=channel, user=user, team=team, response_url=response_url, action=pressed)


def _payload(
    message: dict[str, Any], *, channel: str, user: str, team: str, response_url: str, action: dict[str, Any]
) -> dict[str, Any]:
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "A0FAKEAPP",
        "token": "X" * 24,
        "container": container,
        "trigger_id": f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}",
        "team": {"id": team, "domain": "fake"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "fake-channel"},
        "message": copy.deepcopy(message),
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def _find_button(message: dict[str, Any], action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    blocks = parse_blocks(message.get("blocks"))
    for block in blocks if isinstance(blocks, list) else []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return block, element
    raise LookupError(f"the message has no button {action_id!r}")


def _find_feedback(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    blocks = parse_blocks(message.get("blocks"))
    for block in blocks if isinstance(blocks, list) else []:
        for element in block.get("elements", []) if block.get("type") == "context_actions" else []:
            if element.get("type") == "feedback_buttons":
                return block, element
    raise LookupError("the message has no feedback buttons")
