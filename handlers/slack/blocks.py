"""Block Kit limits, checked before an agent's blocks are sent: a bad block costs the blocks, not the answer.

Slack refuses a whole message (``invalid_blocks``) for one block over a limit:
https://docs.slack.dev/reference/block-kit/blocks ("up to 50 blocks in each message") and each
block's page (section text 3,000 characters and at most 10 fields of 2,000; header 150, plain text;
context 10 elements; actions 25; markdown 12,000; ``block_id`` 255). ``problem`` names the first
limit passed; the reply then goes as text alone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_BLOCKS", "problem"]

MAX_BLOCKS = 50
_ELEMENTS = {"context": 10, "actions": 25}
_FIELDS, _FIELD_TEXT, _SECTION_TEXT, _HEADER_TEXT, _MARKDOWN_TEXT = 10, 2000, 3000, 150, 12_000


def problem(blocks: Any) -> str | None:
    """Why Slack would refuse ``blocks``, or ``None`` when they are within its limits."""
    if not isinstance(blocks, list) or not blocks:
        return "blocks must be a non-empty list"
    if len(blocks) > MAX_BLOCKS:
        return f"{len(blocks)} blocks; Slack takes at most {MAX_BLOCKS} a message"
    for index, block in enumerate(blocks):
        found = _block(block)
        if found:
            return f"block {index}: {found}"
    return None


def _block(block: Any) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return "not a block object with a type"
    if len(str(block.get("block_id") or "")) > 255:
        return "block_id over 255 characters"
    kind = block["type"]
    if kind == "section":
        return _section(block)
    if kind == "header":
        return _text(block.get("text"), _HEADER_TEXT, plain=True)
    if kind == "markdown":
        text = block.get("text")
        return None if isinstance(text, str) and 0 < len(text) <= _MARKDOWN_TEXT else "markdown text too long"
    if kind in _ELEMENTS:
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= _ELEMENTS[kind]:
            return f"{kind} takes 1 to {_ELEMENTS[kind]} elements"
    return None


def _section(block: dict[str, Any]) -> str | None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        return "a section needs text or fields"
    if text is not None and (found := _text(text, _SECTION_TEXT)):
        return found
    if fields is None:
        return None
    if not isinstance(fields, list) or len(fields) > _FIELDS:
        return f"a section takes at most {_FIELDS} fields"
    return next((found for item in fields if (found := _text(item, _FIELD_TEXT))), None)


def _text(value: Any, limit: int, *, plain: bool = False) -> str | None:
    kinds = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if not isinstance(value, dict) or value.get("type") not in kinds:
        return f"text must be a {' or '.join(kinds)} object"
    text = value.get("text")
    if not isinstance(text, str) or not text:
        return "text must not be empty"
    return f"text over {limit} characters" if len(text) > limit else None
