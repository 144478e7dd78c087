"""The agent protocol: ``async def agent(event, run) -> Reply`` (or a plain ``def``).

An agent gets the ``Event`` (what happened, pulled out of the envelope by the platform module)
and the ``Run`` (the session history, ``progress``, ``stream``, the deadline, the cancellation
signal, a logger bound to the run, the follow-ups people send while it works and ``ask``) and
returns a ``Reply``. The runtime enforces the deadline and cancellation; a synchronous agent runs in a
thread and should poll ``run.cancelled``.

Agents are named by ``GATEWAY_AGENT``: a built-in name (``triage``, ``llm``) or
``package.module:callable``. ``load_agent`` checks the name at worker start.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from handlers.errors import AgentLoadError, RunCancelled
from handlers.messages import Mailbox, Message

if TYPE_CHECKING:
    from handlers.services import Services

__all__ = [
    "BUILTIN_AGENTS",
    "Agent",
    "Event",
    "Message",
    "Reply",
    "Run",
    "Turn",
    "is_async_agent",
    "load_agent",
]

Ask = Callable[[str, float], Awaitable["Message | None"]]
"""Posts a question into the run's conversation and waits for the answer (``handlers.followups``)."""

BUILTIN_AGENTS: dict[str, str] = {
    "triage": "handlers.agents.triage:agent",
    "llm": "handlers.agents.llm:agent",
}


@dataclass(frozen=True)
class Event:
    """One delivery as the agent sees it; the platform module fills it from the envelope.

    ``name``/``action`` are the envelope's ``event``/``action``; ``actor`` is who did it,
    ``subject`` the object it happened to (``org/repo#12``, a Slack thread, a customer),
    ``title`` and ``text`` the human words, when there are any. ``facts`` is what the platform
    module fetched through the platform's API before the run (current object state, PR files,
    queue figures), JSON-safe, so an agent stays a pure function of the event and its history.
    """

    platform: str
    delivery_id: str
    name: str
    action: str | None
    received_at: str
    session_key: str
    actor: str | None = None
    subject: str | None = None
    title: str | None = None
    text: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict, repr=False)
    facts: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any], *, session_key: str, **fields: Any) -> Event:
        """An event with the envelope's identity, payload and meta, plus the platform's ``fields``."""
        return cls(
            platform=envelope["platform"],
            delivery_id=envelope["delivery_id"],
            name=envelope["event"],
            action=envelope["action"],
            received_at=envelope["received_at"],
            session_key=session_key,
            payload=envelope["payload"],
            meta=envelope["meta"],
            **fields,
        )


@dataclass(frozen=True)
class Turn:
    """One entry of a session's history: what was asked (``user``) or answered (``assistant``)."""

    role: Literal["user", "assistant"]
    text: str
    at: str
    delivery_id: str


