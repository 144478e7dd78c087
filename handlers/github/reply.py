"""The GitHub reply, posted once: an issue comment, a review-thread reply, a check run.

- ``issues`` opened/reopened, ``pull_request`` opened/reopened and ``issue_comment`` created get
  an issue comment (a pull request's conversation is its issue);
- ``pull_request_review_comment`` created gets a reply in that review thread;
- ``pull_request`` opened/reopened/synchronize also get a check run carrying the summary, only
  as a GitHub App (check runs need an installation token); synchronize gets no comment, so a
  busy branch does not flood the conversation.

Exactly once: every comment ends with ``hidden_marker(job_id)``; its id is stored in the
delivery's ``ReplyMarker`` right after posting, and a rerun with no stored id first searches the
comments made since the delivery arrived for the marker. Check-run ids are stored the same way.

Sizes: GitHub limits a check run's ``summary`` to 65,535 *bytes* (its docs say characters; a
longer UTF-8 text gets 422 "summary exceeds a maximum bytesize of 65535",
https://docs.github.com/rest/checks/runs) and a comment body to 65,536 characters. Both are cut
here in UTF-8 bytes, which satisfies either reading, and say that they were cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import github

from handlers.agent import Event, Reply, Run
from handlers.github.client import call_as, is_configured
from handlers.github.facts import repo
from handlers.github.payload import head_sha, installation_id, is_review_comment, number_of, repository
from handlers.payload import as_dict
from handlers.pipeline import log_delivery
from handlers.state.replies import ReplyMarker, hidden_marker

__all__ = ["CHECK_RUN_NAME", "MAX_COMMENT", "MAX_OUTPUT", "deliver", "fit"]

CHECK_RUN_NAME = "gateway triage"
MAX_COMMENT = 65_536  # bytes here; GitHub counts characters, so this is never too many
MAX_OUTPUT = 65_535  # bytes of a check run's output summary or text
_CUT = "\n\n…(cut to fit GitHub's size limit)"
_COMMENTED = {
    "issues": {"opened", "reopened"},
    "pull_request": {"opened", "reopened"},
    "issue_comment": {"created"},
}
_CHECKED = {"opened", "reopened", "synchronize"}
_SEARCH_MARGIN = timedelta(minutes=5)


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Post the reply once (comment or review reply), and the check run where it applies."""
    if not is_configured(run.services):
        return await log_delivery(event, reply, run)
    if event.action in _COMMENTED.get(event.name, set()) or is_review_comment(event):
        await _comment_once(event, reply, run)
    if event.name == "pull_request" and event.action in _CHECKED:
        await _check_run_once(event, reply, run)


def fit(text: str, limit: int, *, tail: str = "") -> str:
    """``text`` + ``tail`` in at most ``limit`` UTF-8 bytes; a cut text says it was cut."""
    room = limit - len(tail.encode())
    if len(text.encode()) <= room:
        return text + tail
    cut = text.encode()[: room - len(_CUT.encode())].decode("utf-8", "ignore")
    return cut.rstrip() + _CUT + tail


async def _comment_once(event: Event, reply: Reply, run: Run) -> None:
    marker = ReplyMarker.for_run(run)
    if (await marker.load()).get("github_comment"):
        return  # an earlier attempt posted it
    installation = installation_id(event)
    found = None
    if run.attempt > 1:
        found = await call_as(run.services, installation, _find_comment, event, run.job_id)
    if found is None:
        body = fit(reply.text, MAX_COMMENT, tail="\n\n" + hidden_marker(run.job_id))
        found = await call_as(
            run.services, installation, _post_comment, event, body, deadline=run.deadline, idempotent=False
        )
    await marker.note(github_comment=found)


async def _check_run_once(event: Event, reply: Reply, run: Run) -> None:
    if not run.services.settings.github.is_app:
        run.log.info("no check run: check runs need a GitHub App installation token, not GITHUB_TOKEN")
        return
    marker = ReplyMarker.for_run(run)
    if (await marker.load()).get("github_check_run"):
        return
    check_id = await call_as(
        run.services,
        installation_id(event),
        _create_check_run,
        event,
        reply,
        run.job_id,
        deadline=run.deadline,
    )
    await marker.note(github_check_run=check_id)


def _post_comment(client: github.Github, event: Event, body: str) -> int:
    target = repo(client, str(repository(event.payload)))
    number = int(number_of(event.payload) or 0)
    if is_review_comment(event):
        comment = as_dict(event.payload.get("comment"))
        thread = int(comment.get("in_reply_to_id") or comment["id"])  # replies go to the thread's root
        return int(target.get_pull(number).create_review_comment_reply(thread, body).id)
    return int(target.get_issue(number).create_comment(body).id)


def _find_comment(client: github.Github, event: Event, job_id: str) -> int | None:
    """The id of a comment carrying this delivery's marker, made since the delivery arrived."""
    target = repo(client, str(repository(event.payload)))
    number = int(number_of(event.payload) or 0)
    since = datetime.fromisoformat(event.received_at) - _SEARCH_MARGIN
    if is_review_comment(event):
        comments: Any = target.get_pull(number).get_review_comments(since=since)
    else:
        comments = target.get_issue(number).get_comments(since=since)
    tag = hidden_marker(job_id)
    return next((int(c.id) for c in comments if tag in (c.body or "")), None)


def _create_check_run(client: github.Github, event: Event, reply: Reply, job_id: str) -> int:
    title = (reply.text.strip().splitlines() or ["Triage"])[0].strip("*# ")[:200]
    run = repo(client, str(repository(event.payload))).create_check_run(
        name=CHECK_RUN_NAME,
        head_sha=str(head_sha(event.payload)),
        external_id=job_id,
        status="completed",
        conclusion="neutral",
        output={"title": title or "Triage", "summary": fit(reply.text, MAX_OUTPUT) or "(no summary)"},
    )
    return int(run.id)
