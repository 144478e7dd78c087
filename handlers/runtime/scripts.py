"""Lua scripts: the steps that must be atomic across workers.

- ``CLAIM``: take the job at the head of a queue (only if it still is the head), and either
  give it the session or park it behind the session's earlier events.
- ``HANDOFF``: pass a session to its oldest parked event (on release, or when the holder died).
- ``REAP``: requeue every job a dead worker held; exactly one reaper wins per worker.
- ``RELEASE``: requeue jobs a live worker holds but does not run (a claim whose answer was lost
  to a Redis outage).
- ``LEASE``: renew a worker's lease, unless it was reaped meanwhile.
- ``SETTLE_REPLY``: shrink a delivered reply's marker to ``answered``, keeping its expiry.

A script whose answer is lost may be sent again by redis-py's retry: each one must give the
same result when it runs twice (``CLAIM`` recognises its own token).

A job that holds a session (``...:lock`` = its id) is "live" while its RQ status is queued,
started or scheduled; a lock naming anything else is stale and treated as free.
"""

from __future__ import annotations

from gateway.runs import ADD_EVENT_LUA

__all__ = ["CLAIM", "HANDOFF", "LEASE", "REAP", "RELEASE", "SETTLE_REPLY"]

_COMMON = """
local function is_live(prefix, job_id)
  local status = redis.call('HGET', prefix .. ':job:' .. job_id, 'status')
  return status == 'queued' or status == 'started' or status == 'scheduled'
end

local function oldest_waiter(prefix, wait)
  for _ = 1, 100 do
    local first = redis.call('ZRANGE', wait, 0, 0, 'WITHSCORES')
    if #first == 0 then return nil end
    if redis.call('HGET', prefix .. ':job:' .. first[1], 'status') == 'deferred' then
      return first[1], tonumber(first[2])
    end
    redis.call('ZREM', wait, first[1])
  end
  return nil
end

local function promote(prefix, lock, wait, job_id, lock_ms)
  local job_key = prefix .. ':job:' .. job_id
  local origin = redis.call('HGET', job_key, 'origin')
  redis.call('ZREM', wait, job_id)
  redis.call('SET', lock, job_id, 'PX', lock_ms)
  redis.call('HSET', job_key, 'status', 'queued')
  redis.call('ZREM', prefix .. ':deferred:' .. origin, job_id)
  redis.call('LPUSH', prefix .. ':queue:' .. origin, job_id)
end

local function park(prefix, wait, waiting, sid, job_id, score, now)
  local job_key = prefix .. ':job:' .. job_id
  local origin = redis.call('HGET', job_key, 'origin')
  redis.call('ZADD', wait, score, job_id)
  redis.call('HSET', job_key, 'status', 'deferred')
  redis.call('ZADD', prefix .. ':deferred:' .. origin, now, job_id)
  redis.call('SADD', waiting, sid)
end
"""

_REQUEUE = (
    ADD_EVENT_LUA
    + """
-- ttl: the run record's (its events list's too); per_run: events kept per run; stream: the
-- shared events stream, kept: its length.
local function requeue(prefix, gw, job_id, note, now, ttl, per_run, stream, kept)
  local job_key = prefix .. ':job:' .. job_id
  local status = redis.call('HGET', job_key, 'status')
  -- 'failed' here means RQ's own cleanup called the job abandoned; we never finished it.
  if status == 'queued' or status == 'started' or status == 'failed' then
    local origin = redis.call('HGET', job_key, 'origin')
    redis.call('HSET', job_key, 'status', 'queued')
    redis.call('ZREM', prefix .. ':failed:' .. origin, job_id)
    redis.call('LPUSH', prefix .. ':queue:' .. origin, job_id)
    redis.call('HSET', gw .. ':run:' .. job_id, 'status', 'queued', 'note', note, 'requeued_at', now)
    local data = cjson.encode({status = 'queued', note = note, at = now})
    add_event(stream, gw .. ':run:' .. job_id .. ':events', job_id, 'status', data, kept, per_run, ttl)
    return 1
  end
  return 0
end
"""
)

