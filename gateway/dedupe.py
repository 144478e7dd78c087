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
#   KEYS[1] queue key, KEYS[2] RQ's set of queues, then per delivery: claim key, job key
#   ARGV[1] claim TTL in seconds, ARGV[2] claim value, then per delivery: job id, field count n,
#   n field/value strings
# Returns one integer per delivery: 1 queued, 0 already claimed.
CLAIM_AND_ENQUEUE = """
local ttl = tonumber(ARGV[1])
local results = {}
local queued = 0
local arg = 3
for i = 1, (#KEYS - 2) / 2 do
  local job_id = ARGV[arg]
  local n = tonumber(ARGV[arg + 1])
  if redis.call('SET', KEYS[1 + 2 * i], ARGV[2], 'NX', 'EX', ttl) then
    redis.call('HSET', KEYS[2 + 2 * i], unpack(ARGV, arg + 2, arg + 1 + n))
    redis.call('RPUSH', KEYS[1], job_id)
    results[i] = 1
    queued = queued + 1
  else
    results[i] = 0
  end
  arg = arg + 2 + n
end
if queued > 0 then
  redis.call('SADD', KEYS[2], KEYS[1])
end
return results
"""
