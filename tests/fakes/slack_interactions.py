"""The ``block_actions`` payload a button press sends, for ``SlackFake.press``.

``interaction(...)`` is the payload Slack posts to the app's interactivity URL when someone
presses a button of a stored message
(https://api.slack.com/reference/interaction-payloads/block-actions). What Slack refuses in
``blocks`` is ``slack_rules.block_errors``.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from tests.fakes.slack_rules import parse_blocks

__all__ = ["interaction"]


def interaction(
    message: dict[str, Any], *, channel: str, action_id: str, user: str, team: str, response_url: str
) -> dict[str, Any]:
    """The ``block_actions`` payload of ``user`` pressing button ``action_id`` of ``message``."""
    block, button = _find_button(message, action_id)
    container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False}
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    pressed = {**button, "block_id": block.get("block_id", ""), "action_ts": f"{time.time():.6f}"}
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
        "actions": [pressed],
    }


def _find_button(message: dict[str, Any], action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    blocks = parse_blocks(message.get("blocks"))
    for block in blocks if isinstance(blocks, list) else []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return block, element
    raise LookupError(f"the message has no button {action_id!r}")
