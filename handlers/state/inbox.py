"""The inbox of a run, in Redis: the follow-ups handed to it, each read once or run on its own.

A follow-up is an ordinary queued job (the ingress needs no change). When a worker takes one
whose conversation is held by a live run, ``route`` decides by ``GATEWAY_FOLLOWUPS``, in one
Lua step with the conversation's state (``ROUTE``):

- ``steer``: the job is parked behind the run, exactly as ``queue`` parks it, and its message
  is appended to the run's inbox (``keys.inbox``), with a ``message`` event among the run's
  events (``gateway.runs.ADD_EVENT_LUA``), in the same step; ``keys.INBOX_CHANNEL`` tells the
  workers.
- ``queue``: parked, nothing else (the claim does it).
- ``interrupt``: the run is asked to stop and the job parks behind it; the new run is given
  the interrupted one's message. A follow-up arriving while an interrupting job is still
  waiting is steered into that job's inbox instead of interrupting twice.
- ``reject``: the job is claimed without the conversation, to tell the person the agent is
  busy, and ends without a run.
- the stop word, or the Slack Stop button, whatever the policy: claimed without the
  conversation, to stop the run (``handlers.followups``).

While the run waits for the answer to a question it asked (``keys.asking``), a follow-up is
steered into it whatever the policy. What became of each follow-up is kept in
``keys.followup(job)`` (``state`` and ``run``), so a rerun of the same job, on any worker,
makes the same decision.

When the run ends for good (succeeded, failed, timed out, cancelled: not a retry, a requeue or
a crash) ``settle`` runs inside the ending's transaction (``SETTLE``): the follow-ups its last
attempt read are finished there and then, kept as a finished run is (``Finisher.succeed``): RQ
``finished`` in the ``FinishedJobRegistry`` for at most ``kept`` seconds, with no ``Result``
and its envelope stubbed; their run records ``succeeded``, "read by run ...". The others stay
parked and run on their own, in arrival order, when the conversation is handed on. The inbox
keeps only what was read, so a later retry of the run sees it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson
import redis
from redis.client import Pipeline
from rq.defaults import RQ_KEY_PREFIX
from rq.utils import as_text, current_timestamp, now, utcformat

from gateway.runs import ADD_EVENT_LUA
from handlers.messages import FollowUp, Message
from handlers.state import keys, runs

__all__ = ["POLICIES", "Inbox", "Policy", "Routing", "State"]

Policy = Literal["steer", "queue", "interrupt", "reject"]
POLICIES: tuple[Policy, ...] = ("steer", "queue", "interrupt", "reject")
State = Literal["inbox", "read", "unread", "stop", "busy", "interrupt"]
INTERRUPTED_BY = "a newer message"
"""The cancellation flag's value when ``interrupt`` stops a run (shown as who stopped it)."""


@dataclass(frozen=True)
class Routing:
    """What ``route`` did with a follow-up at the head of its queue.

    ``moved``: it is no longer the head (nothing done); ``claim``: claim it as usual;
    ``alone``: claim it without its conversation, for ``state`` (``read``, ``stop``, ``busy``)
    about run ``run``; ``steered``: parked, its message in run ``run``'s inbox.
    """

    verdict: Literal["moved", "claim", "alone", "steered"]
    state: str | None = None
    run: str | None = None


