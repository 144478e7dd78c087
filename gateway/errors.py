"""The ingress exception tree; ``app.py`` maps each branch to one HTTP status.

GatewayError
├── ConfigError              settings missing or contradictory (start-up stops)
├── UnknownPlatform          404: no such platform, or it is not configured
├── BodyTooLarge             413: body over the platform's cap
├── Unauthenticated          401: generic body, reason only in the log
│   ├── InvalidSignature     missing/bad signature headers, no secret matches
│   └── StaleTimestamp       timestamp outside the tolerance window (either way)
├── MalformedPayload         400: signature fine, body unusable (bad JSON, missing ids)
├── QueueUnavailable         503: could not claim and queue durably; nothing was claimed
├── NotAuthorized            401: the runs API or console without a valid token (or with one in the URL)
├── Forbidden                403: a console action whose Origin is not the console's own
├── NotFound                 404: no such run (the runs API)
├── Conflict                 409: the run is not in a state the action applies to
├── BadRequest               400: an API request's parameters or body cannot be used
├── UsageError               a command's arguments or inputs cannot be used (exit 2)
├── StackFailed              ``gateway dev``: a child died or could not start (exit 1)
├── SetupFailed              ``gateway setup``: the platform refused, or nothing could be written (exit 1)
└── StartAborted             ``gateway dev``: Ctrl-C or SIGTERM arrived while the stack was starting
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotAuthorized",
    "NotFound",
    "BodyTooLarge",
    "ConfigError",
    "GatewayError",
    "InvalidSignature",
    "MalformedPayload",
    "QueueUnavailable",
    "SetupFailed",
    "StackFailed",
    "StaleTimestamp",
    "StartAborted",
    "Unauthenticated",
    "UnknownPlatform",
    "UsageError",
]


class GatewayError(Exception):
    """Root of every error the ingress raises on purpose."""


class ConfigError(GatewayError):
    """A setting is missing, malformed or contradicts another; names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(variable, problem)
        self.variable = variable
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.variable}: {self.problem}"


class UnknownPlatform(GatewayError):
    """The route names a platform that does not exist or has no signing secret set."""

    def __init__(self, platform: str) -> None:
        super().__init__(platform)
        self.platform = platform

    def __str__(self) -> str:
        return f"platform {self.platform!r} is not configured"


class BodyTooLarge(GatewayError):
    """The request body is larger than the platform's cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"body larger than {self.limit} bytes"


class Unauthenticated(GatewayError):
    """The request cannot be proven to come from the platform.

    ``reason`` is safe to log: it never contains a secret or a signature. ``hint`` names the
    setting an operator should check.
    """

    def __init__(self, reason: str, *, hint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.reason} (check {self.hint})" if self.hint else self.reason


class InvalidSignature(Unauthenticated):
    """Signature headers are missing or malformed, or no configured secret produces them."""


class StaleTimestamp(Unauthenticated):
    """The signed timestamp is outside the accepted window, in the past or the future."""


class MalformedPayload(GatewayError):
    """The signature is valid but the body cannot be used (bad JSON, missing ids)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class QueueUnavailable(GatewayError):
    """Redis did not confirm the claim and enqueue; the platform should retry."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause

    def __str__(self) -> str:
        return f"could not queue durably: {self.cause}"


class UsageError(GatewayError):
    """A command-line argument, path or payload that cannot be used; the message says which and why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return self.problem


class StackFailed(GatewayError):
    """``gateway dev``: a child process exited, did not become ready, or its port is taken."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return self.problem


class SetupFailed(GatewayError):
    """``gateway setup``: the platform could not be reached or refused, or the settings could not be
    written. ``final`` is False when trying again may work (the platform did not answer)."""

    def __init__(self, problem: str, *, final: bool = True) -> None:
        super().__init__(problem)
        self.problem = problem
        self.final = final

    def __str__(self) -> str:
        return self.problem


class StartAborted(GatewayError):
    """``gateway dev``: a stop was requested while the stack was still starting."""


class _ApiError(GatewayError):
    """An API refusal whose ``detail`` is safe to show the caller (it never holds a token)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class NotAuthorized(_ApiError):
    """No valid ``Authorization: Bearer`` token (or console session), or a token in the query string."""


class Forbidden(_ApiError):
    """A cookie-authenticated action from another origin (the console's POSTs are Origin-checked)."""


class NotFound(_ApiError):
    """The run (or route) does not exist."""


class Conflict(_ApiError):
    """The run is not in a state the action applies to (cancel an ended run, retry a running one)."""


class BadRequest(_ApiError):
    """The request's parameters or JSON body cannot be used; ``detail`` says which and why."""
