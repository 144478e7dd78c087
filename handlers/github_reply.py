"""GitHub facts before the run, and the reply after it: a comment, a review-thread reply, a check run.

Facts (``enrich``): for a pull request (its events, or a comment on its conversation) the pull
request and its files; for an issue its title and current labels. Read with PyGithub through
``clients.call`` (threads), authenticated by ``GitHubCredentials`` (token or App installation).

Replies (``deliver``):
- ``issues`` opened/reopened, ``pull_request`` opened/reopened and ``issue_comment`` created get
  an issue comment (a pull request's conversation is its issue);
- ``pull_request_review_comment`` created gets a reply in that review thread;
- ``pull_request`` opened/reopened/synchronize also get a check run carrying the summary, only
  as a GitHub App (check runs need an installation token); synchronize gets no comment, so a
  busy branch does not flood the conversation.

Exactly once: every comment ends with ``replies.hidden_marker(job_id)``; its id is stored in the
delivery's ``ReplyMarker`` right after posting, and a rerun with no stored id first searches the
comments made since the delivery arrived for the marker. Check-run ids are stored the same way.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import github
from github.Repository import Repository

from handlers import clients, services
from handlers.agent import Event, Reply, Run
from handlers.payload import as_dict
from handlers.platform import log_delivery, reply_marker
from handlers.replies import hidden_marker

CHECK_RUN_NAME = "gateway triage"
MAX_COMMENT = 65_536
MAX_FILES = 300  # GitHub lists at most 3,000; a summary needs far fewer
_COMMENTED = {
    "issues": {"opened", "reopened"},
    "pull_request": {"opened", "reopened"},
    "issue_comment": {"created"},
}
_CHECKED = {"opened", "reopened", "synchronize"}
_SEARCH_MARGIN = timedelta(minutes=5)


def is_configured() -> bool:
    """True when a token or a GitHub App is set: otherwise replies are only logged."""
    gh = services.current().settings.github
    return bool(gh.token or (gh.app_id and gh.app_private_key))


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["pull"]`` or ``facts["issue"]`` read from the API."""
    full_name, number = _where(event)
    if not is_configured() or not full_name or number is None or event.name.startswith("pull_request_review"):
        return event
    client = await clients.call(services.current().github, event.meta.get("installation_id"))
    if _is_pull(event):
        facts = {"pull": await clients.call(_read_pull, client, full_name, number, deadline=run.deadline)}
    else:
        facts = {"issue": await clients.call(_read_issue, client, full_name, number, deadline=run.deadline)}
    return dataclasses.replace(event, facts={**event.facts, **facts})


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Post the reply once (comment or review reply), and the check run where it applies."""
    if not is_configured():
        return await log_delivery(event, reply, run)
    client = await clients.call(services.current().github, event.meta.get("installation_id"))
    if event.action in _COMMENTED.get(event.name, set()) or _is_review_comment(event):
        await _comment_once(client, event, reply, run)
    if event.name == "pull_request" and event.action in _CHECKED:
        await _check_run_once(client, event, reply, run)


async def _comment_once(client: github.Github, event: Event, reply: Reply, run: Run) -> None:
    marker = reply_marker(run)
    if (await marker.load()).get("github_comment"):
        return  # an earlier attempt posted it
    found = await clients.call(_find_comment, client, event, run.job_id) if run.attempt > 1 else None
    if found is None:
        body = reply.text[: MAX_COMMENT - 100] + "\n\n" + hidden_marker(run.job_id)
        found = await clients.call(
            _post_comment, client, event, body, deadline=run.deadline, idempotent=False
        )
    await marker.note(github_comment=found)


async def _check_run_once(client: github.Github, event: Event, reply: Reply, run: Run) -> None:
    if not services.current().github_app:
        run.log.info("no check run: check runs need a GitHub App installation token, not GITHUB_TOKEN")
        return
    marker = reply_marker(run)
    if (await marker.load()).get("github_check_run"):
        return
    check_id = await clients.call(_create_check_run, client, event, reply, run.job_id, deadline=run.deadline)
    await marker.note(github_check_run=check_id)


def _read_pull(client: github.Github, full_name: str, number: int) -> dict[str, Any]:
    pull = _repo(client, full_name).get_pull(number)
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
    issue = _repo(client, full_name).get_issue(number)
    labels = [label.name for label in issue.labels]
    return {"number": number, "title": issue.title, "state": issue.state, "labels": labels}


def _post_comment(client: github.Github, event: Event, body: str) -> int:
    full_name, number = _where(event)
    repo = _repo(client, str(full_name))
    if _is_review_comment(event):
        comment = as_dict(event.payload.get("comment"))
        thread = int(comment.get("in_reply_to_id") or comment["id"])  # replies go to the thread's root
        return int(repo.get_pull(int(number or 0)).create_review_comment_reply(thread, body).id)
    return int(repo.get_issue(int(number or 0)).create_comment(body).id)


def _find_comment(client: github.Github, event: Event, job_id: str) -> int | None:
    """The id of a comment carrying this delivery's marker, made since the delivery arrived."""
    full_name, number = _where(event)
    repo = _repo(client, str(full_name))
    since = datetime.fromisoformat(event.received_at) - _SEARCH_MARGIN
    if _is_review_comment(event):
        comments: Any = repo.get_pull(int(number or 0)).get_review_comments(since=since)
    else:
        comments = repo.get_issue(int(number or 0)).get_comments(since=since)
    tag = hidden_marker(job_id)
    return next((int(c.id) for c in comments if tag in (c.body or "")), None)


def _create_check_run(client: github.Github, event: Event, reply: Reply, job_id: str) -> int:
    full_name, _ = _where(event)
    head_sha = as_dict(as_dict(event.payload.get("pull_request")).get("head")).get("sha")
    title = (reply.text.strip().splitlines() or ["Triage"])[0].strip("*# ")[:200]
    run = _repo(client, str(full_name)).create_check_run(
        name=CHECK_RUN_NAME,
        head_sha=str(head_sha),
        external_id=job_id,
        status="completed",
        conclusion="neutral",
        output={"title": title, "summary": reply.text[:65_000]},
    )
    return int(run.id)


def _repo(client: github.Github, full_name: str) -> Repository:
    # Lazy: reaching an issue or pull request to write to it costs no GET.
    return client.withLazy(True).get_repo(full_name)


def _where(event: Event) -> tuple[str | None, int | None]:
    full_name = as_dict(event.payload.get("repository")).get("full_name")
    for holder in (event.payload.get("issue"), event.payload.get("pull_request")):
        if isinstance(holder, dict) and isinstance(holder.get("number"), int):
            return full_name, int(holder["number"])
    number = event.payload.get("number")
    return full_name, number if isinstance(number, int) else None


def _is_pull(event: Event) -> bool:
    issue = as_dict(event.payload.get("issue"))
    return "pull_request" in event.payload or bool(issue.get("pull_request"))


def _is_review_comment(event: Event) -> bool:
    return event.name == "pull_request_review_comment" and event.action == "created"
