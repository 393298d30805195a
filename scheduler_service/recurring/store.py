"""Recurring jobs in Redis: their records, indexes, occurrence history and counters.

Keys (all under ``REDIS_NAMESPACE``):

* ``recurring:{id}`` — hash: the definition (type, campaign, payload, priority, clock,
  cron or every, start, end, limits, policy) and the state: ``state`` (``active``,
  ``paused``, ``ended``, ``cancelled``), ``cursor`` (the earliest occurrence not dealt
  with yet), ``seq`` and ``tickJob`` (the number and job id of its one timer), counts;
* ``recurring:{id}:occurrences`` — list: what each pass created or skipped (capped);
* ``recurring:all`` and ``recurring:state:{state}`` — sorted sets of ids by creation time;
* ``recurring:due:wall`` and ``recurring:due:world:{campaign}`` — sorted sets of active
  ids by cursor, and ``recurring:campaigns``, every campaign that had world-clock ones;
* ``recurring:stats`` — hash: occurrences created and skipped per clock and policy;
* ``recurring:idem:{key}`` — the id a create's idempotency key made.

Every change of a record is one of the scripts below, run in the same ``MULTI`` as the
job-store creates that go with it (see :mod:`scheduler_service.recurring.service`).
Each script checks ``seq`` first, so a change decided on a stale read does nothing.
The job records themselves are the job store's; nothing here knows their keys.
"""

from __future__ import annotations

import json

from ..times import iso_ms

#: States of a recurring job.
STATES = ("active", "paused", "ended", "cancelled")
#: Entries kept in a recurring job's occurrence history.
HISTORY_LIMIT = 1000

_LIB = r"""
local P = ARGV[1]
local function rkey(id) return P .. 'recurring:' .. id end
local function move_state(id, from, to, created)
  if from ~= to then
    if from and from ~= '' then redis.call('zrem', P .. 'recurring:state:' .. from, id) end
    redis.call('zadd', P .. 'recurring:state:' .. to, created, id)
  end
end
local function due_key(clock, campaign)
  if clock == 'world' then return P .. 'recurring:due:world:' .. campaign end
  return P .. 'recurring:due:wall'
end
-- Keep the due index in step with the state and cursor.
local function set_due(id, clock, campaign, state, cursor)
  local key = due_key(clock, campaign)
  if state == 'active' and cursor ~= '' then
    redis.call('zadd', key, cursor, id)
    if clock == 'world' then redis.call('sadd', P .. 'recurring:campaigns', campaign) end
  else
    redis.call('zrem', key, id)
  end
end
local function finish(id, state, retention)
  if state == 'ended' or state == 'cancelled' then
    redis.call('expire', rkey(id), retention)
    redis.call('expire', rkey(id) .. ':occurrences', retention)
    local idem = redis.call('hget', rkey(id), 'idemKey')
    if idem and idem ~= '' then redis.call('expire', P .. 'recurring:idem:' .. idem, retention) end
  end
end
"""

# ARGV: P, id, idem key ('' for none), field/value pairs (with state, clock, campaignId,
# cursor, createdAt). Returns {1, id}, or {0, existing id} when the key was used.
SAVE = _LIB + r"""
local id, idem = ARGV[2], ARGV[3]
if idem ~= '' then
  local existing = redis.call('get', P .. 'recurring:idem:' .. idem)
  if existing then return {0, existing} end
end
local fields, f = {}, {}
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  f[ARGV[i]] = ARGV[i + 1]
end
redis.call('hset', rkey(id), unpack(fields))
redis.call('zadd', P .. 'recurring:all', f.createdAt, id)
move_state(id, nil, f.state, f.createdAt)
set_due(id, f.clock, f.campaignId, f.state, f.cursor)
if idem ~= '' then redis.call('set', P .. 'recurring:idem:' .. idem, id) end
return {1, id}
"""

