"""Fakes that can hold one answer: the platform has applied the call, the worker has not heard back.

``HoldingGitHubFake`` also serves the review-comment reply endpoints the shared fake lacks.

``hold(method, path, contains, seconds)`` makes the next matching request (glob ``path`` under the
fake's prefix, ``contains`` a substring of the raw body) wait ``seconds`` after the fake applied
and recorded it, before the answer is sent. A test kills the worker inside that window: the
exact crash point "posted, but the marker was not written yet".
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakes import GitHubFake, SlackFake
from tests.fakes import github_rules as rules
from tests.fakes import github_shapes as shapes
from tests.fakes.server import Reply, Request, Route, route

# Where the recorded mention (fixtures/slack/app_mention) was posted: its channel and thread.
MENTION_CHANNEL, MENTION_THREAD = "C0001", "1795345212.000100"

_MAX_HOLD = 30.0


@dataclass
class _Hold:
    method: str
    path: str
    contains: bytes
    seconds: float


class Holding:
    """Mixin for a ``FakeServer``: one-shot holds, and ``held`` set once a hold starts."""

    _holds: list[_Hold]
    held: threading.Event

    def hold(self, method: str, path: str, *, contains: str = "", seconds: float = 5.0) -> None:
        """Hold the answer to the next ``method path`` request whose body contains ``contains``."""
        self._holds.append(_Hold(method.upper(), path, contains.encode(), min(seconds, _MAX_HOLD)))

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Answer as the fake does, then wait if a hold matches (outside the fake's lock)."""
        reply: Reply = super().handle(method, target, headers, raw)  # type: ignore[misc]
        path = target.split("?", 1)[0].removeprefix(getattr(self, "prefix", ""))
        for hold in list(self._holds):
            if hold.method == method and fnmatch.fnmatchcase(path, hold.path) and hold.contains in raw:
                self._holds.remove(hold)
                self.held.set()
                time.sleep(hold.seconds)
                break
        return reply


class HoldingSlackFake(Holding, SlackFake):
    """``SlackFake`` with ``hold``."""

    def __init__(self, **kwargs: Any) -> None:
        self._holds, self.held = [], threading.Event()
        super().__init__(**kwargs)


class HoldingGitHubFake(Holding, GitHubFake):
    """``GitHubFake`` with ``hold`` and review-comment threads (``review_replies``)."""

    def __init__(self, **kwargs: Any) -> None:
        self._holds, self.held = [], threading.Event()
        self.review_replies: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def routes(self) -> Iterable[Route]:
        """The shared fake's routes plus list review comments and reply to one."""
        comments = "/repos/{owner}/{repo}/pulls/{number}/comments"
        return [
            *super().routes(),
            route("POST", comments + "/{id}/replies", self._reply_to_review_comment),
            route("GET", comments, self._list_review_comments),
        ]

    def _reply_to_review_comment(self, request: Request) -> Reply:
        body = request.body.get("body") if isinstance(request.body, dict) else None
        refused = rules.comment_refusal(body, resource="PullRequestReviewComment")
        if refused is not None:
            return refused
        reply = {
            "id": 9000 + len(self.review_replies),
            "in_reply_to_id": int(request.params["id"]),
            "body": body,
            "pull": int(request.params["number"]),
            "user": shapes.user_obj("fake-user", base=request.base_url),
            "created_at": shapes.iso(time.time()),
        }
        self.review_replies.append(reply)
        return Reply(201, reply)

    def _list_review_comments(self, request: Request) -> Reply:
        number = int(request.params["number"])
        return Reply(200, [r for r in self.review_replies if r["pull"] == number])
