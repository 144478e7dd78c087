"""What the ``llm`` agent may read on GitHub: an issue or pull request with its comments, a pull
request's files and diff, and a file's contents at a ref — all in the event's own repository,
with the event's installation token."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from handlers.agent import Event
from handlers.github.client import call_as, is_configured
from handlers.github.payload import head_sha, installation_id, number_of, repository
from handlers.services import Services
from handlers.tools import Arguments, Tool, ToolError, cap, integer_argument, schema, to_json

__all__ = ["PROMPT", "build"]

PROMPT = (
    "On GitHub you review pull requests and answer issues and comments. For a pull request, read "
    "its changed files and diff (github_pull_files), and files at the head when you need context "
    "(github_file); name file and line for each finding and lead with what matters most. For an "
    "issue, read it with its comments (github_issue). Answer in GitHub Markdown."
)
"""What the ``llm`` agent's system prompt says about GitHub."""

MAX_COMMENTS = 30
MAX_FILES = 100
PATCH_LIMIT = 3000  # characters of one file's diff, so one huge file cannot crowd out the rest
_NUMBER = {"number": {"type": "integer", "description": "issue or pull request number; default: the event's"}}


class _Scope:
    """The event's repository, installation and number, and a way to reach them."""

    def __init__(self, event: Event, services: Services) -> None:
        self.repo = repository(event.payload) or ""
        self.installation = installation_id(event)
        self.number = number_of(event.payload)
        self.head_sha = head_sha(event.payload)
        self.services = services

    async def run(self, read: Callable[[Any], str], deadline: float) -> str:
        """Run ``read(repository)`` in a thread with the installation's token; return capped text."""

        def work(client: Any) -> str:
            # The worker's shared client and installation-token cache, as the replies use.
            return read(client.get_repo(self.repo))

        return cap(await call_as(self.services, self.installation, work, deadline=deadline))

    def number_of(self, arguments: Arguments) -> int:
        default = self.number if isinstance(self.number, int) else 0
        number = integer_argument(arguments, "number", default, low=0, high=10**9)
        if number <= 0:
            raise ToolError("this event is not about an issue or pull request: give a number")
        return number


def build(event: Event, services: Services) -> list[Tool]:
    """The GitHub tools for ``event``'s repository (none if the event names no repository)."""
    scope = _Scope(event, services)
    if not scope.repo or not is_configured(services):
        return []

    async def issue(arguments: Arguments, deadline: float) -> str:
        number = scope.number_of(arguments)
        return await scope.run(lambda repo: to_json(_issue(repo, number)), deadline)

    async def pull_files(arguments: Arguments, deadline: float) -> str:
        number = scope.number_of(arguments)
        return await scope.run(lambda repo: to_json(_pull_files(repo, number)), deadline)

    async def file(arguments: Arguments, deadline: float) -> str:
        path = str(arguments.get("path") or "").strip().lstrip("/")
        if not path:
            raise ToolError("give the file's path")
        ref = str(arguments.get("ref") or scope.head_sha or "") or None
        return await scope.run(lambda repo: _file(repo, path, ref), deadline)

    where = f"in {scope.repo}"
    return [
        Tool(
            "github_issue",
            f"An issue or pull request {where}: title, state, body and comments.",
            schema(_NUMBER),
            issue,
            lambda a: f"Reading {scope.repo}#{a.get('number') or scope.number}",
        ),
        Tool(
            "github_pull_files",
            f"A pull request's changed files {where}, with each file's diff.",
            schema(_NUMBER),
            pull_files,
            lambda a: f"Reading the diff of {scope.repo}#{a.get('number') or scope.number}",
        ),
        Tool(
            "github_file",
            f"A file's contents {where} at a ref (default: the pull request's head).",
            schema(
                {"path": {"type": "string"}, "ref": {"type": "string", "description": "branch, tag or sha"}},
                ("path",),
            ),
            file,
            lambda a: f"Reading {a.get('path')} in {scope.repo}",
        ),
    ]


def _issue(repo: Any, number: int) -> dict[str, Any]:
    item = repo.get_issue(number)
    comments = list(item.get_comments())[-MAX_COMMENTS:]
    return {
        "number": item.number,
        "title": item.title,
        "state": item.state,
        "author": item.user.login if item.user else None,
        "labels": [label.name for label in item.labels],
        "is_pull_request": item.pull_request is not None,
        "body": item.body or "",
        "comments": [
            {"author": c.user.login if c.user else None, "at": c.created_at, "body": c.body} for c in comments
        ],
    }


def _pull_files(repo: Any, number: int) -> dict[str, Any]:
    pull = repo.get_pull(number)
    files = []
    for index, changed in enumerate(pull.get_files()):
        if index >= MAX_FILES:
            files.append({"note": f"more than {MAX_FILES} files; the rest are left out"})
            break
        patch = changed.patch or "(no diff: binary or too large)"
        files.append(
            {
                "file": changed.filename,
                "status": changed.status,
                "additions": changed.additions,
                "deletions": changed.deletions,
                "diff": patch if len(patch) <= PATCH_LIMIT else patch[:PATCH_LIMIT] + "\n…[diff cut]",
            }
        )
    return {
        "number": pull.number,
        "title": pull.title,
        "base": pull.base.ref,
        "head": pull.head.ref,
        "files": files,
    }


def _file(repo: Any, path: str, ref: str | None) -> str:
    content = repo.get_contents(path, ref=ref) if ref else repo.get_contents(path)
    if isinstance(content, list):
        return "a directory: " + ", ".join(item.path for item in content[:200])
    raw = base64.b64decode(content.content or "")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return f"(binary file, {len(raw)} bytes)"
