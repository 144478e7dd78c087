"""Block Kit as the fake Slack checks it, and the ``block_actions`` payload a button press sends.

``problems(blocks)`` lists what Slack would refuse in a message's ``blocks`` (``chat.postMessage``
and ``chat.update`` then answer ``invalid_blocks``); only the blocks and elements this project
sends are modelled (section, context, divider, actions, button), each with its documented limits
(https://api.slack.com/reference/block-kit/blocks, .../block-elements#button,
.../composition-objects#text). ``interaction(...)`` is the payload Slack posts to the app's
interactivity URL when someone presses a button of a stored message
(https://api.slack.com/reference/interaction-payloads/block-actions).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any

__all__ = ["interaction", "parse", "problems"]

_MAX_BLOCKS = 50
_MAX_ELEMENTS = 25
_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})


def parse(value: Any) -> list[Any] | None:
    """``blocks`` as sent: a JSON array (JSON bodies) or its text (form bodies); ``None`` if neither."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def problems(blocks: list[Any]) -> list[str]:
    """What Slack would refuse in ``blocks``, one line each (empty: fine)."""
    found = [f"no more than {_MAX_BLOCKS} blocks"] if len(blocks) > _MAX_BLOCKS else []
    ids = [block.get("block_id") for block in blocks if isinstance(block, dict) and block.get("block_id")]
    if len(ids) != len(set(ids)):
        found.append("block_id must be unique in a message")
    for index, block in enumerate(blocks):
        found += [f"[{index}] {problem}" for problem in _block(block)]
    return found


def _block(block: Any) -> list[str]:
    if not isinstance(block, dict):
        return ["a block must be an object"]
    kind = block.get("type")
    if len(str(block.get("block_id", ""))) > 255:
        return ["block_id must be at most 255 characters"]
    if kind == "section":
        return _text(block.get("text"), limit=3000, name="text")
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= _MAX_ELEMENTS:
            return [f"actions need 1 to {_MAX_ELEMENTS} elements"]
        return [problem for element in elements for problem in _button(element)]
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return ["context needs 1 to 10 elements"]
        return [problem for element in elements for problem in _text(element, limit=3000, name="element")]
    if kind == "divider":
        return []
    return [f"unsupported block type {kind!r}"]


def _button(element: Any) -> list[str]:
    if not isinstance(element, dict) or element.get("type") != "button":
        return ["only button elements are modelled"]
    found = _text(element.get("text"), limit=75, name="button text", plain=True)
    if len(str(element.get("action_id", ""))) > 255:
        found.append("action_id must be at most 255 characters")
    if len(str(element.get("value", ""))) > 2000:
        found.append("value must be at most 2000 characters")
    if "style" in element and element["style"] not in ("primary", "danger"):
        found.append("style must be primary or danger")
    return found


def _text(value: Any, *, limit: int, name: str, plain: bool = False) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in _TEXT_TYPES:
        return [f"{name} must be a text object"]
    if plain and value["type"] != "plain_text":
        return [f"{name} must be plain_text"]
    text = value.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        return [f"{name} must hold 1 to {limit} characters"]
    return []


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
    for block in parse(message.get("blocks")) or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return block, element
    raise LookupError(f"the message has no button {action_id!r}")