# ARGV: P, id, tick job id, seq, now, retention, cursor ('' = ended), next tick ('' = none),
# ended reason, skipped count ('' = uncounted), skipped from, skipped to, number of created
# occurrences, then (occurrence ms, job id) pairs. The commit of one pass: if the record is
# still active under that tick and seq, records the occurrences newer than the last one
# recorded (so one is never recorded twice), the skipped ones, the counters, and moves the
# cursor and the timer. Returns 1, or 0 when the record moved on (nothing done).
ADVANCE = _LIB + r"""
local id, tick, seq, now, retention = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local cursor, next_tick, ended = ARGV[7], ARGV[8], ARGV[9]
local skipped, skipped_from, skipped_to, n = ARGV[10], ARGV[11], ARGV[12], tonumber(ARGV[13])
local rk = rkey(id)
local v = redis.call('hmget', rk, 'tickJob', 'seq', 'state', 'clock', 'campaignId',
                     'lastOccurrence', 'count', 'catchUp', 'createdAt', 'skippedTotal')
if v[1] ~= tick or v[2] ~= seq or v[3] ~= 'active' then return 0 end
local clock, campaign, policy = v[4], v[5], v[8]
local last = tonumber(v[6]) or -1e18
local count = tonumber(v[7]) or 0
local hk = rk .. ':occurrences'
local made, last_job = 0, nil
for i = 14, 13 + 2 * n, 2 do
  local at = tonumber(ARGV[i])
  if at > last then
    redis.call('rpush', hk, cjson.encode({kind = 'created', at = at, jobId = ARGV[i + 1],
                                          recordedAt = tonumber(now)}))
    last, last_job, made = at, ARGV[i + 1], made + 1
  end
end
local skipped_total = tonumber(v[10]) or 0
if skipped ~= '0' then
  local entry = {kind = 'skipped', from = tonumber(skipped_from), to = tonumber(skipped_to),
                 reason = 'catchUp', recordedAt = tonumber(now)}
  if skipped ~= '' then
    entry.count = tonumber(skipped)
    skipped_total = skipped_total + tonumber(skipped)
    redis.call('hincrby', P .. 'recurring:stats', 'skipped:' .. clock .. ':' .. policy, skipped)
  end
  redis.call('rpush', hk, cjson.encode(entry))
end
redis.call('ltrim', hk, -HISTORY_LIMIT, -1)
if made > 0 then
  redis.call('hincrby', P .. 'recurring:stats', 'created:' .. clock .. ':' .. policy, made)
  redis.call('hset', rk, 'lastOccurrence', last, 'lastJobId', last_job)
end
local state = 'active'
if cursor == '' then state = 'ended' end
redis.call('hset', rk, 'cursor', cursor, 'tickJob', next_tick, 'seq', tonumber(seq) + 1,
           'count', count + made, 'skippedTotal', skipped_total, 'state', state,
           'endedReason', ended, 'updatedAt', now)
move_state(id, 'active', state, v[9])
set_due(id, clock, campaign, state, cursor)
finish(id, state, retention)
return 1
"""

# ARGV: P, id, seq, now, retention, state, cursor, tick ('' = none), skipped count (0 for
# none), skipped from, skipped to, field/value pairs. A change over the API (pause,
# resume, new pattern, cancel...): if seq is unchanged, sets the fields, the state, the
# cursor and the timer, and bumps seq. Returns 1, or 0 when the record moved on.
UPDATE = _LIB + r"""
local id, seq, now, retention, state, cursor, tick = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local rk = rkey(id)
local v = redis.call('hmget', rk, 'seq', 'state', 'clock', 'campaignId', 'createdAt')
if v[1] ~= seq then return 0 end
local fields = {}
for i = 12, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('hset', rk, unpack(fields)) end
redis.call('hset', rk, 'seq', tonumber(seq) + 1, 'state', state, 'cursor', cursor,
           'tickJob', tick, 'updatedAt', now)
if ARGV[9] ~= '0' then
  local entry = {kind = 'skipped', from = tonumber(ARGV[10]), to = tonumber(ARGV[11]),
                 count = tonumber(ARGV[9]), reason = 'paused', recordedAt = tonumber(now)}
  redis.call('rpush', rk .. ':occurrences', cjson.encode(entry))
  redis.call('ltrim', rk .. ':occurrences', -HISTORY_LIMIT, -1)
  redis.call('hincrby', rk, 'skippedTotal', ARGV[9])
end
move_state(id, v[2], state, v[5])
set_due(id, v[3], v[4], state, cursor)
finish(id, state, retention)
return 1
"""

