"""The gateway worker: one asyncio process running up to ``concurrency`` jobs at once.

Loop: wait for a free slot, claim the next runnable job (``Ledger.take``, in an I/O thread),
start a task for it. Each task marks the job started, awaits the job function with its
``RunContext`` set, and ends the claim (``Finisher``): succeeded, failed / timed out / cancelled,
retried later under the retry policy, or requeued when the worker drains. Timers renew the
lease and RQ heartbeats, reap dead workers, move due retries and unstick sessions.

Follow-ups (``steering``): every job taken is routed by ``GATEWAY_FOLLOWUPS``; while every
slot is busy, the loop still routes the follow-ups at the heads of the queues every
``FOLLOWUP_POLL`` s. A listener fills the mailboxes of running runs as their inboxes grow.

Signals: the first SIGTERM/SIGINT (or RQ's shutdown command) stops taking jobs, lets running
ones finish for ``grace`` seconds, then stops and requeues what is left. A second signal
requeues everything still held at once and exits with 1.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from handlers.agent import Agent
from handlers.retry import RetryPolicy
from handlers.runtime.commands import CommandListener
from handlers.runtime.finish import Finisher
from handlers.runtime.ledger import Claim, Ledger, SessionKey
from handlers.runtime.runner import Active, Runner
from handlers.runtime.steering import FollowUpOf, InboxListener, Router, load
from handlers.runtime.upkeep import Upkeep
from handlers.services import Services

T = TypeVar("T")
_TAKE_WAIT = 1.0
FOLLOWUP_POLL = 0.1
"""Seconds between passes over the queue heads for follow-ups while every slot is busy."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs; the CLI fills it from flags and ``Settings``."""

    queues: tuple[str, ...]
    concurrency: int = 100
    burst: bool = False
    deadline: float = 600.0
    grace: float = 30.0
    heartbeat_interval: float = 5.0
    lease_ttl: float = 20.0
    reap_interval: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str | None = None
    io_threads: int = 16


