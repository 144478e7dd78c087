"""Talking with a running agent on GitHub: ``/stop`` by people who can write, comments into the thread.

- ``may_stop``: only a user with write (or admin) permission on the repository may stop a run,
  as GitHub's collaborator permission endpoint says
  (``GET /repos/{owner}/{repo}/collaborators/{username}/permission``; ``maintain`` is reported
  as ``write``, ``triage`` as ``read``). Without a token or App nothing can be checked, so
  nobody may.
- ``say``: one comment on the issue or pull request (``run.ask`` questions, "busy"), once per
  key; it carries a hidden marker of its own (``<!-- gateway:delivery=<job>:<key> -->``), so it
  is ours (never a follow-up) and never taken for the delivery's reply.
"""

from __future__ import annotations

import github

from handlers.agent import Event, Run
from handlers.github.client import call_as, is_configured
from handlers.github.facts import repo
from handlers.github.payload import installation_id, number_of, repository
from handlers.github.reply import MAX_COMMENT, fit
from handlers.state.replies import ReplyMarker, hidden_marker

__all__ = ["WRITERS", "may_stop", "say"]

WRITERS = frozenset({"admin", "write"})
"""Permissions (GitHub's legacy names) that may stop a run."""


async def may_stop(event: Event, run: Run) -> bool:
    """Whether the sender can write to the event's repository."""
    full_name, login = repository(event.payload), event.actor
    if not (full_name and login and is_configured(run.services)):
        run.log.info("cannot check who may stop runs: no GitHub token or App is set")
        return False
    permission = await call_as(
        run.services, installation_id(event), _permission, full_name, login, deadline=run.deadline
    )
    return permission in WRITERS


async def say(event: Event, text: str, key: str, run: Run) -> bool:
    """Comment ``text`` on the issue or pull request, once per ``key``; False where it cannot."""
    full_name, number = repository(event.payload), number_of(event.payload)
    if not (full_name and number is not None and is_configured(run.services)):
        return False
    marker, field = ReplyMarker.for_run(run), f"said_{key}"
    if (await marker.load()).get(field):
        return True  # an earlier attempt posted it
    body = fit(text, MAX_COMMENT, tail="\n\n" + hidden_marker(f"{run.job_id}:{key}"))
    comment_id = await call_as(
        run.services,
        installation_id(event),
        _comment,
        full_name,
        number,
        body,
        deadline=run.deadline,
        idempotent=False,
    )
    await marker.note(**{field: comment_id})
    return True


def _permission(client: github.Github, full_name: str, login: str) -> str:
    return repo(client, full_name).get_collaborator_permission(login)


def _comment(client: github.Github, full_name: str, number: int, body: str) -> int:
    return int(repo(client, full_name).get_issue(number).create_comment(body).id)