SAVE, ADVANCE, UPDATE = (s.replace("HISTORY_LIMIT", str(HISTORY_LIMIT)) for s in (SAVE, ADVANCE, UPDATE))


class RecurringStore:
    """Reads recurring-job records and queues their changes; the only code that knows their keys."""

    def __init__(self, redis, namespace: str, retention_s: int):
        self.redis = redis
        self.prefix = f"{namespace}:"
        self.retention_s = retention_s
        self._save = redis.register_script(SAVE)
        self._advance = redis.register_script(ADVANCE)
        self._update = redis.register_script(UPDATE)

    def key(self, *parts) -> str:
        return self.prefix + "recurring:" + ":".join(parts)

    def record_key(self, rid: str) -> str:
        return self.key(rid)

    def idem_key(self, key: str) -> str:
        return self.key("idem", key)

    # -- reads -------------------------------------------------------------------------
    def get(self, rid: str, client=None) -> dict | None:
        """The record's fields as text, or None."""
        raw = (client or self.redis).hgetall(self.record_key(rid))
        return _text(raw) if raw else None

    def by_idempotency_key(self, key: str) -> str | None:
        value = self.redis.get(self.idem_key(key))
        return value.decode() if value else None

    def history(self, rid: str) -> list[dict]:
        """Occurrence entries, oldest first (the last :data:`HISTORY_LIMIT`)."""
        return [json.loads(e) for e in self.redis.lrange(self.key(rid, "occurrences"), 0, -1)]

    def list(self, *, state=None, clock=None, campaign_id=None, job_type=None, limit=50,
             cursor=None, batch=200):
        """Newest first, filtered; returns ``(records, next cursor or None)``.

        The cursor is ``{created ms}:{id}`` of the last item returned (keyset paging, as
        the job listing does), so items arriving meanwhile neither repeat nor are skipped.
        """
        index = self.key("state", state) if state else self.key("all")
        last_score, last_id = None, None
        if cursor:
            score, _, last_id = cursor.partition(":")
            last_score = float(int(score))
        items: list[dict] = []
        while True:
            extra = 0 if last_score is None else self.redis.zcount(index, last_score, last_score)
            rows = self.redis.zrevrangebyscore(index, "+inf" if last_score is None else last_score,
                                               "-inf", start=0, num=batch + extra, withscores=True)
            rows = [(i.decode(), s) for i, s in rows]
            fresh = [(i, s) for i, s in rows
                     if last_score is None or s < last_score or (s == last_score and i < last_id)]
            if not fresh:
                return items, None
            pipe = self.redis.pipeline(transaction=False)
            for rid, _ in fresh:
                pipe.hgetall(self.record_key(rid))
            for (rid, score), raw in zip(fresh, pipe.execute()):
                last_score, last_id = score, rid
                if not raw:  # expired: drop it from the indexes
                    self.redis.zrem(index, rid)
                    continue
                rec = _text(raw)
                if ((clock and rec.get("clock") != clock)
                        or (campaign_id and rec.get("campaignId") != campaign_id)
                        or (job_type and rec.get("type") != job_type)):
                    continue
                items.append(rec)
                if len(items) == limit:
                    return items, f"{int(score)}:{rid}"
            if len(rows) < batch + extra:
                return items, None

    def counts(self) -> dict:
        """``{state: count}`` and the earliest due cursors: ``{"states", "nextWall",
        "nextWorld": [(campaign, cursor), ...]}``."""
        campaigns = sorted(c.decode() for c in self.redis.smembers(self.key("campaigns")))
        pipe = self.redis.pipeline(transaction=False)
        for state in STATES:
            pipe.zcard(self.key("state", state))
        pipe.zrange(self.key("due", "wall"), 0, 0, withscores=True)
        for campaign in campaigns:
            pipe.zrange(self.key("due", "world", campaign), 0, 0, withscores=True)
        answers = pipe.execute()
        states = dict(zip(STATES, answers[:len(STATES)]))
        wall = answers[len(STATES)]
        worlds = [(c, int(first[0][1])) for c, first in zip(campaigns, answers[len(STATES) + 1:])
                  if first]
        return {"states": states, "nextWall": int(wall[0][1]) if wall else None,
                "nextWorld": worlds}

    def active_timers(self, batch: int):
        """Chunks of ``(id, seq, tick job id)`` of every active recurring job."""
        index = self.key("state", "active")
        start = 0
        while True:
            ids = [i.decode() for i in self.redis.zrange(index, start, start + batch - 1)]
            if not ids:
                return
            pipe = self.redis.pipeline(transaction=False)
            for rid in ids:
                pipe.hmget(self.record_key(rid), "seq", "tickJob")
            yield [(rid, int(seq), (tick or b"").decode())
                   for rid, (seq, tick) in zip(ids, pipe.execute()) if seq is not None]
            start += batch

    def stats(self) -> dict[tuple[str, str, str], int]:
        """``{(outcome, clock, policy): count}`` of occurrences created and skipped."""
        out = {}
        for field, value in self.redis.hgetall(self.key("stats")).items():
            outcome, clock, policy = field.decode().split(":", 2)
            out[(outcome, clock, policy)] = int(value)
        return out

    # -- changes, queued on a transaction ----------------------------------------------
    def queue_save(self, pipe, rid: str, fields: dict, idempotency_key: str | None) -> None:
        self._save(args=[self.prefix, rid, idempotency_key or "", *_flat(fields)], client=pipe)

    def queue_advance(self, pipe, rid: str, *, tick: str, seq: int, now: int, plan,
                      next_tick: str, created: list[tuple[int, str]]) -> None:
        args = [self.prefix, rid, tick, seq, now, self.retention_s,
                "" if plan.cursor is None else plan.cursor, next_tick, plan.ended or "",
                "" if plan.skipped is None else plan.skipped,
                _blank(plan.skipped_from), _blank(plan.skipped_to), len(created)]
        for at, job_id in created:
            args += [at, job_id]
        self._advance(args=args, client=pipe)

    def queue_update(self, pipe, rid: str, *, seq: int, now: int, state: str, cursor,
                     tick: str, fields: dict, skipped=(0, None, None)) -> None:
        count, first, last = skipped
        self._update(args=[self.prefix, rid, seq, now, self.retention_s, state,
                           _blank(cursor), tick, count or 0, _blank(first), _blank(last),
                           *_flat(fields)], client=pipe)


def history_view(entry: dict) -> dict:
    """An occurrence-history entry as the API shows it (times in ISO-8601)."""
    if entry.get("kind") == "created":
        return {"kind": "created", "occurrence": iso_ms(entry["at"]), "jobId": entry["jobId"],
                "reason": None, "skippedFrom": None, "skippedTo": None, "skippedCount": None,
                "recordedAt": iso_ms(entry["recordedAt"])}
    return {"kind": "skipped", "occurrence": None, "jobId": None,
            "reason": entry.get("reason", "catchUp"),
            "skippedFrom": iso_ms(entry.get("from")), "skippedTo": iso_ms(entry.get("to")),
            "skippedCount": entry.get("count"), "recordedAt": iso_ms(entry["recordedAt"])}


def _text(raw: dict) -> dict:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _blank(value) -> str | int:
    return "" if value is None else value


def _flat(fields: dict) -> list:
    flat = []
    for k, v in fields.items():
        flat += [k, "" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v)]
    return flat