class Worker:
    """Runs jobs from ``options.queues`` until stopped (or, with ``burst``, until none are left).

    ``services`` (the settings and shared clients, built once at start) reaches every run;
    ``session_key`` names the session of a queued envelope (``handlers.registry.session_key``);
    ``followup_of`` says which envelopes are follow-ups (``handlers.registry.followup`` with the
    settings; ``None``: none are, every delivery queues as before).
    """

    def __init__(
        self,
        services: Services,
        agent: Agent,
        options: WorkerOptions,
        *,
        session_key: SessionKey,
        followup_of: FollowUpOf | None = None,
    ) -> None:
        self.options = options
        self.session_key = session_key
        self.connection = redis.Redis.from_url(services.settings.redis_url, health_check_interval=30)
        self.name = options.name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        queues = [
            Queue(name, connection=self.connection, serializer=JSONSerializer) for name in options.queues
        ]
        self.rq_worker = BaseWorker(
            queues,
            name=self.name,
            connection=self.connection,
            worker_ttl=int(options.lease_ttl) + 1,
            serializer=JSONSerializer,
        )
        execution_ttl = max(60, int(options.lease_ttl * 3 + options.reap_interval * 2))
        policy = services.settings.followups.policy
        self.router = Router(self.connection, policy=policy, followup_of=followup_of) if followup_of else None
        self.ledger = Ledger(
            self.connection,
            worker_name=self.name,
            queues=queues,
            execution_ttl=execution_ttl,
            session_key=session_key,
            router=self.router,
        )
        finisher = Finisher(self.connection, worker_name=self.name, worker_key=self.rq_worker.key)
        self.upkeep = Upkeep(
            self.connection,
            rq_worker=self.rq_worker,
            lease_ttl=options.lease_ttl,
            execution_ttl=execution_ttl,
        )
        self._io = ThreadPoolExecutor(options.io_threads, thread_name_prefix="gateway-io")
        self._agent_threads = ThreadPoolExecutor(options.concurrency, thread_name_prefix="gateway-agent")
        self.runner = Runner(
            agent=agent,
            services=services,
            ledger=self.ledger,
            finisher=finisher,
            retry=options.retry,
            deadline=options.deadline,
            io=self._call,
            agent_executor=self._agent_threads,
        )
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()  # the same, readable from the I/O threads
        self._signals = 0
        self._loads: set[asyncio.Future[int]] = set()

    def run(self) -> int:
        """Work until stopped; returns the process exit code."""
        return asyncio.run(self._main())

    async def _main(self) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal)
        await self._call(self.upkeep.register)
        await self._call(self.upkeep.reap)  # recover dead workers' jobs before taking new ones
        listener = CommandListener(
            self.connection,
            self.name,
            on_stop=lambda job_id: loop.call_soon_threadsafe(self.runner.stop, job_id),
            on_shutdown=lambda: loop.call_soon_threadsafe(self._on_signal),
        )
        listener.start()
        inboxes = InboxListener(
            self.connection, on_message=lambda job_id: loop.call_soon_threadsafe(self._load_inbox, job_id)
        )
        inboxes.start()
        timers = [asyncio.create_task(self._every(interval, action)) for interval, action in self._timers()]
        try:
            await self._take_loop()
            await self.runner.drain(self.options.grace)
        finally:
            for timer in timers:
                timer.cancel()
            await asyncio.to_thread(listener.halt)
            await asyncio.to_thread(inboxes.halt)
            await self._call(self._leave)
            self._io.shutdown(wait=False, cancel_futures=True)
            self._agent_threads.shutdown(wait=False, cancel_futures=True)
        return 0

    async def _take_loop(self) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        while await self._acquire(slots):
            try:
                claim = await self._call(self.ledger.take, _TAKE_WAIT, self._stopping)
            except redis.RedisError:
                self.runner.log.warning("could not take a job; retrying", exc_info=True)
                slots.release()
                await asyncio.sleep(1.0)
                continue
            if claim is None:
                slots.release()
                if (
                    self.options.burst
                    and not self.runner.active
                    and await self._call(self.ledger.queued_work) == 0
                ):
                    return
                continue
            self.runner.launch(claim, on_done=slots.release)

    async def _acquire(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a free slot; False once the worker is stopping (the slot is not kept).

        While waiting, follow-ups at the queue heads are still routed (they need no slot).
        """
        assert self._stop is not None
        if self._stop.is_set():
            return False
        acquire, stop = asyncio.ensure_future(slots.acquire()), asyncio.ensure_future(self._stop.wait())
        while True:
            done, _ = await asyncio.wait(
                {acquire, stop}, timeout=FOLLOWUP_POLL, return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                break
            await self._take_followups()
        stop.cancel()
        if not acquire.done():
            acquire.cancel()
            return False
        if self._stop.is_set():
            slots.release()
            return False
        return True

    async def _take_followups(self) -> None:
        if self.router is None or self._stopping.is_set():
            return
        try:
            claims = await self._call(self.ledger.take_followups)
        except redis.RedisError:
            self.runner.log.warning("could not route follow-ups; retrying", exc_info=True)
            return
        for claim in claims:
            self.runner.launch(claim, on_done=lambda: None)  # no agent runs: no slot is taken

    def _load_inbox(self, job_id: str) -> None:
        """On the loop: the inbox of ``job_id`` grew; load it if the run is here."""
        for claim in self.runner.claims():
            if claim.job_id == job_id:
                self._load_mailbox(claim)

    def _load_mailbox(self, claim: Claim) -> None:
        if self.router is None:
            return
        task = asyncio.ensure_future(self._call(load, self.router.inbox, claim.job_id, claim.mailbox))
        self._loads.add(task)
        task.add_done_callback(self._loaded)

    def _loaded(self, task: asyncio.Future[int]) -> None:
        self._loads.discard(task)
        if not task.cancelled() and isinstance(task.exception(), redis.RedisError):
            self.runner.log.warning("could not load follow-ups; the next heartbeat tries again")

    def _timers(self) -> list[tuple[float, Callable[[], Any]]]:
        return [
            (self.options.heartbeat_interval, self._heartbeat),
            (self.options.reap_interval, lambda: self._call(self._reap)),
            (1.0, lambda: self._call(self.upkeep.move_due_retries)),
        ]

    async def _heartbeat(self) -> None:
        if not await self._call(self.upkeep.heartbeat, self.runner.claims()):
            self.runner.log.error("this worker was presumed dead and its jobs requeued; dropping them")
            self.runner.stop_all("lease_lost")
            await self._call(self.upkeep.reregister)
        for job_id in await self._call(
            self.upkeep.cancel_requested, [c.job_id for c in self.runner.claims()]
        ):
            self.runner.stop(job_id)
        for claim in self.runner.claims():  # a pub/sub message may have been missed
            self._load_mailbox(claim)

    def _reap(self) -> None:
        self.upkeep.reap()
        self.upkeep.unstick_sessions()

    def _leave(self) -> None:
        # Anything still held here was neither finished nor requeued (e.g. Redis was down at
        # the end of a run): put it back before unregistering, so it is never stranded.
        self.upkeep.reap_worker(self.name, note=f"requeued: worker {self.name} stopped", force=True)
        self.upkeep.unregister()

    async def _every(self, interval: float, action: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except redis.RedisError:
                self.runner.log.warning("periodic task failed", exc_info=True)

    def _on_signal(self) -> None:
        assert self._stop is not None
        self._signals += 1
        if self._signals == 1:
            self.runner.log.info("stopping: no new jobs; running ones get %gs", self.options.grace)
            self._stop.set()
            self._stopping.set()
            return
        self.runner.log.warning("stopping now: requeueing every held job")
        try:
            self._leave()
        finally:
            os._exit(1)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking Redis work in the I/O threads."""
        loop = asyncio.get_running_loop()
        call = functools.partial(function, *args, **kwargs)
        return await loop.run_in_executor(self._io, contextvars.copy_context().run, call)


__all__ = ["Active", "Worker", "WorkerOptions"]
