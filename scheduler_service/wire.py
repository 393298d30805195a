"""Dramatiq's Redis wire format and keys: the one module that knows them.

Dramatiq's Redis broker keeps, per queue ``Q`` under the namespace ``ns``:

* ``ns:Q`` — list of Redis message ids waiting to be fetched;
* ``ns:Q.msgs`` — hash: message id -> encoded message (until it is acknowledged);
* ``ns:__acks__.<worker>.Q`` — set of ids a worker fetched and has not acknowledged yet;
* ``ns:Q.DQ`` / ``ns:Q.DQ.msgs`` — the delay queue (``delay=``; unused by the service);
* ``ns:Q.XQ`` / ``ns:Q.XQ.msgs`` — the dead-letter set (by time) and its messages;
* ``ns:__heartbeats__`` — sorted set of worker ids by last heartbeat.

An encoded message is JSON with ``message_timestamp`` as its last member. A job record keeps
its message *without* that member (:func:`encode_message` returns the head) and the Lua
:data:`LUA_ENQUEUE` appends the time of the enqueue, so a message promoted from a timer
carries its promotion time, not its creation time.

The Redis message id of a job's message is ``<job id>#<nonce>``: the worker's fetch script
(:mod:`scheduler_service.jobscripts`) takes the job id from it to mark the record
``running`` in the same call as the fetch.
"""

from __future__ import annotations

import json

from . import jsontext, queueing
from .ids import new_uuid, random_hex

#: Separates the job id from a nonce in a Redis message id.
RID_SEPARATOR = "#"
#: Suffix of the delay queue of a queue, and of the dead-letter set.
DELAY_SUFFIX = ".DQ"
DEAD_SUFFIX = ".XQ"


def queue_key(prefix: str, queue: str) -> str:
    """The list of waiting message ids of ``queue`` (``prefix`` is ``"<namespace>:"``)."""
    return f"{prefix}{queue}"


def messages_key(prefix: str, queue: str) -> str:
    return f"{prefix}{queue}.msgs"


def delayed_messages_key(prefix: str, queue: str) -> str:
    return f"{prefix}{queue}{DELAY_SUFFIX}.msgs"


def acks_key(prefix: str, worker: str, queue: str) -> str:
    """The set of message ids worker ``worker`` fetched from ``queue`` and holds unacknowledged."""
    return f"{prefix}__acks__.{worker}.{queue}"


def dead_key(prefix: str, queue: str) -> str:
    return f"{prefix}{queue}{DEAD_SUFFIX}"


def dead_messages_key(prefix: str, queue: str) -> str:
    return f"{prefix}{queue}{DEAD_SUFFIX}.msgs"


def heartbeats_key(prefix: str) -> str:
    """The sorted set of worker ids by the time (epoch ms) of their last broker command."""
    return f"{prefix}__heartbeats__"


def new_rid(job_id: str) -> str:
    """A fresh Redis message id for a message of ``job_id``."""
    return f"{job_id}{RID_SEPARATOR}{random_hex(8)}"


def job_id_of_rid(rid: str) -> str | None:
    """The job id inside a Redis message id, or None for an id of another shape."""
    head, sep, _ = rid.rpartition(RID_SEPARATOR)
    return head if sep and head else None


def encode_message(job: dict) -> tuple[str, str, str]:
    """The Dramatiq message that runs ``job``: ``(queue, redis message id, head)``.

    ``head`` is the encoded message up to its ``message_timestamp`` value; appending a
    time in epoch milliseconds and ``}`` (the Lua ``stamp``) makes it whole.
    """
    band = queueing.band_for(job["priority"])
    queue = queueing.queue_name(band)
    rid = new_rid(job["id"])
    body = {k: job[k] for k in ("id", "type", "campaignId", "payload", "priority")}
    message = {
        "queue_name": queue, "actor_name": queueing.actor_name(job["type"], band),
        "args": [body], "kwargs": {}, "options": {"redis_message_id": rid},
        "message_id": new_uuid(),
    }
    text = jsontext.dumps(message)
    return queue, rid, text[:-1] + ',"message_timestamp":'


#: Lua: put messages on their queues. Expects ``P`` (the key prefix) in scope.
#: ``stamp(head, now)`` completes a stored head; ``enqueue(id, now)`` puts a job's stored
#: message on its queue; ``enqueue_all(batches)`` puts many, ``batches[queue]`` being
#: ``{rid, data, rid, data, ...}``, with one write per queue.
LUA_ENQUEUE = r"""
local function stamp(head, now)
  return head .. now .. '}'
end
local function enqueue(id, now)
  local v = redis.call('hmget', P .. 'job:' .. id, 'message', 'rid', 'queue')
  redis.call('hset', P .. v[3] .. '.msgs', v[2], stamp(v[1], now))
  redis.call('rpush', P .. v[3], v[2])
end
local function enqueue_all(batches)
  for queue, items in pairs(batches) do
    redis.call('hset', P .. queue .. '.msgs', unpack(items))
    local rids = {}
    for k = 1, #items, 2 do rids[#rids + 1] = items[k] end
    redis.call('rpush', P .. queue, unpack(rids))
  end
end
"""

