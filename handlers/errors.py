"""The worker-side exception tree. ``retryable`` is what the retry policy reads first.

HandlerError                 root; ``retryable`` says whether another attempt may succeed
├── TransientError           network trouble, timeouts, HTTP 429 / 5xx (retry_after honoured)
├── PermanentError           auth, not found, bad request, agent bugs: fails at once
│   └── ConversationRefused  the model server refused this conversation for good (a parse error)
│       └── ContextExceeded  the conversation no longer fits the model's context
├── RunTimedOut              the run passed its deadline; ends as timed_out, not retried
├── RunCancelled             someone cancelled the run; ends as cancelled, not retried
├── LeaseLost                this worker no longer owns the job (it was reaped); drop it
├── AgentLoadError           GATEWAY_AGENT names nothing usable; the worker exits with 2
├── UsageError               a worker-side command's arguments cannot be used; exit 2
├── ToolError                a tool cannot do what the model asked; the message goes to the model
├── UnusableAnswer           the model server answered with nothing the agent can use
└── DeadlineReached          the run's time ran out before the model answered
"""

from __future__ import annotations

__all__ = [
    "AgentLoadError",
    "ContextExceeded",
    "ConversationRefused",
    "DeadlineReached",
    "HandlerError",
    "LeaseLost",
    "PermanentError",
    "RateLimited",
    "RunCancelled",
    "RunTimedOut",
    "ToolError",
    "TransientError",
    "UnusableAnswer",
    "UsageError",
]


class HandlerError(Exception):
    """Root of every error the worker side raises on purpose."""

    retryable: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class TransientError(HandlerError):
    """Another attempt may succeed. ``retry_after`` (seconds) is the platform's own hint, if any."""

    retryable = True

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after

    def __str__(self) -> str:
        hint = f" (retry after {self.retry_after:g}s)" if self.retry_after is not None else ""
        return f"{self.reason}{hint}"


class RateLimited(TransientError):
    """The platform refused the call for its rate limit (HTTP 429): nothing was applied, so even a
    call that is not idempotent may be made again, or another way taken at once."""


class PermanentError(HandlerError):
    """Retrying cannot help: bad credentials, a missing object, a rejected request, a bug."""


class ConversationRefused(PermanentError):
    """The model server refused this exact conversation for a reason another attempt cannot change
    (it could not parse what it was sent); the run answers with what it has instead."""


class ContextExceeded(ConversationRefused):
    """The model server says the conversation no longer fits its context window."""


class RunTimedOut(HandlerError):
    """The run passed its deadline; ``partial`` holds the progress messages it had produced."""

    def __init__(self, deadline: float, partial: tuple[str, ...] = ()) -> None:
        super().__init__(f"run passed its {deadline:g}s deadline")
        self.deadline = deadline
        self.partial = partial


class RunCancelled(HandlerError):
    """The run was cancelled by id (``gateway runs cancel``) or by RQ's stop-job command."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"run {job_id} was cancelled")
        self.job_id = job_id


class LeaseLost(HandlerError):
    """This worker's claim on the job was taken away (it was presumed dead and reaped)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lost the claim on {job_id}; another worker runs it")
        self.job_id = job_id


class AgentLoadError(HandlerError):
    """``GATEWAY_AGENT`` does not name a usable agent; ``spec`` is what was given."""

    def __init__(self, spec: str, problem: str) -> None:
        super().__init__(problem)
        self.spec = spec
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.spec!r}: {self.problem}"


class UsageError(HandlerError):
    """A worker-side command (``gateway worker``, ``failed``, ``runs``) was given unusable arguments."""


class ToolError(HandlerError):
    """A tool cannot do what was asked (bad arguments, not found); the message goes to the model."""


class UnusableAnswer(HandlerError):
    """The model server answered, but not with something the agent can use (no choices, broken JSON)."""


class DeadlineReached(HandlerError):
    """The run's wall-clock budget ran out before the model answered."""

    def __init__(self, reason: str = "the run's deadline came before the model answered") -> None:
        super().__init__(reason)
