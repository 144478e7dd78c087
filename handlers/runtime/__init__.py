"""The worker runtime: many agent runs per process on RQ's job model.

``worker`` runs the asyncio loop (take jobs, run them, drain on SIGTERM); ``ledger`` does every
Redis transition of a job (claim, start, finish, retry, requeue) with RQ's own ``Job``,
``Execution`` and registries; ``upkeep`` holds what runs on a timer (heartbeats, the reaper,
moving due retries, unsticking sessions); ``context`` is what a running job function sees;
``scripts`` holds the Lua that makes claims, hand-offs and reaping atomic; ``commands`` listens
for cancellation and RQ's worker commands; ``steering`` routes follow-ups when they are taken
and fills the mailboxes of running runs.
"""

from handlers.runtime.commands import cancel_run
from handlers.runtime.worker import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions", "cancel_run"]