#: Lua, Dramatiq's consumer side. Expects ``P``, ``worker`` (the broker id), ``queue`` and
#: ``now`` in scope. ``heartbeat()`` is what every Dramatiq command does first.
LUA_CONSUMER = r"""
local function heartbeat()
  redis.call('zadd', P .. '__heartbeats__', now, worker)
end
local function acks_key()
  return P .. '__acks__.' .. worker .. '.' .. queue
end
-- Dramatiq's fetch: up to n messages, as two lists (ids, data; a datum may be false when
-- its message vanished). The ids become the worker's unacknowledged ones.
local function pop_messages(n)
  local rids = {}
  for i = 1, n do
    local rid = redis.call('lpop', P .. queue)
    if not rid then break end
    rids[#rids + 1] = rid
  end
  if #rids == 0 then return rids, {} end
  redis.call('sadd', acks_key(), unpack(rids))
  return rids, redis.call('hmget', P .. queue .. '.msgs', unpack(rids))
end
local function forget(rids)
  if #rids > 0 then redis.call('srem', acks_key(), unpack(rids)) end
end
local function ack_message(rid)
  if redis.call('srem', acks_key(), rid) > 0 then
    redis.call('hdel', P .. queue .. '.msgs', rid)
    return true
  end
  return false
end
local function nack_message(rid, data)
  if redis.call('srem', acks_key(), rid) > 0 then
    local stored = redis.call('hget', P .. queue .. '.msgs', rid)
    if stored then
      redis.call('zadd', P .. queue .. '.XQ', now, rid)
      redis.call('hset', P .. queue .. '.XQ.msgs', rid, data ~= '' and data or stored)
      redis.call('hdel', P .. queue .. '.msgs', rid)
    end
    return true
  end
  return false
end
local function requeue_message(rid)
  if redis.call('srem', acks_key(), rid) > 0 then
    if redis.call('hexists', P .. queue .. '.msgs', rid) > 0 then
      redis.call('rpush', P .. queue, rid)
      return true
    end
  end
  return false
end
"""


def queue_stats(redis, namespace: str, queue_names) -> dict:
    """Read the size of each queue, its delay queue and its dead-letter set, in one round trip.

    Returns:
        ``{"queues": {name: {"ready", "delayed", "dead"}}, "totals": {...}}``.
    """
    prefix = f"{namespace}:"
    names = list(queue_names)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.llen(queue_key(prefix, name))
        pipe.hlen(delayed_messages_key(prefix, name))
        pipe.zcard(dead_key(prefix, name))
    counts = pipe.execute()
    queues = {}
    totals = {"ready": 0, "delayed": 0, "dead": 0}
    for i, name in enumerate(names):
        ready, delayed, dead = counts[3 * i: 3 * i + 3]
        queues[name] = {"ready": ready, "delayed": delayed, "dead": dead}
        totals["ready"] += ready
        totals["delayed"] += delayed
        totals["dead"] += dead
    return {"queues": queues, "totals": totals}


def dead_messages(redis, namespace: str, queue: str) -> list[dict]:
    """The decoded dead-lettered messages of ``queue``."""
    return [json.loads(v) for v in redis.hvals(dead_messages_key(f"{namespace}:", queue))]


def drop_dead_copy(redis, prefix: str, queue: str, rid: str) -> None:
    """Remove Dramatiq's dead-letter copy of one message."""
    pipe = redis.pipeline()
    pipe.zrem(dead_key(prefix, queue), rid)
    pipe.hdel(dead_messages_key(prefix, queue), rid)
    pipe.execute()


def drop_waiting_message(redis, prefix: str, queue: str, rid: str) -> None:
    """Remove one message of ``queue`` (or its delay queue) that waits to be fetched."""
    pipe = redis.pipeline()
    if queue.endswith(DELAY_SUFFIX):
        pipe.zrem(queue_key(prefix, queue), rid)
    else:
        pipe.lrem(queue_key(prefix, queue), 0, rid)
    pipe.hdel(messages_key(prefix, queue), rid)
    pipe.execute()


def message_pending(redis, prefix: str, queue: str, rid: str) -> bool:
    """Whether Dramatiq still holds message ``rid`` of ``queue`` (waiting or unacknowledged)."""
    return bool(redis.hexists(messages_key(prefix, queue), rid))
