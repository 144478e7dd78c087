"""The gateway worker: one asyncio process running up to ``concurrency`` jobs at once.

Loop: wait for a free slot, claim the next runnable job (``Ledger.take``, in an I/O thread),
start a task for it. Each task marks the job started, awaits the job function with its
``RunContext`` set, and ends the claim (``Finisher``): succeeded, failed / timed out / cancelled,
retried later under the retry policy, or requeued when the worker drains. Timers renew the
lease and RQ heartbeats, reap dead workers, move due retries and unstick sessions, and (every
``recover_interval`` seconds, one sweeper at a time across all workers) sweep the platforms for
deliveries they could not get to us (``handlers.recover``).

Follow-ups (``steering``): every job taken is routed by ``GATEWAY_FOLLOWUPS``; while every
slot is busy, the loop still routes the follow-ups at the heads of the queues every
``FOLLOWUP_POLL`` s. The command listener also hears which runs' inboxes grew, and the loop
fills those runs' mailboxes.

Signals: the first SIGTERM/SIGINT (or RQ's shutdown command) stops taking jobs, lets running
ones finish for ``grace`` seconds, then stops and requeues what is left. A second signal
requeues everything still held at once and exits with 1.

Redis outages: the worker never exits for one. Its Redis calls fail fast (``REDIS_RETRY``) and
each loop waits and tries again: taking jobs, the timers, and every run's ending (see
``runner``). After a failed take, and every reap interval, the take loop hands back claims it
holds but does not run (``Upkeep.release_strays``): a claim whose answer the outage swallowed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from handlers import alerts
from handlers.agent import Agent
from handlers.recover import Sweep, sweep_due
from handlers.retry import RetryPolicy, describe
from handlers.runtime.commands import CommandListener
from handlers.runtime.finish import Finisher
from handlers.runtime.ledger import Claim, Ledger, SessionKey
from handlers.runtime.runner import Active, Runner
from handlers.runtime.steering import FollowUpOf, Router, load
from handlers.runtime.upkeep import Upkeep
from handlers.services import Services

T = TypeVar("T")
_TAKE_WAIT = 1.0
_RECOVER_CHECK = 30.0  # how often a worker asks whether a sweep is due (one GET)
# redis-py's own retry of one call, kept short: the loops here wait out longer outages, and
# must learn of one soon to note it (the reaper holds off after outages).
REDIS_RETRY = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)
REDIS_TIMEOUT = 10.0  # above the longest blocking call (the take loop's 1 s BLMOVE)


class Chore(Protocol):
    """A periodic task a worker runs every ``interval`` seconds while it works."""

    interval: float

    async def __call__(self) -> None:
        """Do it once; an exception is logged and the next turn comes anyway."""


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
    recover_interval: float = 0.0  # 0: this worker runs no recovery sweeps


class Worker:
    """Runs jobs from ``options.queues`` until stopped (or, with ``burst``, until none are left).

    ``services`` (the settings and shared clients, built once at start) reaches every run;
    ``session_key`` names the session of a queued envelope (``handlers.registry.session_key``);
    ``sweeps`` are the platforms' recovery sweeps (``handlers.registry.SWEEPS``);
    ``chores`` are the caller's own periodic tasks (the model probe, alerts), run beside upkeep;
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
        sweeps: Sequence[Sweep] = (),
        chores: Sequence[Chore] = (),
        followup_of: FollowUpOf | None = None,
    ) -> None:
        self.options = options
        self.chores = tuple(chores)
        self.session_key = session_key
        self.services = services
        self.sweeps = tuple(sweeps)
        self.connection = redis.Redis.from_url(
            services.settings.redis_url,
            health_check_interval=30,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=REDIS_RETRY,
        )
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
        self._redis_down_since: float | None = None
        self._background: set[asyncio.Task[None]] = set()
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
            on_inbox=None if self.router is None else self._on_inbox(loop),
        )
        listener.start()
        timers = [asyncio.create_task(self._every(interval, action)) for interval, action in self._timers()]
        # Chores start at once: a probe or an alert should not wait a whole interval for its first turn.
        timers += [asyncio.create_task(self._every(c.interval, c, first=0.0)) for c in self.chores]
        try:
            await self._take_loop()
            await self.runner.drain(self.options.grace)
        finally:
            for timer in timers:
                timer.cancel()
            await asyncio.to_thread(listener.halt)
            await self._call(self._leave)
            self._io.shutdown(wait=False, cancel_futures=True)
            self._agent_threads.shutdown(wait=False, cancel_futures=True)
        return 0

    async def _take_loop(self) -> None:
        slots = asyncio.Semaphore(self.options.concurrency)
        strays_checked = time.monotonic()
        while await self._acquire(slots):
            try:
                if time.monotonic() - strays_checked >= self.options.reap_interval:
                    await self._call(self.upkeep.release_strays, list(self.runner.running_ids()))
                    strays_checked = time.monotonic()
                claim = await self._call(self.ledger.take, _TAKE_WAIT, self._stopping)
            except redis.RedisError as exc:
                self._redis_failed("taking jobs", exc)
                strays_checked = float("-inf")  # the claim may have been made: look at once
                slots.release()
                await asyncio.sleep(1.0)
                continue
            self._redis_answered()
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
        except redis.RedisError as exc:  # the next poll tries again
            self._redis_failed("routing follow-ups", exc)
            return
        self._redis_answered()
        for claim in claims:
            self.runner.launch(claim, on_done=lambda: None)  # no agent runs: no slot is taken

    def _on_inbox(self, loop: asyncio.AbstractEventLoop) -> Callable[[str], object]:
        """What the listener's thread calls when a run's inbox grew: load it on the loop."""
        return lambda job_id: loop.call_soon_threadsafe(self._load_inbox, job_id)

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
        error = None if task.cancelled() else task.exception()
        if isinstance(error, redis.RedisError):  # the next heartbeat loads them again
            self._redis_failed("loading follow-ups", error)

    def _timers(self) -> list[tuple[float, Callable[[], Any]]]:
        timers: list[tuple[float, Callable[[], Any]]] = [
            (self.options.heartbeat_interval, self._heartbeat),
            (self.options.reap_interval, lambda: self._call(self._reap)),
            (1.0, lambda: self._call(self.upkeep.move_due_retries)),
        ]
        interval = self.options.recover_interval
        if interval > 0 and self.sweeps and not self.options.burst:
            timers.append((min(interval, _RECOVER_CHECK), self._recover))
        return timers

    async def _recover(self) -> None:
        """Sweep the platforms that are due (the lock and the due check keep it to one sweeper)."""
        try:
            await sweep_due(
                self.services, self.sweeps, interval=self.options.recover_interval, owner=self.name
            )
        except redis.RedisError:
            raise
        except Exception:  # noqa: BLE001 - a sweep's bug must not stop the timer or the worker
            self.runner.log.exception("recovery sweep failed")

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
        # Anything still held here was neither finished nor requeued (a run stopped while it
        # waited for Redis): put it back before unregistering, so it is never stranded.
        try:
            self.upkeep.reap_worker(self.name, note=f"requeued: worker {self.name} stopped", force=True)
            self.upkeep.unregister()
        except redis.RedisError:
            self.runner.log.error(
                "Redis unavailable while stopping: what this worker held is requeued by the "
                "other workers once its lease expires",
                exc_info=True,
            )

    async def _every(self, interval: float, action: Callable[[], Any], *, first: float | None = None) -> None:
        wait = interval if first is None else first
        while True:
            await asyncio.sleep(wait)
            wait = interval
            try:
                await action()
            except redis.RedisError as exc:
                self._redis_failed("a periodic task", exc)
            except Exception:  # noqa: BLE001 - a timer that died would stop its chore for good
                self.runner.log.warning("periodic task failed", exc_info=True)
            else:
                self._redis_answered()

    def _redis_failed(self, what: str, error: redis.RedisError) -> None:
        """A Redis call failed: note it for the reaper; log the first failure of an outage only."""
        self.upkeep.saw_outage()
        if self._redis_down_since is None:
            self._redis_down_since = time.monotonic()
            self.runner.log.warning(
                "Redis unavailable; retrying until it answers",
                extra={"fields": {"during": what, "error": describe(error)}},
            )

    def _redis_answered(self) -> None:
        """Redis answered: after an outage, say so, and raise its alert (in the background)."""
        if self._redis_down_since is None:
            return
        seconds, self._redis_down_since = time.monotonic() - self._redis_down_since, None
        self.runner.log.info("Redis answers again", extra={"fields": {"down_for": round(seconds, 1)}})
        task = asyncio.get_running_loop().create_task(self._outage_alert(seconds))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _outage_alert(self, seconds: float) -> None:
        try:
            await self._call(alerts.redis_was_down, self.connection, seconds)
        except redis.RedisError:
            self.runner.log.warning("could not raise the alert of the outage", exc_info=True)

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


__all__ = ["REDIS_RETRY", "REDIS_TIMEOUT", "Active", "Chore", "Worker", "WorkerOptions"]