class Inbox:
    """The inboxes and follow-up records on one Redis connection (scripts registered once)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._route = connection.register_script(ROUTE)
        self._settle = connection.register_script(SETTLE)

    def route(
        self,
        *,
        queue_key: str,
        job_id: str,
        func_name: str,
        session_id: str,
        followup: FollowUp,
        policy: Policy,
        arrival: float,
        now: float,
    ) -> Routing:
        """Decide what follow-up ``job_id`` (the head of ``queue_key``) becomes; see the module docstring."""
        message = followup.message.to_dict()
        entry = orjson.dumps({"job_id": job_id, "func": func_name, "message": message})
        event = orjson.dumps({**message, "run_id": job_id, "at": runs.utcnow()})
        outcome = self._route(
            keys=[
                queue_key,
                keys.RQ_JOB + job_id,
                keys.followup(job_id),
                keys.session_lock(session_id),
                keys.session_wait(session_id),
                keys.SESSIONS_WAITING,
                keys.EVENTS,
            ],
            args=[
                job_id,
                policy,
                "1" if followup.stop else "0",
                followup.target or "",
                entry,
                event,
                keys.PREFIX,
                RQ_KEY_PREFIX,
                session_id,
                repr(arrival),
                repr(now),
                runs.retention(),
                runs.MAX_EVENTS,
                INTERRUPTED_BY,
                runs.EVENTS_KEPT,
            ],
        )
        verdict, *rest = [as_text(part) for part in outcome]
        return Routing(verdict, *(part or None for part in rest))  # type: ignore[arg-type]

    def settle(self, pipe: Pipeline, job_id: str, session_id: str, *, read: int, kept: int) -> None:
        """Queue on ``pipe`` (the ending's transaction) the settling of ``job_id``'s inbox, of
        which its last attempt read the first ``read`` follow-ups; RQ keeps each read one
        finished at most ``kept`` seconds."""
        self._settle(
            keys=[
                keys.inbox(job_id),
                keys.session_wait(session_id),
                keys.SESSIONS_WAITING,
                keys.EVENTS,
            ],
            args=[
                job_id,
                read,
                keys.PREFIX,
                RQ_KEY_PREFIX,
                session_id,
                runs.retention(),
                runs.MAX_EVENTS,
                utcformat(now()),
                current_timestamp(),
                runs.utcnow(),
                kept,
                runs.EVENTS_KEPT,
            ],
            client=pipe,
        )

    def load(self, job_id: str, start: int) -> list[Message]:
        """The follow-ups in ``job_id``'s inbox from position ``start`` on, oldest first."""
        raw = self.connection.lrange(keys.inbox(job_id), start, -1)
        return [_message(item) for item in raw]

    def state_of(self, job_id: str) -> tuple[str, str] | None:
        """``(state, run)`` of follow-up ``job_id``, or ``None`` if it never was routed."""
        state, run = self.connection.hmget(keys.followup(job_id), ["state", "run"])
        return (as_text(state), as_text(run) if run else "") if state else None


def _message(raw: bytes | str) -> Message:
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        entry = {}
    body = entry.get("message") if isinstance(entry, dict) else None
    return Message.from_dict(body if isinstance(body, dict) else {})


_COMMON = """
local function is_live(prefix, job_id)
  local status = redis.call('HGET', prefix .. ':job:' .. job_id, 'status')
  return status == 'queued' or status == 'started' or status == 'scheduled'
end
"""

ROUTE = (
    _COMMON
    + ADD_EVENT_LUA
    + """
-- KEYS: queue, job, followup record, session lock, session wait list, sessions waiting, the
--       shared events stream
-- ARGV: job_id, policy, stop ('1'/'0'), stop target, inbox entry, message event, gateway prefix,
--       rq prefix, session id, arrival score, now, ttl, events kept per run, interrupted-by
--       text, shared stream entries kept
local queue, job_key, followup, lock, wait, waiting, stream = unpack(KEYS)
local job_id, policy, stop, target, entry, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local gw, prefix, sid, score, now, ttl = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11], ARGV[12]

local function mark(state, run)
  redis.call('HSET', followup, 'state', state, 'run', run)
  redis.call('EXPIRE', followup, ttl)
end

-- The newest parked job of the session that is waiting to replace an interrupted run.
local function interrupter()
  local parked = redis.call('ZRANGE', wait, 0, 99)
  for i = #parked, 1, -1 do
    local id = parked[i]
    if redis.call('HGET', gw .. ':followup:' .. id, 'state') == 'interrupt'
        and redis.call('HGET', prefix .. ':job:' .. id, 'status') == 'deferred' then
      return id
    end
  end
  return nil
end

if redis.call('LINDEX', queue, 0) ~= job_id then return {'moved'} end
if redis.call('HGET', job_key, 'status') ~= 'queued' then return {'claim'} end
local state = redis.call('HGET', followup, 'state')
if state == 'read' or state == 'stop' or state == 'busy' then
  return {'alone', state, redis.call('HGET', followup, 'run') or ''}
end
local holder = redis.call('GET', lock)
local live = holder and holder ~= job_id and is_live(prefix, holder)
if stop == '1' then
  if target == '' and live then target = holder end
  mark('stop', target)
  return {'alone', 'stop', target}
end
if not live then return {'claim'} end
if redis.call('EXISTS', gw .. ':asking:' .. holder) == 1 then policy = 'steer' end
if policy == 'queue' then return {'claim'} end
if policy == 'reject' then
  mark('busy', holder)
  return {'alone', 'busy', holder}
end
local into = holder
if policy == 'interrupt' then
  into = interrupter()
  if not into then
    redis.call('SET', gw .. ':cancel:' .. holder, ARGV[14], 'EX', ttl)
    redis.call('PUBLISH', gw .. ':cancel', holder)
    mark('interrupt', holder)
    return {'claim'}
  end
end
-- steer: park the job as the claim would, and hand its message to the run.
local origin = redis.call('HGET', job_key, 'origin')
redis.call('LPOP', queue)
redis.call('ZADD', wait, score, job_id)
redis.call('HSET', job_key, 'status', 'deferred')
redis.call('ZADD', prefix .. ':deferred:' .. origin, now, job_id)
redis.call('SADD', waiting, sid)
local inbox = gw .. ':inbox:' .. into
redis.call('RPUSH', inbox, entry)
redis.call('EXPIRE', inbox, ttl)
add_event(stream, gw .. ':run:' .. into .. ':events', into, 'message', event, ARGV[15], ARGV[13], ttl)
mark('inbox', into)
redis.call('PUBLISH', gw .. ':inbox', into)
return {'steered', '', into}
"""
)

SETTLE = (
    ADD_EVENT_LUA
    + """
-- KEYS: inbox, session wait list, sessions waiting, the shared events stream
-- ARGV: job_id, read count, gateway prefix, rq prefix, session id, ttl, events kept per run,
--       RQ ended_at, Unix seconds now, record ended_at, seconds RQ keeps a finished job,
--       shared stream entries kept
local inbox, wait, waiting, stream = unpack(KEYS)
local job_id, read, gw, prefix, sid = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local ttl, per_run, rq_ended, now, ended = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
local finished_kept, kept = tonumber(ARGV[11]), ARGV[12]

local function event(id, kind, data)
  add_event(stream, gw .. ':run:' .. id .. ':events', id, kind, cjson.encode(data), kept, per_run, ttl)
end

-- A follow-up this run read is finished, kept as Finisher.succeed keeps a finished job (no
-- Result, its envelope stubbed, briefly), with its run record, at once.
local function close(id, func)
  local job_key = prefix .. ':job:' .. id
  if redis.call('ZREM', wait, id) == 0 or redis.call('HGET', job_key, 'status') ~= 'deferred' then return end
  local origin = redis.call('HGET', job_key, 'origin')
  local asked = tonumber(redis.call('HGET', job_key, 'result_ttl') or '') or finished_kept
  local keep = math.min(asked, finished_kept)
  redis.call('ZREM', prefix .. ':deferred:' .. origin, id)
  redis.call('HSET', job_key, 'status', 'finished', 'ended_at', rq_ended)
  if type(func) == 'string' and func ~= '' then
    redis.call('HSET', job_key, 'data', '[' .. cjson.encode(func) .. ',null,[],{}]')
  end
  if keep == 0 then
    redis.call('DEL', job_key)
  elseif keep < 0 then
    redis.call('ZADD', prefix .. ':finished:' .. origin, '+inf', id)
  else
    redis.call('ZADD', prefix .. ':finished:' .. origin, now + keep, id)
    redis.call('EXPIRE', job_key, keep)
  end
  local note = 'read by run ' .. job_id .. ', which was working on its conversation'
  local record = gw .. ':run:' .. id
  redis.call('HSET', record, 'status', 'succeeded', 'note', note, 'ended_at', ended)
  redis.call('EXPIRE', record, ttl)
  event(id, 'status', {status = 'succeeded', note = note, at = ended})
  event(id, 'done', {status = 'succeeded', at = ended})
end

local entries = redis.call('LRANGE', inbox, 0, -1)
if #entries == 0 then return 0 end
for i, raw in ipairs(entries) do
  local ok, entry = pcall(cjson.decode, raw)
  local id = ok and type(entry) == 'table' and entry.job_id
  local followup = type(id) == 'string' and (gw .. ':followup:' .. id) or nil
  if followup and redis.call('HGET', followup, 'state') == 'inbox'
      and redis.call('HGET', followup, 'run') == job_id then
    redis.call('HSET', followup, 'state', i <= read and 'read' or 'unread')
    if i <= read then close(id, entry.func) end
  end
end
if read > 0 then
  redis.call('LTRIM', inbox, 0, read - 1)
  redis.call('EXPIRE', inbox, ttl)
else
  redis.call('DEL', inbox)
end
if redis.call('ZCARD', wait) == 0 then redis.call('SREM', waiting, sid) end
return #entries
"""
)
