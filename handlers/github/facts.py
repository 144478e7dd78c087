"""What the GitHub agent knows before it runs: the pull request and its files, or the issue and its labels.

Read with PyGithub through ``call`` (threads), authenticated by the delivery's token (personal,
or the App installation's). Review events read nothing: their text is the review itself.
"""

from __future__ import annotations

import dataclasses
from itertools import islice
from typing import Any

import github
from github.Repository import Repository

from handlers.agent import Event, Run
from handlers.github.client import call_as, is_configured
from handlers.github.payload import installation_id, is_pull, number_of, repository

__all__ = ["MAX_FILES", "enrich", "repo"]

MAX_FILES = 300  # GitHub lists at most 3,000; a summary needs far fewer


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["pull"]`` or ``facts["issue"]`` read from the API."""
    full_name, number = repository(event.payload), number_of(event.payload)
    if (
        not is_configured(run.services)
        or not full_name
        or number is None
        or event.name.startswith("pull_request_review")
    ):
        return event
    read = _read_pull if is_pull(event) else _read_issue
    found = await call_as(
        run.services, installation_id(event), read, full_name, number, deadline=run.deadline
    )
    facts = {"pull" if is_pull(event) else "issue": found}
    return dataclasses.replace(event, facts={**event.facts, **facts})


def repo(client: github.Github, full_name: str) -> Repository:
    """The repository, lazily: reaching an issue or pull request to write to it costs no GET."""
    return client.withLazy(True).get_repo(full_name)


def _read_pull(client: github.Github, full_name: str, number: int) -> dict[str, Any]:
    pull = repo(client, full_name).get_pull(number)
    files = [
        {"filename": f.filename, "status": f.status, "additions": f.additions, "deletions": f.deletions}
        for f in islice(pull.get_files(), MAX_FILES)
    ]
    return {
        "number": number,
        "title": pull.title,
        "draft": bool(pull.draft),
        "base": pull.base.ref,
        "head": pull.head.ref,
        "head_sha": pull.head.sha,
        "additions": pull.additions,
        "deletions": pull.deletions,
        "changed_files": pull.changed_files,
        "files": files,
    }


def _read_issue(client: github.Github, full_name: str, number: int) -> dict[str, Any]:
    issue = repo(client, full_name).get_issue(number)
    labels = [label.name for label in issue.labels]
    return {"number": number, "title": issue.title, "state": issue.state, "labels": labels}
