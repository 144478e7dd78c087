"""GitHub on the worker side: every webhook event, run through the agent.

Session: one issue or pull request (repository id + number; issues and pull requests share
numbers in a repository); events without one (push, check suites) use the repository.

- ``payload``: the one reading of GitHub's payloads (repository, number, head, actor);
- ``facts``: the pull request and its files, or the issue and its labels, before the run;
- ``reply``: a comment, a review-thread reply and a check run after it, each posted once;
- ``client`` and ``auth``: PyGithub per token (personal, or App installation tokens) and its
  errors as ours;
- ``tools``: what the ``llm`` agent may read (issues, diffs, files);
- ``recover``: failed webhook deliveries found and redelivered (``gateway recover github``);
- ``conversation``: who may stop a run (``/stop``), comments into the thread (``run.ask``).

Follow-ups: new comments and reviews on the issue or pull request of a working run.

``handle`` is the job function the ingress names (``handlers.github.handle``).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers.github import client, conversation, facts, recover, reply, tools
from handlers.github.payload import followup, is_bot, is_ignored, session_key, to_event
from handlers.pipeline import WorkerPlatform, run_event
from handlers.services import Services

__all__ = ["PLATFORM", "handle", "session_key"]


def _missing_credentials(services: Services) -> str | None:
    return None if client.is_configured(services) else "GITHUB_TOKEN or a GitHub App is not set"


PLATFORM = WorkerPlatform(
    name="github",
    session_key=session_key,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=reply.deliver,
    is_configured=client.is_configured,
    enrich=facts.enrich,
    tools=tools.build,
    prompt=tools.PROMPT,
    missing_credentials=_missing_credentials,
    recover=recover.SWEEP,
    followup=followup,
    is_bot=is_bot,
    say=conversation.say,
    may_stop=conversation.may_stop,
    stop_hint="comment `/{word}`",
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.github.handle``: run the agent on one GitHub delivery."""
    return await run_event(PLATFORM, envelope)
