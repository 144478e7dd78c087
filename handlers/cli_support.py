"""What the worker-side commands share: exit codes, reading the settings, reaching Redis, errors.

Exit codes: 0 ok, 1 runtime failure (Redis unreachable, unknown id), 2 usage or configuration
error, printed as ``error: <VARIABLE>: <problem>``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import redis

from gateway.errors import ConfigError
from handlers.config import WorkerSettings
from handlers.errors import UsageError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "Action", "fail", "run_command"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

Action = Callable[[argparse.Namespace, WorkerSettings, redis.Redis], int]
"""A command's work once its arguments are parsed and the settings read."""


def run_command(parser: argparse.ArgumentParser, argv: list[str], action: Action) -> int:
    """Parse ``argv``, read the settings and run ``action`` against Redis, with our exit codes."""
    try:
        args = parser.parse_args(argv)
        settings = WorkerSettings.from_environ()
        settings.apply_retention()
    except (ConfigError, UsageError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        return action(args, settings, redis.Redis.from_url(settings.redis_url))
    except redis.RedisError as exc:
        return fail(f"REDIS_URL: {type(exc).__name__}: {exc}", EXIT_FAILURE)


def fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
