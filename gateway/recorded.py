"""Recorded deliveries: ``fixtures/<platform>/<name>.body`` plus ``<name>.headers.json``.

The body is the raw bytes as delivered; the headers are as delivered minus the signature
headers, which are made afresh whenever a recording is replayed (tests, ``gateway replay``).
An optional ``<name>.expect.json`` says what the gateway must answer and queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.platforms import PLATFORMS

__all__ = ["SIGNATURE_HEADERS", "Recording", "discover", "load"]

SIGNATURE_HEADERS = frozenset(name for platform in PLATFORMS.values() for name in platform.signature_headers)
"""Every platform's signature header names, lower-case: never stored in a recording."""


@dataclass(frozen=True)
class Recording:
    """One recorded delivery."""

    platform: str
    name: str
    body: bytes
    headers: dict[str, str]
    expect: dict[str, Any] | None


def load(body_path: Path) -> Recording:
    """Read ``<name>.body`` and its companions; the platform is the folder's name."""
    name = body_path.name.removesuffix(".body")
    headers_path = body_path.with_name(f"{name}.headers.json")
    expect_path = body_path.with_name(f"{name}.expect.json")
    headers = json.loads(headers_path.read_text()) if headers_path.exists() else {}
    return Recording(
        platform=body_path.parent.name,
        name=name,
        body=body_path.read_bytes(),
        headers={k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS},
        expect=json.loads(expect_path.read_text()) if expect_path.exists() else None,
    )


def discover(root: Path) -> list[Recording]:
    """Every recording under ``root`` (``root/<platform>/*.body``), sorted by platform and name."""
    return [load(path) for path in sorted(root.glob("*/*.body"))]
