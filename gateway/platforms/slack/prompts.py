"""``SLACK_SUGGESTED_PROMPTS``: the prompts Slack offers when someone opens the app's agent container.

Both sides read it: ``gateway manifest slack`` writes them into the manifest
(``features.assistant_view.suggested_prompts``, the app's defaults), and the worker sets them on
every new assistant thread (``assistant.threads.setSuggestedPrompts``), so a change needs no new
manifest.

Format: prompts separated by ``|``; in each, the first ``=`` separates the title (the button
Slack shows) from the message (what it sends for the user), e.g.
``Summarize=Summarize this thread|Queue=status``. A prompt without ``=`` uses its text as both.
Unset or blank: ``DEFAULT``; ``off``: no suggested prompts.

Slack takes up to four prompts (``assistant.threads.setSuggestedPrompts``: "up to four suggested
prompts"), each with a ``title`` and a ``message``. Slack documents no length limit for either;
the limits here (``MAX_TITLE``, ``MAX_MESSAGE``) are the gateway's, to keep a prompt a button.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import ConfigError

__all__ = [
    "DEFAULT",
    "LIST_TITLE",
    "MAX_MESSAGE",
    "MAX_PROMPTS",
    "MAX_TITLE",
    "VARIABLE",
    "Prompt",
    "parse",
    "read",
    "to_setting",
]

VARIABLE = "SLACK_SUGGESTED_PROMPTS"
MAX_PROMPTS = 4
MAX_TITLE = 75
MAX_MESSAGE = 1000
LIST_TITLE = "Try asking"
"""The heading Slack shows above the prompts of a new assistant thread."""


@dataclass(frozen=True)
class Prompt:
    """One suggested prompt: the ``title`` shown, the ``message`` sent when it is picked."""

    title: str
    message: str

    def to_slack(self) -> dict[str, str]:
        """The prompt as Slack's manifest and ``setSuggestedPrompts`` take it."""
        return {"title": self.title, "message": self.message}


DEFAULT: tuple[Prompt, ...] = (
    Prompt("What can you do?", "What can you help me with?"),
    Prompt("Queue status", "status"),  # the agent's own command: the queue's figures
)


def read(environ: Mapping[str, str]) -> tuple[Prompt, ...]:
    """The prompts ``environ`` sets (``DEFAULT`` when unset); ``ConfigError`` naming the setting."""
    return parse(environ.get(VARIABLE))


def parse(value: str | None) -> tuple[Prompt, ...]:
    """``value`` in the setting's format as prompts; raises ``ConfigError`` naming ``VARIABLE``."""
    text = (value or "").strip()
    if not text:
        return DEFAULT
    if text.lower() == "off":
        return ()
    entries = text.split("|")
    if len(entries) > MAX_PROMPTS:
        raise ConfigError(
            VARIABLE, f"Slack takes at most {MAX_PROMPTS} suggested prompts, got {len(entries)}"
        )
    return tuple(_prompt(number, entry) for number, entry in enumerate(entries, start=1))


def to_setting(prompts: tuple[Prompt, ...]) -> str:
    """``prompts`` written back in the setting's format (``off`` for none)."""
    return "|".join(f"{p.title}={p.message}" for p in prompts) if prompts else "off"


def _prompt(number: int, entry: str) -> Prompt:
    title, sep, message = entry.partition("=")
    title, message = title.strip(), (message.strip() if sep else title.strip())
    if not title or not message:
        raise ConfigError(VARIABLE, f"prompt {number} needs a title and a message (title=message)")
    if len(title) > MAX_TITLE:
        raise ConfigError(
            VARIABLE, f"prompt {number}'s title has {len(title)} characters, at most {MAX_TITLE}"
        )
    if len(message) > MAX_MESSAGE:
        raise ConfigError(
            VARIABLE, f"prompt {number}'s message has {len(message)} characters, at most {MAX_MESSAGE}"
        )
    return Prompt(title, message)
