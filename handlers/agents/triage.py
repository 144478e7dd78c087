"""The ``triage`` agent: concrete replies without an LLM, from the event and its ``facts``.

A pure function of ``Event`` + history: every API read happened before the run, in the platform
module's ``enrich`` hook (see docs/replies.md for the facts each platform provides).

- Slack: ``help``, ``status`` (queue figures from ``facts["status"]``), else an echo of what it
  understood.
- GitHub: a pull request summary (files, additions/deletions, touched top-level directories) and
  an issue summary with suggested labels (keyword rules).
- Stripe: an alert for the object's current state (``handlers.agents.stripe_alert``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from handlers.agent import Event, Reply, Run
from handlers.agents.stripe_alert import stripe_alert
from handlers.slack.format import command_of

__all__ = [
    "HELP",
    "LABEL_RULES",
    "agent",
    "issue_summary",
    "pull_summary",
    "respond",
    "suggest_labels",
    "summarise",
    "touched_areas",
]

_QUOTE_LIMIT = 280
_MAX_FILES = 15
_PLATFORM_NAMES = {"slack": "Slack", "github": "GitHub", "stripe": "Stripe"}
# Keyword → label rules for issues, checked on whole words of the title and body.
LABEL_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    ("bug", frozenset({"bug", "crash", "crashes", "error", "errors", "exception", "broken"})),
    ("enhancement", frozenset({"feature", "request", "support", "enhancement", "proposal"})),
    ("documentation", frozenset({"docs", "doc", "documentation", "readme", "typo"})),
    ("question", frozenset({"question", "how", "why", "help"})),
)
HELP = (
    "I am the gateway's built-in triage bot. Mention me with:\n"
    "- `help`: this message\n"
    "- `status`: the queue (waiting, running, retrying, failed) and the live workers\n"
    "- anything else: I repeat what I understood, to check the wiring end to end"
)


async def agent(event: Event, run: Run) -> Reply:
    """Answer ``event``; mention earlier turns of the session."""
    return Reply(text=respond(event, earlier=len(run.history)))


def respond(event: Event, *, earlier: int = 0) -> str:
    """The reply text for ``event`` (what ``agent`` returns): the platform's answer, else a summary."""
    answer = _ANSWERS.get(event.platform)
    return answer(event, earlier) if answer is not None else summarise(event, earlier=earlier)


def summarise(event: Event, *, earlier: int = 0) -> str:
    """``"GitHub issues.opened by octocat on org/repo#1: “Title”. Body…"``."""
    what = event.name + (f".{event.action}" if event.action and event.action not in event.name else "")
    parts = [f"{_PLATFORM_NAMES.get(event.platform, event.platform)} {what}"]
    if event.actor:
        parts.append(f"by {event.actor}")
    if event.subject:
        parts.append(f"on {event.subject}")
    line = " ".join(parts)
    if event.title:
        line += f": “{event.title}”"
    line += "."
    if event.text:
        line += " " + _shorten(event.text)
    if earlier:
        line += f" ({earlier} earlier message{'s' if earlier != 1 else ''} in this conversation.)"
    return line


def suggest_labels(title: str | None, body: str | None) -> list[str]:
    """Labels whose keywords occur in ``title`` or ``body``, in rule order."""
    words = set(re.findall(r"[a-z]+", f"{title or ''} {body or ''}".lower()))
    return [label for label, keywords in LABEL_RULES if words & keywords]


def _slack(event: Event, earlier: int) -> str:
    command, rest = command_of(event.text)
    if command == "help":
        return HELP
    status = event.facts.get("status")
    if command == "status" and isinstance(status, Mapping):
        return _status_text(status)
    said = " ".join(f"{command} {rest}".split())
    understood = f"You said: “{_shorten(said)}”.\n" if said else ""
    return understood + "I understood: " + summarise(event, earlier=earlier) + "\nSay `help` for commands."


def _status_text(status: Mapping[str, Any]) -> str:
    return (
        f"*Queue*: {status.get('queued', 0)} waiting, {status.get('running', 0)} running, "
        f"{status.get('retrying', 0)} waiting to retry, {status.get('failed', 0)} failed. "
        f"*Workers*: {status.get('workers', 0)} live."
    )


def _github(event: Event, earlier: int) -> str:
    pull, issue = event.facts.get("pull"), event.facts.get("issue")
    if isinstance(pull, Mapping):
        return pull_summary(pull)
    if isinstance(issue, Mapping):
        return issue_summary(issue, event, earlier)
    return summarise(event, earlier=earlier)


def pull_summary(pull: Mapping[str, Any]) -> str:
    """Files changed, lines added/removed, top-level areas and the largest files of a pull request."""
    files: list[Mapping[str, Any]] = [f for f in pull.get("files") or [] if isinstance(f, Mapping)]
    count = int(pull.get("changed_files") or len(files))
    lines = [
        f"**Pull request #{pull.get('number')}: {pull.get('title') or '(no title)'}**"
        + (" (draft)" if pull.get("draft") else ""),
        f"{count} file{'s' if count != 1 else ''} changed, "
        f"+{pull.get('additions', 0)} −{pull.get('deletions', 0)}"
        + (f", `{pull.get('head')}` → `{pull.get('base')}`" if pull.get("head") else ""),
    ]
    areas = touched_areas(str(f.get("filename", "")) for f in files)
    if areas:
        lines.append("Areas: " + ", ".join(f"`{area}`" for area in areas))
    biggest = sorted(files, key=lambda f: -(int(f.get("additions", 0)) + int(f.get("deletions", 0))))
    for f in biggest[:_MAX_FILES]:
        lines.append(
            f"- `{f.get('filename')}` ({f.get('status')}, +{f.get('additions')} −{f.get('deletions')})"
        )
    if len(files) > _MAX_FILES:
        lines.append(f"- … and {len(files) - _MAX_FILES} more")
    return "\n".join(lines)


def touched_areas(filenames: Any) -> list[str]:
    """Top-level directories (``src/``) or root files, sorted and unique."""
    areas = {name.split("/", 1)[0] + "/" if "/" in name else name for name in filenames if name}
    return sorted(areas)


def issue_summary(issue: Mapping[str, Any], event: Event, earlier: int) -> str:
    """What the issue (or comment) is about and the labels the keyword rules suggest."""
    lines = [summarise(event, earlier=earlier)]
    current = {str(label) for label in issue.get("labels") or []}
    suggested = [label for label in suggest_labels(issue.get("title"), event.text) if label not in current]
    if suggested:
        lines.append("Suggested labels: " + ", ".join(f"`{label}`" for label in suggested))
    elif current:
        lines.append("Labels: " + ", ".join(f"`{label}`" for label in sorted(current)))
    return "\n\n".join(lines)


def _stripe(event: Event, earlier: int) -> str:
    return stripe_alert(event) or summarise(event)


_ANSWERS: dict[str, Callable[[Event, int], str]] = {"slack": _slack, "github": _github, "stripe": _stripe}
"""What triage answers on each platform it knows; any other gets the summary."""


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUOTE_LIMIT else flat[: _QUOTE_LIMIT - 1].rstrip() + "…"
