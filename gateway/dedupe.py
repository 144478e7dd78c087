"""Delivery ids → job ids and claim keys, and the Lua script that claims and enqueues at once.

The dedupe key and the RQ job id are the same string, ``<platform>-<escaped delivery id>``.
A claim is a plain key with a TTL (at least three days, Stripe's retry window), separate
from RQ's job hash, whose lifetime RQ controls.
"""

from __future__ import annotations

import re

_SAFE_ID = re.compile(r"[A-Za-z0-9-]+")
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
MAX_DELIVERY_ID_BYTES = 200

CLAIM_PREFIX = "gateway:claim:"


def to_job_id(platform: str, delivery_id: str) -> str:
    """``<platform>-<delivery id>``, with every byte RQ refuses written ``_xx``.

    RQ ids may hold only letters, digits, ``_`` and ``-``. ``_`` itself is escaped too, so the
    mapping is one-to-one: ``a.b`` and ``a_2eb`` can never share a job id.
    """
    if _SAFE_ID.fullmatch(delivery_id):
        return f"{platform}-{delivery_id}"
    escaped = "".join(chr(b) if b in _SAFE_BYTES else f"_{b:02x}" for b in delivery_id.encode())
    return f"{platform}-{escaped}"


def claim_key(job_id: str) -> str:
    """The Redis key that marks ``job_id`` as claimed."""
    return CLAIM_PREFIX + job_id


# One call claims and enqueues a whole batch of deliveries. Redis runs a script atomically, and
# nothing after the first write can fail (arguments are checked by the caller), so for each
# delivery either the claim, the job hash and the queue push all happen, or none does.
# The job hash fields that are the same for every job are sent once per batch.
#   KEYS[1] queue key, KEYS[2] RQ's set of queues, then per delivery: claim key, job key
#   ARGV[1] claim TTL in seconds, ARGV[2] claim value, ARGV[3] created/enqueued timestamp,
#   ARGV[4] count n of shared field/value strings, ARGV[5 .. 4+n] those strings,
#   then per delivery: job id, job data, job description
# Returns a string with one character per delivery: "1" queued, "0" already claimed (one bulk
# reply is far cheaper for the client to read than a list of integers).
CLAIM_AND_ENQUEUE = """
local ttl = tonumber(ARGV[1])
local shared_end = 4 + tonumber(ARGV[4])
local results = {}
local queued = 0
for i = 1, (#KEYS - 2) / 2 do
  local arg = shared_end + 3 * (i - 1)
  if redis.call('SET', KEYS[1 + 2 * i], ARGV[2], 'NX', 'EX', ttl) then
    redis.call('HSET', KEYS[2 + 2 * i], 'data', ARGV[arg + 2], 'description', ARGV[arg + 3],
      'created_at', ARGV[3], 'enqueued_at', ARGV[3], unpack(ARGV, 5, shared_end))
    redis.call('RPUSH', KEYS[1], ARGV[arg + 1])
    results[i] = '1'
    queued = queued + 1
  else
    results[i] = '0'
  end
end
if queued > 0 then
  redis.call('SADD', KEYS[2], KEYS[1])
end
return table.concat(results)
"""