CLAIM = (
    _COMMON
    + """
-- KEYS: queue, job, held, claimed, lock, wait, waiting
-- ARGV: job_id, token, arrival score, has_session, lock_ms, session id, now, rq prefix, held ttl
local queue, job_key, held, claimed, lock, wait, waiting = unpack(KEYS)
local job_id, token, score = ARGV[1], ARGV[2], tonumber(ARGV[3])
local prefix, lock_ms, sid, now = ARGV[8], ARGV[5], ARGV[6], ARGV[7]
-- The same call again (its first answer was lost): it already claimed the job.
if redis.call('GET', held) == token then return {'claimed'} end
if redis.call('LINDEX', queue, 0) ~= job_id then return {'moved'} end
redis.call('LPOP', queue)
local status = redis.call('HGET', job_key, 'status')
if not status then return {'gone'} end
if status ~= 'queued' then return {'skip', status} end
if ARGV[4] == '1' then
  local holder = redis.call('GET', lock)
  if holder ~= job_id then
    if holder and is_live(prefix, holder) then
      park(prefix, wait, waiting, sid, job_id, score, now)
      return {'parked'}
    end
    local first, first_score = oldest_waiter(prefix, wait)
    if first and first_score < score then
      promote(prefix, lock, wait, first, lock_ms)
      park(prefix, wait, waiting, sid, job_id, score, now)
      return {'parked'}
    end
  end
  redis.call('ZREM', wait, job_id)
  redis.call('SET', lock, job_id, 'PX', lock_ms)
end
redis.call('SET', held, token, 'EX', ARGV[9])
redis.call('SADD', claimed, job_id)
return {'claimed'}
"""
)

HANDOFF = (
    _COMMON
    + """
-- KEYS: lock, wait, waiting
-- ARGV: job_id ('' to unstick: only when the lock is missing or stale), rq prefix, lock_ms, session id
local lock, wait, waiting = unpack(KEYS)
local job_id, prefix, lock_ms, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local holder = redis.call('GET', lock)
if job_id ~= '' then
  if holder ~= job_id then return 0 end
elseif holder and is_live(prefix, holder) then
  return 0
end
local nxt = oldest_waiter(prefix, wait)
if nxt then
  promote(prefix, lock, wait, nxt, lock_ms)
else
  redis.call('DEL', lock)
end
if redis.call('ZCARD', wait) == 0 then redis.call('SREM', waiting, sid) end
return 1
"""
)

REAP = (
    _REQUEUE
    + """
-- KEYS: lease, claimed, workers, rq executions of the worker, the shared events stream
-- ARGV: worker name, rq prefix, gateway prefix, force ('1' skips the lease check), note, now,
--       run record TTL (the events list's too), events kept per run, shared stream entries kept
local lease, claimed, workers, executions = unpack(KEYS)
local name, prefix, gw, note = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
if ARGV[4] ~= '1' and redis.call('EXISTS', lease) == 1 then return -1 end
local requeued = 0
for _, job_id in ipairs(redis.call('SMEMBERS', claimed)) do
  redis.call('DEL', gw .. ':held:' .. job_id)
  requeued = requeued + requeue(prefix, gw, job_id, note, ARGV[6], ARGV[7], ARGV[8], KEYS[5], ARGV[9])
end
for _, composite in ipairs(redis.call('SMEMBERS', executions)) do
  local sep = string.find(composite, ':', 1, true)
  if sep then
    local job_id, execution_id = string.sub(composite, 1, sep - 1), string.sub(composite, sep + 1)
    local origin = redis.call('HGET', prefix .. ':job:' .. job_id, 'origin')
    if origin then redis.call('ZREM', prefix .. ':wip:' .. origin, composite) end
    redis.call('DEL', prefix .. ':execution:' .. composite)
    redis.call('ZREM', prefix .. ':executions:' .. job_id, execution_id)
  end
end
redis.call('DEL', claimed, executions, lease)
redis.call('SREM', workers, name)
return requeued
"""
)

RELEASE = (
    _REQUEUE
    + """
-- KEYS: claimed, the shared events stream
-- ARGV: worker name, rq prefix, gateway prefix, note, now, run record TTL, events kept per run,
--       shared stream entries kept, job ids...
-- Each job id must still be held by this worker (held:<job> = '<name>|<token>'); a claim that
-- is someone else's now is only dropped from the set.
local name, prefix, gw, note, now, ttl, per_run, kept = unpack(ARGV, 1, 8)
local released = 0
for i = 9, #ARGV do
  local job_id = ARGV[i]
  if redis.call('SREM', KEYS[1], job_id) == 1 then
    local held = redis.call('GET', gw .. ':held:' .. job_id)
    if held and string.sub(held, 1, #name + 1) == name .. '|' then
      redis.call('DEL', gw .. ':held:' .. job_id)
      released = released + requeue(prefix, gw, job_id, note, now, ttl, per_run, KEYS[2], kept)
    end
  end
end
return released
"""
)

LEASE = """
-- KEYS: lease, workers    ARGV: worker name, ttl ms, first ('1' at start)
if ARGV[3] ~= '1' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

SETTLE_REPLY = """
-- KEYS: reply marker    ARGV: the answered field
-- Once a run succeeded only a stray rerun (a worker presumed dead that was not) could read the
-- marker, and all it needs is "answered" to skip posting: the text and ids go, the expiry stays.
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], '1')
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
