"""Claim and enqueue deliveries as RQ jobs, batching concurrent requests into one round trip.

Delivery ids become job ids and claim keys here: the dedupe key and the RQ job id are the same
string, ``<platform>-<escaped delivery id>``. A claim is a plain key with a TTL (at least three
days, Stripe's retry window), separate from RQ's job hash, whose lifetime RQ controls; the Lua
script ``CLAIM_AND_ENQUEUE`` claims and enqueues at once.

Each request hands its envelope to ``Enqueuer.submit`` and awaits the answer. Submissions that
arrive while the event loop is busy are gathered and sent to Redis as one call of the
``CLAIM_AND_ENQUEUE`` script, so under load one round trip claims and queues many deliveries:
the claim-and-enqueue cost per request falls as concurrency rises, instead of each request
waiting on its own round trips.

The job hash is what RQ's own ``Queue.enqueue_call`` writes: the fields every job shares are
taken once from a ``Job`` built by RQ (``_JobTemplate``), and only ``data`` (the serialized
call, as JSON), ``description`` and the timestamps are made per delivery. RQ reads ``data``
compressed or not; it is left uncompressed because compressing costs more than the ack path
can spare. ``tests/gateway/test_queue.py`` holds the hash to RQ's own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat

from gateway import keys
from gateway.errors import MalformedPayload, QueueUnavailable
from gateway.runs import RUN_TTL
from gateway.types import Delivery, Envelope

__all__ = [
    "FAILURE_TTL",
    "MAX_DELIVERY_ID_BYTES",
    "RESULT_TTL",
    "Enqueuer",
    "envelope_for",
    "job_data",
    "to_job_id",
]

logger = logging.getLogger("gateway.queue")

# RQ keeps a finished job only briefly (rq info, debugging): its run record keeps the outcome.
RESULT_TTL = 600
FAILURE_TTL = 7 * 24 * 3600
JOB_TIMEOUT_MARGIN = 60
# Far below Slack's 3 s deadline: a Redis that cannot answer in time gets a 503 and a retry.
REDIS_TIMEOUT = 2.0
MAX_BATCH = 256
MAX_FLUSHES_IN_FLIGHT = 4
_QUEUED = ord("1")

_SAFE_ID = re.compile(r"[A-Za-z0-9-]+")
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
MAX_DELIVERY_ID_BYTES = 200


def to_job_id(platform: str, delivery_id: str) -> str:
    """``<platform>-<delivery id>``, with every byte RQ refuses written ``_xx``.

    RQ ids may hold only letters, digits, ``_`` and ``-``. ``_`` itself is escaped too, so the
    mapping is one-to-one: ``a.b`` and ``a_2eb`` can never share a job id.
    """
    if _SAFE_ID.fullmatch(delivery_id):
        return f"{platform}-{delivery_id}"
    escaped = "".join(chr(b) if b in _SAFE_BYTES else f"_{b:02x}" for b in delivery_id.encode())
    return f"{platform}-{escaped}"


def envelope_for(platform: str, delivery: Delivery, *, received_at: float) -> Envelope:
    """The job's one argument for ``delivery`` of ``platform``, received at Unix time ``received_at``.

    Every path that queues a delivery builds it here: the HTTP and Socket Mode ingress, and the
    Stripe recovery sweep, which queues events it found through Stripe's API.
    Raises ``MalformedPayload`` when the delivery id is too long to be a job id.
    """
    if len(delivery.delivery_id.encode()) > MAX_DELIVERY_ID_BYTES:
        raise MalformedPayload(f"delivery id is longer than {MAX_DELIVERY_ID_BYTES} bytes")
    return {
        "platform": platform,
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "action": delivery.action,
        "received_at": datetime.fromtimestamp(received_at, UTC).isoformat(),
        "payload": delivery.payload,
        "meta": delivery.meta,
    }


# One call claims and enqueues a whole batch of deliveries. Redis runs a script atomically, and
# nothing after the first write can fail (arguments are checked by the caller), so for each
# delivery either the claim, the job hash, the queue push and its runs-index entry all happen, or
# none does. The job hash fields that are the same for every job are sent once per batch.
#   KEYS[1] queue key, KEYS[2] RQ's set of queues, KEYS[3] the runs index,
#   then per delivery: claim key, job key
#   ARGV[1] claim TTL in seconds, ARGV[2] claim value, ARGV[3] created/enqueued timestamp,
#   ARGV[4] arrival in Unix ms (13 digits), ARGV[5] oldest index entry to keep (13 digits),
#   ARGV[6] count n of shared field/value strings, ARGV[7 .. 6+n] those strings,
#   then per delivery: job id, job data, job description
# Returns a string with one character per delivery: "1" queued, "0" already claimed (one bulk
# reply is far cheaper for the client to read than a list of integers).
CLAIM_AND_ENQUEUE = """
local ttl = tonumber(ARGV[1])
local shared_end = 6 + tonumber(ARGV[6])
local results = {}
local queued = 0
for i = 1, (#KEYS - 3) / 2 do
  local arg = shared_end + 3 * (i - 1)
  if redis.call('SET', KEYS[2 + 2 * i], ARGV[2], 'NX', 'EX', ttl) then
    redis.call('HSET', KEYS[3 + 2 * i], 'data', ARGV[arg + 2], 'description', ARGV[arg + 3],
      'created_at', ARGV[3], 'enqueued_at', ARGV[3], unpack(ARGV, 7, shared_end))
    redis.call('RPUSH', KEYS[1], ARGV[arg + 1])
    redis.call('ZADD', KEYS[3], 0, ARGV[4] .. ':' .. ARGV[arg + 1])
    results[i] = '1'
    queued = queued + 1
  else
    results[i] = '0'
  end
end
if queued > 0 then
  redis.call('SADD', KEYS[2], KEYS[1])
  redis.call('ZREMRANGEBYLEX', KEYS[3], '-', '(' .. ARGV[5])
end
return table.concat(results)
"""


# Job hash fields written per delivery; every other field comes from the template.
_PER_JOB_FIELDS = frozenset({"data", "description", "created_at", "enqueued_at"})


@dataclass(frozen=True, slots=True)
class _Pending:
    job_id: str
    data: bytes
    description: str
    future: asyncio.Future[bool]


def _job_template(*, queue_name: str, timeout: int) -> list[Any]:
    """The job hash fields every gateway job shares, as RQ itself writes them (flat name/value list)."""
    job = Job.create(
        "handlers.template.handle",
        args=({},),
        connection=redis.Redis(),  # RQ wants one; building the hash never uses it
        id="template",
        origin=queue_name,
        timeout=timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        serializer=JSONSerializer,
        status=JobStatus.QUEUED,
    )
    fields: list[Any] = []
    for name, value in job.to_dict().items():
        if name not in _PER_JOB_FIELDS:
            fields += (name, value)
    job.connection.close()
    return fields


def job_data(job_path: str, envelope: Envelope) -> bytes:
    """RQ's serialized call ``(function, instance, args, kwargs)``, as ``JSONSerializer`` reads it."""
    return orjson.dumps([job_path, None, [envelope], {}])


class Enqueuer:
    """Claims delivery ids and enqueues their jobs atomically, in batches.

    Create it inside the event loop that will use it (the app's lifespan does).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        queue_name: str,
        dedupe_ttl: int,
        run_deadline: float,
        run_retention: int = RUN_TTL,
    ) -> None:
        self.queue_name = queue_name
        self.queue_key = Queue.redis_queue_namespace_prefix + queue_name
        self._dedupe_ttl = dedupe_ttl
        self._index_kept_ms = run_retention * 1000  # the runs index keeps a run as long as its record
        self._job_timeout = int(run_deadline) + JOB_TIMEOUT_MARGIN
        self._redis = aioredis.Redis.from_url(
            redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        )
        self._script = self._redis.register_script(CLAIM_AND_ENQUEUE)
        self._template = _job_template(queue_name=queue_name, timeout=self._job_timeout)
        self._pending: list[_Pending] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False

    async def submit(self, job_id: str, job_path: str, envelope: Envelope) -> bool:
        """Claim ``job_id`` and enqueue its job; True if queued now, False if already claimed.

        Raises ``QueueUnavailable`` when Redis did not confirm; then nothing was claimed, unless
        the script ran and only its answer was lost, in which case the job is queued and the
        platform's retry is answered as a duplicate.
        """
        loop = asyncio.get_running_loop()
        description = f"{envelope['platform']} {envelope['event']} {envelope['delivery_id']}"
        pending = _Pending(job_id, job_data(job_path, envelope), description, loop.create_future())
        self._pending.append(pending)
        self._schedule_flush(loop)
        return await pending.future

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        # call_soon lets every request already runnable in this loop iteration join the batch.
        if not self._flush_scheduled and len(self._flushes) < MAX_FLUSHES_IN_FLIGHT:
            self._flush_scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)
        if self._pending:
            self._schedule_flush(loop)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._pending:
            self._schedule_flush(asyncio.get_running_loop())

    async def _flush(self, batch: Sequence[_Pending]) -> None:
        redis_keys: list[str] = [self.queue_key, Queue.redis_queues_keys, keys.RUNS]
        now = rq_now()
        at_ms = int(now.timestamp() * 1000)
        args: list[Any] = [self._dedupe_ttl, "1", utcformat(now), f"{at_ms:013d}"]
        args += [f"{at_ms - self._index_kept_ms:013d}", len(self._template), *self._template]
        for item in batch:
            redis_keys += (keys.claim(item.job_id), Job.redis_job_namespace_prefix + item.job_id)
            args += (item.job_id, item.data, item.description)
        try:
            results = await self._script(keys=redis_keys, args=args)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            logger.warning("claim-and-enqueue failed for %d deliveries: %s", len(batch), type(exc).__name__)
            error = QueueUnavailable(type(exc).__name__)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        for item, result in zip(batch, results, strict=True):  # one byte each, b"1" if queued
            if not item.future.done():
                item.future.set_result(result == _QUEUED)

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis client, for the app's other routes and ``/health`` (bound to this event loop)."""
        return self._redis

    async def queue_length(self) -> int:
        """How many jobs wait in the queue; raises ``QueueUnavailable`` when Redis is down."""
        try:
            return int(await self._redis.llen(self.queue_key))
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise QueueUnavailable(type(exc).__name__) from None

    async def aclose(self) -> None:
        """Wait for batches in flight, then close the Redis connections."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        await self._redis.aclose()