@dataclass(frozen=True)
class Reply:
    """What an agent returns: the text to post, plus optional structured data (JSON-safe).

    ``text`` is Markdown, posted as text: platforms escape what could act on its own (in Slack a
    ``<!channel>`` in it pings nobody, ``<@U1>`` mentions nobody, links show their address), since
    an agent's words may repeat whatever the issue or thread it read said. What should act is
    asked for in ``data``, per platform:

    - ``data["slack"]``: ``mentions`` (user ids ``U…``/``W…``, user-group ids ``S…``), ``notify``
      (``"here"``, ``"channel"`` or ``"everyone"``), ``links`` (``[{"url", "text"}]``) and
      ``blocks`` (Block Kit, sent when within Slack's limits; the text is their fallback). The
      earlier ``data["slack_blocks"]`` still works. Rendered by ``handlers.slack.render``.
    - ``data["llm"]``: the ``llm`` agent's accounting (model, steps, tokens), kept in the run record.
    """

    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Run:
    """The agent's view of its run. Thread-safe: a synchronous agent may use it from its thread.

    ``progress(text)`` stores a progress message in the run record and shows it on the
    platform. ``stream(text)`` appends answer text as the agent produces it (a model's tokens);
    the platform shows it as it comes (Slack streams it into the answer's message), coalesced
    and throttled, and ``streamed`` is all of it so far. Streaming is optional and never replaces
    the ``Reply``: the reply the agent returns is the answer of record, posted over (or after)
    what was streamed, so an agent may stream text it later drops. Text streamed once the run is
    cancelled or timed out is ignored.

    ``cancelled`` turns true when the run is cancelled or its deadline passes; async agents are
    also interrupted with ``asyncio.CancelledError``. ``services`` is the worker's
    settings and shared clients (``handlers.services``), for agents that read a platform
    themselves, as the ``llm`` agent's tools do.

    Follow-ups (``handlers.messages``): ``await next_message(timeout)`` waits for the next one,
    ``pending_messages()`` takes those already received without waiting (usable from a
    synchronous agent), ``await ask(question, timeout)`` posts a question into the conversation
    and waits for the next follow-up. A follow-up the agent never takes runs as an event of its
    own after this run ends.
    """

    def __init__(
        self,
        *,
        job_id: str,
        delivery_id: str,
        attempt: int,
        history: tuple[Turn, ...],
        deadline: float,
        log: logging.LoggerAdapter[logging.Logger],
        on_progress: Callable[[str], object],
        services: Services,
        mailbox: Mailbox | None = None,
        on_stream: Callable[[str], object] | None = None,
    ) -> None:
        self.job_id = job_id
        self.delivery_id = delivery_id
        self.attempt = attempt
        self.history = history
        self.deadline = deadline
        self.log = log
        self._on_progress = on_progress
        self.services = services
        self._cancel = threading.Event()
        self._messages: list[str] = []
        self._lock = threading.Lock()
        self._mailbox = mailbox if mailbox is not None else Mailbox()
        self._ask: Ask | None = None
        self._on_stream = on_stream
        self._streamed: list[str] = []

    def progress(self, text: str) -> None:
        """Record a progress message (kept in order, also passed on as partial output on timeout)."""
        with self._lock:
            self._messages.append(text)
        self._on_progress(text)

    def stream(self, text: str) -> None:
        """Append ``text`` to the answer being streamed; returns at once, from any thread.

        Ignored when ``text`` is empty or the run is cancelled. The platform gets it coalesced
        (``WorkerPlatform.on_stream``); the returned ``Reply`` stays the answer of record.
        """
        if not text or self._cancel.is_set():
            return
        with self._lock:  # held while handing on, so the relay sees pieces in ``streamed`` order
            self._streamed.append(text)
            if self._on_stream is not None:
                self._on_stream(text)

    @property
    def streamed(self) -> str:
        """Everything streamed so far, in order (``""`` when the agent streamed nothing)."""
        with self._lock:
            return "".join(self._streamed)

    @property
    def messages(self) -> tuple[str, ...]:
        """Progress messages so far, oldest first."""
        with self._lock:
            return tuple(self._messages)

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.time())

    @property
    def cancelled(self) -> bool:
        """True once the run is cancelled or timed out: stop as soon as you can."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``RunCancelled`` if the run was cancelled; handy in synchronous loops."""
        if self._cancel.is_set():
            raise RunCancelled(self.job_id)

    def cancel(self) -> None:
        """Set the cancellation signal (the runtime calls this; agents only read it)."""
        self._cancel.set()
        self._mailbox.close()

    async def next_message(self, timeout: float | None = None) -> Message | None:  # noqa: ASYNC109 - the agent API
        """The next follow-up of this conversation, oldest first.

        Waits up to ``timeout`` s (``None``: as long as the run may go on); ``None`` when that
        time passes, the deadline comes or the run is stopping.
        """
        if self.cancelled:
            return self._mailbox.take_next()
        limit = self.remaining if timeout is None else min(max(0.0, timeout), self.remaining)
        return await self._mailbox.next(limit)

    def pending_messages(self) -> list[Message]:
        """The follow-ups received and not read yet, oldest first, without waiting; they count as read."""
        return self._mailbox.take_pending()

    @property
    def read_messages(self) -> tuple[Message, ...]:
        """The follow-ups this run has read so far, oldest first."""
        return self._mailbox.taken()

    async def ask(self, question: str, timeout: float) -> Message | None:  # noqa: ASYNC109 - the agent API
        """Post ``question`` into the conversation (a Slack thread reply, a GitHub comment) and
        wait up to ``timeout`` s, within the deadline, for the next follow-up.

        Returns ``None`` when nobody answered in time, the run is stopping, or the platform has
        no conversation to ask in (Stripe, the runs API). A follow-up that was already waiting
        is returned at once: take ``pending_messages()`` first to wait only for new ones.
        """
        if self.cancelled:
            return None
        if self._ask is None:
            self.log.info("cannot ask: this run has no conversation to post in")
            return None
        return await self._ask(question, timeout)

    def count_read(self, count: int) -> None:
        """Count the first ``count`` follow-ups as read (the pipeline calls this when an earlier
        attempt already answered with them; agents do not)."""
        self._mailbox.count_read(count)

    def can_ask(self, ask: Ask) -> None:
        """Let ``ask(question, timeout)`` post questions into the run's conversation and wait for
        the answer (the pipeline sets it)."""
        self._ask = ask


class Agent(Protocol):
    """``agent(event, run) -> Reply``, as a coroutine function or a plain function."""

    def __call__(self, event: Event, run: Run, /) -> Awaitable[Reply] | Reply:
        """Handle one event and return the reply to post."""


def load_agent(spec: str) -> Agent:
    """Import and check the agent ``spec`` names; raise ``AgentLoadError`` saying why not."""
    target = _resolve_builtin(spec)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise AgentLoadError(spec, "must be triage, llm or package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentLoadError(spec, f"cannot import {module_name}: {exc}") from None
    agent = getattr(module, attribute, None)
    if agent is None:
        raise AgentLoadError(spec, f"{module_name} has no attribute {attribute!r}")
    _check_callable(spec, agent)
    return agent  # type: ignore[no-any-return]


def is_async_agent(agent: Agent) -> bool:
    """True for coroutine functions (and objects whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__)


def _resolve_builtin(spec: str) -> str:
    if spec not in BUILTIN_AGENTS:
        return spec
    return BUILTIN_AGENTS[spec]


def _check_callable(spec: str, agent: object) -> None:
    if not callable(agent):
        raise AgentLoadError(spec, f"{type(agent).__name__} object is not callable")
    try:
        inspect.signature(agent).bind(object(), object())
    except TypeError:
        raise AgentLoadError(spec, "must accept two positional arguments: (event, run)") from None
    except ValueError:
        return  # builtins without a signature: trust them
