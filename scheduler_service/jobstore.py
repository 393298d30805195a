"""Job records, durable timers and their state machine, in Redis.

Keys (all under ``REDIS_NAMESPACE``):

* ``job:{id}`` — hash: the job record (type, payload, campaign, priority, due times,
  state, attempts, last error, result, timestamps, and the encoded Dramatiq message that
  the pump will enqueue);
* ``job:{id}:history`` — list: the job's transitions (capped); ``audit`` — stream of every
  transition of every job (capped);
* ``jobs:all``, ``jobs:state:{state}``, ``jobs:type:{type}`` and ``jobs:campaign:{campaign}``
  — sorted sets of ids by creation time, the listing's indexes; ``jobs:indexes`` — the set
  of the type and campaign indexes there are (for pruning, without a scan);
* ``timers:wall`` — sorted set of scheduled ids, score = due epoch ms;
* ``timers:world:{campaign}`` — the same per campaign, score = due *world* time in ms;
* ``worldtime`` — hash: the last world time seen per campaign;
* ``idem:{scope}:{key}`` — the job id an idempotency key created; ``scope`` is ``api`` for
  keys given over the REST API and ``internal`` for the service's own (cron ticks, fan-out,
  reactions), so a client's key can never take the place of a tick's.

Every state change is one Lua script call (:mod:`scheduler_service.jobscripts`), so a change is all or nothing, a timer is
promoted into its Dramatiq queue exactly once however many pumps run, and a
transition only happens from the states it is allowed from. (The scripts touch keys
they compute from the namespace; this is fine on a single Redis or a primary with
replicas, not on Redis Cluster.)
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import jsontext, wire
from .combining import Combiner
from .jobscripts import (  # noqa: F401
    AUDIT_MAXLEN, CREATE, CREATE_MANY, HISTORY_LIMIT, PUMP, REMEMBER_WORLD_TIME, TRANSITION,
)
from .redis_client import HeldConnection
from .times import MAX_TIME_MS, MIN_TIME_MS, iso_ms, now_ms, parse_iso_ms  # noqa: F401

#: Scopes of idempotency keys: given over the REST API, or used by the service itself.
KEY_SCOPES = ("api", "internal")

STATES = ("scheduled", "queued", "running", "succeeded", "failed", "dead", "cancelled")
TERMINAL = ("succeeded", "dead", "cancelled")

_RECORD_FIELDS = ("id", "type", "campaignId", "payload", "priority", "state", "runAt",
                  "runAtWorldTime", "attempts", "lastError", "result", "createdAt",
                  "updatedAt", "idempotencyKey", "deadLetter")

def request_fingerprint(job: dict, run_at_ms, run_at_world_ms) -> str:
    """A digest of what a create asked for (type, campaign, payload, priority, due times).

    Stored with a job created under an idempotency key, so that a second create with the
    same key can be told apart: the same request again, or a different one reusing the key.
    """
    asked = {"type": job["type"], "campaignId": job["campaignId"], "payload": job["payload"],
             "priority": job["priority"], "runAt": run_at_ms, "runAtWorldTime": run_at_world_ms}
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TransitionResult:
    """Outcome of a guarded transition: ``ok``, the state found, or ``missing``."""

    ok: bool
    previous: str | None

    @property
    def missing(self) -> bool:
        return self.previous is None


class JobStore:
    """Reads and changes job records and timers; the only code that knows their keys."""

    def __init__(self, redis, namespace: str, retention_hours: int = 168, *, clock=now_ms):
        self.redis = redis
        self.namespace = namespace
        self.prefix = f"{namespace}:"
        self.retention_s = int(retention_hours * 3600)
        #: ``clock() -> epoch ms``: the time every change is stamped with (tests pass theirs).
        self.clock = clock
        self._create_script = redis.register_script(CREATE)
        #: Creates from concurrent threads (web requests) share one call (group commit).
        self._create = Combiner(self._send_creates)
        #: The combiner sends one call at a time: on a connection it keeps.
        self._create_connection = HeldConnection(redis)
        self._create_many = redis.register_script(CREATE_MANY)
        self._pump = redis.register_script(PUMP)
        self._transition = redis.register_script(TRANSITION)
        self._remember_world_time = redis.register_script(REMEMBER_WORLD_TIME)
        # Atomic with the creates' SADD: a registry entry goes only while its index is empty.
        self._forget_empty_index = redis.register_script(
            "if redis.call('exists', KEYS[1]) == 0 then return redis.call('srem', KEYS[2], KEYS[1]) "
            "end return 0")
        self._set_existing = redis.register_script(
            "if redis.call('exists', KEYS[1]) == 1 then "
            "redis.call('hset', KEYS[1], unpack(ARGV)) return 1 end return 0")

    # -- keys ------------------------------------------------------------------------
    def key(self, *parts) -> str:
        return self.prefix + ":".join(parts)

    @property
    def wall_timers(self) -> str:
        return self.key("timers", "wall")

    def world_timers(self, campaign_id: str) -> str:
        return self.key("timers", "world", campaign_id)

    # -- create ----------------------------------------------------------------------
    def create(self, job: dict, *, run_at_ms=None, run_at_world_ms=None, idempotency_key=None,
               key_scope: str = "internal"):
        """Store a new job and schedule or enqueue it, atomically.

        Args:
            job: ``{"id", "type", "campaignId", "payload", "priority"}`` (validated).
            run_at_ms: wall-clock due time; ``None`` with no world time means due now.
            run_at_world_ms: due time on the campaign's world clock.
            idempotency_key: a second create with the same key (in the same scope) returns
                the first job.
            key_scope: ``api`` for keys given by API clients, ``internal`` for the service's.

        Returns:
            ``(record, created)``; ``created`` is False when the key matched a job.
        """
        if key_scope not in KEY_SCOPES:
            raise ValueError(f"key_scope must be one of {KEY_SCOPES}, got {key_scope!r}")
        args, fields = self._create_args(job, run_at_ms, run_at_world_ms, idempotency_key,
                                         key_scope)
        created, answer = self._create(args[1:])
        if created:
            # The record is what was sent, in the state the script chose: no second read.
            state = answer.decode() if isinstance(answer, bytes) else answer
            return _new_record(job, fields, state), True
        return _record(dict(zip(answer[::2], answer[1::2]))), False

    def _send_creates(self, calls) -> list:
        """One CREATE call for the creates in ``calls`` (each its argument list after P)."""
        args = [self.prefix]
        for call in calls:
            args.append(len(call))
            args.extend(call)
        return self._create_connection.run_script(self._create_script, args)

    def create_many(self, entries, batch: int = 500) -> int:
        """Create many jobs (no idempotency keys), ``batch`` per Lua call; returns how many.

        The arguments of the next batch are built while Redis runs the previous one.

        Args:
            entries: ``(job, run_at_ms, run_at_world_ms)`` tuples, as for :meth:`create`.
        """
        count = 0
        pending = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="create-many") as sender:
            chunk: list = []
            for job, run_at_ms, run_at_world_ms in entries:
                chunk.append((job, run_at_ms, run_at_world_ms))
                if len(chunk) == batch:
                    args = self._create_many_args(chunk)
                    if pending is not None:
                        count += pending.result()
                    pending = sender.submit(self._create_many, args=args)
                    chunk = []
            if chunk:
                args = self._create_many_args(chunk)
                if pending is not None:
                    count += pending.result()
                pending = sender.submit(self._create_many, args=args)
            if pending is not None:
                count += pending.result()
        return count

    def queue_create_many(self, pipe, entries) -> None:
        """Queue the create of several jobs, each under an idempotency key (scope
        ``internal``), on ``pipe`` (a ``MULTI`` transaction), to commit with other writes.

        A job whose key already names a job is left out; the answer is not read back, so
        the caller derives each job's id from its key (the same key, the same id).

        Args:
            entries: ``(job, run_at_ms, run_at_world_ms, idempotency_key, extra_fields)``;
                ``extra_fields`` are internal fields stored with the record (a recurring
                job's occurrence), written with it, so no worker sees the job without them.
        """
        self._create_many(args=self._create_many_args(entries), client=pipe)

    def _create_many_args(self, chunk) -> list:
        now = self.clock()
        args = [self.prefix, now, len(chunk)]
        for job, run_at_ms, run_at_world_ms, *keyed in chunk:
            key, extra = keyed if keyed else (None, None)
            call, _ = self._create_args(job, run_at_ms, run_at_world_ms, key,
                                        "internal" if key else None, now=now)
            # call: P, now, id, idem, timer, due, campaign, fields... (the script stores
            # every field/value pair it is given with the record)
            fields = call[7:] + flat_fields(extra or {})
            args += [job["id"], call[4], call[5], job["campaignId"], call[3], len(fields), *fields]
        return args

    def _create_args(self, job, run_at_ms, run_at_world_ms, idempotency_key, key_scope, now=None):
        """The create script's arguments, and the record's fields they store."""
        now = self.clock() if now is None else now
        scoped = f"{key_scope}:{idempotency_key}" if idempotency_key else ""
        queue, rid, message = wire.encode_message(job)
        timer, due = "", ""
        if run_at_world_ms is not None:
            timer, due = "world", run_at_world_ms
        elif run_at_ms is not None and run_at_ms > now:
            timer, due = "wall", run_at_ms
        fields = {
            "id": job["id"], "type": job["type"], "campaignId": job["campaignId"],
            "payload": jsontext.dumps(job["payload"]), "priority": job["priority"],
            "runAt": "" if run_at_ms is None else run_at_ms,
            "runAtWorldTime": "" if run_at_world_ms is None else run_at_world_ms,
            "attempts": 0, "createdAt": now, "updatedAt": now,
            "queue": queue, "rid": rid, "message": message,
        }
        # Empty fields (last error, result, dead-letter mark) are simply absent until set.
        if scoped:
            fields["idempotencyKey"] = idempotency_key
            fields["idemKey"] = scoped
            fields["requestHash"] = request_fingerprint(job, run_at_ms, run_at_world_ms)
        flat = [x for kv in fields.items() for x in kv]
        return [self.prefix, now, job["id"], scoped, timer, due, job["campaignId"], *flat], fields

    # -- read ------------------------------------------------------------------------
    def get(self, job_id: str) -> dict | None:
        """The public record of a job, or None."""
        raw = self.redis.hgetall(self.key("job", job_id))
        return _record(raw) if raw else None

    def get_many(self, job_ids) -> dict[str, dict]:
        """``{id: public record}`` of the jobs that exist among ``job_ids``, in one round trip."""
        ids = list(job_ids)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.key("job", job_id))
        return {job_id: _record(raw) for job_id, raw in zip(ids, pipe.execute()) if raw}

    def get_internal(self, job_id: str, *fields) -> list:
        return [v.decode() if isinstance(v, bytes) else v
                for v in self.redis.hmget(self.key("job", job_id), *fields)]

    def history(self, job_id: str) -> list[dict]:
        entries = self.redis.lrange(self.key("job", job_id, "history"), 0, -1)
        out = []
        for raw in entries:
            e = json.loads(raw)
            out.append({"at": iso_ms(e["at"]), "from": e["from"] or None, "to": e["to"],
                        "detail": e["detail"]})
        return out

    def list(self, *, state=None, job_type=None, campaign_id=None, limit=50, cursor=None,
             dead_letters_only=False, batch=None):
        """Newest first, filtered; returns ``(records, next cursor or None)``.

        The cursor is the creation time and id of the last item returned, so pages stay
        stable while new jobs arrive. ``batch``: ids read per round trip (default twice
        ``limit``, at least 100).

        The ids are read from the smallest index among the filters' (state, type,
        campaign: all scored by creation time, so one cursor fits each), and the other
        filters are checked on the records: a filter that matches nothing reads an empty
        index and answers at once.
        """
        index = self._smallest_index(state, job_type, campaign_id)
        # Keyset paging: continue below the last (score, id) seen, within one call as across
        # calls, so jobs arriving, leaving or expiring meanwhile never make an item repeat
        # or be skipped. Same-score members come in descending id order.
        last_score, last_id = None, None
        if cursor:
            score, _, last_id = cursor.partition(":")
            try:
                last_score = float(int(score))
            except ValueError:
                raise ValueError(f"cursor {cursor!r} is not one this API returned") from None
        items: list[dict] = []
        batch = batch or max(limit * 2, 100)
        while len(items) < limit:
            at_boundary = 0 if last_score is None else self.redis.zcount(index, last_score, last_score)
            ids = self.redis.zrevrangebyscore(
                index, "+inf" if last_score is None else last_score, "-inf",
                start=0, num=batch + at_boundary, withscores=True)
            ids = [(i.decode(), s) for i, s in ids]
            fresh = [(i, s) for i, s in ids
                     if last_score is None or s < last_score or (s == last_score and i < last_id)]
            if not fresh:
                return items, None
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _ in fresh:
                pipe.hgetall(self.key("job", job_id))
            for (job_id, score), raw in zip(fresh, pipe.execute()):
                last_score, last_id = score, job_id
                if not raw:  # expired record: drop it from the indexes
                    self.redis.zrem(index, job_id)
                    continue
                if dead_letters_only and raw.get(b"deadLetter") != b"1":
                    continue
                rec = _record(raw)
                if state and rec["state"] != state:
                    continue
                if job_type and rec["type"] != job_type:
                    continue
                if campaign_id and rec["campaignId"] != campaign_id:
                    continue
                items.append(rec)
                if len(items) == limit:
                    return items, f"{int(score)}:{job_id}"
            if len(ids) < batch + at_boundary:
                return items, None
        return items, None

    def _smallest_index(self, state, job_type, campaign_id) -> str:
        """The listing index to read for these filters: the smallest of theirs, else all."""
        filters = (("state", state), ("type", job_type), ("campaign", campaign_id))
        indexes = [self.key("jobs", kind, value) for kind, value in filters if value]
        if not indexes:
            return self.key("jobs", "all")
        if len(indexes) == 1:
            return indexes[0]
        pipe = self.redis.pipeline(transaction=False)
        for index in indexes:
            pipe.zcard(index)
        sizes = pipe.execute()
        return min(zip(sizes, indexes))[1]

    # -- transitions -----------------------------------------------------------------
    def transition(self, job_id, allowed, to, detail="", **fields) -> TransitionResult:
        """Move a job to ``to`` if its state is one of ``allowed``, setting ``fields``."""
        ok, previous = self._transition(args=[
            self.prefix, self.clock(), job_id, ",".join(allowed), to, detail, self.retention_s, "",
            *flat_fields(fields),
        ])
        previous = previous.decode() if isinstance(previous, bytes) else previous
        return TransitionResult(ok == 1, previous if ok != -1 else None)

    def _fresh_message(self, job_id, payload=None, priority=None) -> dict | None:
        """Fields of a new Dramatiq message for the stored job, with optional changes."""
        type_, campaign, old_payload, old_priority = self.get_internal(
            job_id, "type", "campaignId", "payload", "priority")
        if type_ is None:
            return None
        job = {"id": job_id, "type": type_, "campaignId": campaign,
               "payload": json.loads(old_payload) if payload is None else payload,
               "priority": int(old_priority) if priority is None else priority}
        queue, rid, message = wire.encode_message(job)
        return {"payload": json.dumps(job["payload"]), "priority": job["priority"],
                "queue": queue, "rid": rid, "message": message}

    def reschedule(self, job_id, due_ms, *, detail, from_states=("running",), **fields):
        """Put a job back on the wall timer at ``due_ms`` with a fresh message."""
        fresh = self._fresh_message(job_id)
        if fresh is None:
            return TransitionResult(False, None)
        return self.transition(job_id, from_states, "scheduled", detail, runAt=due_ms,
                               runAtWorldTime="", **fresh, **fields)

    def requeue(self, job_id, *, detail, from_states, payload=None, priority=None, **fields):
        """Enqueue a job again now (dead-letter replay), optionally with a new payload."""
        fresh = self._fresh_message(job_id, payload, priority)
        if fresh is None:
            return TransitionResult(False, None)
        return self.transition(job_id, from_states, "queued", detail, **fresh, **fields)

    def set_internal(self, job_id: str, **fields) -> bool:
        """Set internal fields of an existing record (a handler's checkpoint); False if gone."""
        flat = [x for kv in fields.items() for x in kv]
        return bool(self._set_existing(keys=[self.key("job", job_id)], args=flat))

    def swap_keyed_timer(self, campaign_id: str, key: str, job_id: str | None) -> str | None:
        """Make ``job_id`` the job under a timer key (None forgets the key); returns the
        previous one. See :meth:`scheduler_service.context.JobHelpers.replace_timer`."""
        name = self.key("timerkey", campaign_id, key)
        previous = self.redis.getdel(name) if job_id is None else self.redis.getset(name, job_id)
        return previous.decode() if previous else None

    def keyed_timer(self, campaign_id: str, key: str) -> str | None:
        """The job under a timer key, or None."""
        value = self.redis.get(self.key("timerkey", campaign_id, key))
        return value.decode() if value else None

    def running_records(self, limit: int) -> list[tuple[str, str, int, str, str]]:
        """``(id, type, running since ms, queue, redis message id)`` of up to ``limit``
        ``running`` jobs, oldest created first."""
        ids = self.redis.zrange(self.key("jobs", "state", "running"), 0, limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.key("job", job_id.decode()), "state", "type", "updatedAt", "queue", "rid")
        out = []
        for job_id, (state, type_, since, queue, rid) in zip(ids, pipe.execute()):
            if state != b"running":
                continue
            out.append((job_id.decode(), (type_ or b"").decode(), int(since or 0),
                        (queue or b"").decode(), (rid or b"").decode()))
        return out

    def message_pending(self, queue: str, rid: str) -> bool:
        """Whether Dramatiq still holds the message ``rid`` of ``queue`` (queued or unacked)."""
        return wire.message_pending(self.redis, self.prefix, queue, rid)

    def is_dead_letter(self, job_id) -> bool:
        return self.redis.hget(self.key("job", job_id), "deadLetter") == b"1"

    def _drop_dead_copy(self, job_id):
        """Remove Dramatiq's dead-letter copy of the job's last message."""
        queue, rid = self.get_internal(job_id, "queue", "rid")
        if queue and rid:
            wire.drop_dead_copy(self.redis, self.prefix, queue, rid)

    def replay_dead_letter(self, job_id, *, payload=None, detail):
        """Enqueue a dead job again now, its attempts counted afresh; history is kept."""
        self._drop_dead_copy(job_id)
        return self.requeue(job_id, detail=detail, from_states=("dead",), payload=payload,
                            attempts=0, deadLetter="", lastError=None, result=None)

    def discard_dead_letter(self, job_id, *, detail="dead letter discarded"):
        """Drop a dead job from the dead letters; its record stays until retention ends."""
        self._drop_dead_copy(job_id)
        return self.transition(job_id, ("dead",), "dead", detail, deadLetter="")

    def update_scheduled(self, job_id, *, run_at_ms=None, run_at_world_ms=None, priority=None):
        """Change the due time or priority of a ``scheduled`` job (its timer moves with it)."""
        old_priority, old_wall, old_world = self.get_internal(job_id, "priority", "runAt", "runAtWorldTime")
        fresh = self._fresh_message(job_id, priority=priority)
        if fresh is None:
            return TransitionResult(False, None)
        wall = old_wall or ""
        world = old_world or ""
        if run_at_ms is not None:
            wall, world = run_at_ms, ""
        elif run_at_world_ms is not None:
            wall, world = "", run_at_world_ms
        changes = []
        if priority is not None:
            changes.append(f"priority {old_priority} -> {priority}")
        if run_at_ms is not None or run_at_world_ms is not None:
            changes.append("due time changed")
        return self.transition(job_id, ["scheduled"], "scheduled", "updated: " + ", ".join(changes),
                               runAt=wall, runAtWorldTime=world, **fresh)

    # -- timers ----------------------------------------------------------------------
    def pump(self, timer_key: str, max_score: int, limit: int = 1000, detail="due") -> tuple[int, int]:
        """Promote up to ``limit`` timers due at ``max_score`` into their queues.

        The same call counts the promotions of the timer's clock in the metrics, and for
        wall timers how late each one was (see :mod:`scheduler_service.metrics`).

        Returns:
            ``(jobs enqueued, timers removed)``.
        """
        clock = "wall" if timer_key == self.wall_timers else "world"
        moved, seen = self._pump(keys=[timer_key],
                                 args=[self.prefix, self.clock(), max_score, limit, detail, clock])
        return moved, seen

    def prune_indexes(self, limit: int = 1000) -> int:
        """Drop ids of expired records from the listing indexes; returns how many.

        Records expire on their own (``JOB_RETENTION_HOURS``); their ids in the sorted-set
        indexes do not, so the oldest ids older than the retention are checked here.
        """
        cutoff = self.clock() - self.retention_s * 1000
        removed = 0
        registry = self.key("jobs", "indexes")
        named = sorted(i.decode() for i in self.redis.smembers(registry))
        indexes = [self.key("jobs", "all")] + [self.key("jobs", "state", s) for s in STATES] + named
        for index in indexes:
            ids = self.redis.zrangebyscore(index, "-inf", cutoff, start=0, num=limit)
            if not ids:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.exists(self.key("job", job_id.decode()))
            gone = [job_id for job_id, exists in zip(ids, pipe.execute()) if not exists]
            if gone:
                removed += self.redis.zrem(index, *gone)
                if index in named:  # an emptied type or campaign index leaves the registry
                    self._forget_empty_index(keys=[index, registry])
        return removed

    def next_wall_due(self) -> int | None:
        first = self.redis.zrange(self.wall_timers, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def waiting_timers(self, campaign_id: str | None = None, limit: int = 50) -> tuple[int, list]:
        """The timers of the wall clock (``campaign_id`` None) or of one campaign's world clock.

        Returns:
            ``(how many wait, [(job id, due epoch ms)] of the first ``limit``, soonest first)``.
        """
        key = self.wall_timers if campaign_id is None else self.world_timers(campaign_id)
        if limit <= 0:
            return int(self.redis.zcard(key)), []
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(key)
        pipe.zrange(key, 0, limit - 1, withscores=True)
        total, first = pipe.execute()
        return int(total), [(job_id.decode(), int(due)) for job_id, due in first]

    def count_by_state(self) -> dict[str, int]:
        """``{state: jobs}`` from the listing indexes (ids of expired records count until
        :meth:`prune_indexes` drops them)."""
        pipe = self.redis.pipeline(transaction=False)
        for state in STATES:
            pipe.zcard(self.key("jobs", "state", state))
        return dict(zip(STATES, (int(n) for n in pipe.execute())))

    def remember_world_time(self, campaign_id: str, world_ms: int) -> bool:
        """Keep the newest world time seen for a campaign: one atomic compare-and-set, so
        two subscribers can never move it backwards. Returns whether it moved."""
        return bool(self._remember_world_time(args=[self.prefix, campaign_id, int(world_ms)]))

    def remembered_world_time(self, campaign_id: str) -> int | None:
        """The world time the pumps last reached for a campaign (epoch ms), or None."""
        value = self.redis.hget(self.key("worldtime"), campaign_id)
        return None if value is None else int(value)

    def reset_world_time(self, campaign_id: str, world_ms: int | None) -> int | None:
        """Set a campaign's remembered world time, backwards too (None forgets it).

        For an operator repairing a clock that went wrong; returns the previous value.
        Timers already promoted stay promoted; those still waiting keep waiting for it.
        """
        key = self.key("worldtime")
        pipe = self.redis.pipeline()
        pipe.hget(key, campaign_id)
        if world_ms is None:
            pipe.hdel(key, campaign_id)
        else:
            pipe.hset(key, campaign_id, world_ms)
        previous = pipe.execute()[0]
        return None if previous is None else int(previous)

    def world_clock(self, campaign_id: str) -> dict:
        """``{"campaignId", "rememberedMs", "pending", "nextDueMs"}`` of one campaign."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.key("worldtime"), campaign_id)
        pipe.zcard(self.world_timers(campaign_id))
        pipe.zrange(self.world_timers(campaign_id), 0, 0, withscores=True)
        remembered, pending, first = pipe.execute()
        return {"campaignId": campaign_id,
                "rememberedMs": None if remembered is None else int(remembered),
                "pending": int(pending), "nextDueMs": int(first[0][1]) if first else None}

    def remembered_campaigns(self) -> set[str]:
        """The campaigns whose world time the pumps have seen (one read, no scan)."""
        return {c.decode() for c in self.redis.hkeys(self.key("worldtime"))}

    def world_clock_campaigns(self) -> list[str]:
        """Every campaign with a remembered world time or waiting world timers, sorted."""
        names = self.remembered_campaigns()
        prefix = self.world_timers("")
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            names.add(key.decode()[len(prefix):])
        return sorted(names)


def flat_fields(fields: dict) -> list:
    """``{field: value}`` as the flat list a script takes (None as '', dicts and lists as JSON)."""
    flat = []
    for k, v in fields.items():
        flat += [k, "" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v)]
    return flat


def _new_record(job: dict, fields: dict, state: str) -> dict:
    """The public record of a job just created from ``fields`` (what :func:`_record` would
    read back, without reading it back)."""
    return {
        "id": job["id"], "type": job["type"], "campaignId": job["campaignId"],
        "payload": job["payload"], "priority": job["priority"], "state": state,
        "runAt": iso_ms(fields["runAt"]), "runAtWorldTime": iso_ms(fields["runAtWorldTime"]),
        "attempts": 0, "lastError": None, "result": None,
        "createdAt": iso_ms(fields["createdAt"]), "updatedAt": iso_ms(fields["updatedAt"]),
        "idempotencyKey": fields.get("idempotencyKey") or None,
    }


def _record(raw: dict) -> dict:
    """The public record of a stored hash; total, so that one bad record never breaks a list.

    A field that does not parse shows as such (``"invalid time: ..."``, ``{"invalid": ...}``)
    rather than raising.
    """
    r = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}

    def as_json(text):
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"invalid": text}

    def as_int(text):
        try:
            return int(text or 0)
        except ValueError:
            return -1

    payload = as_json(r.get("payload"))
    return {
        "id": r.get("id", ""),
        "type": r.get("type", ""),
        "campaignId": r.get("campaignId", ""),
        "payload": payload if isinstance(payload, dict) else ({} if payload is None else {"invalid": payload}),
        "priority": as_int(r.get("priority")),
        "state": r.get("state", ""),
        "runAt": iso_ms(r.get("runAt")),
        "runAtWorldTime": iso_ms(r.get("runAtWorldTime")),
        "attempts": as_int(r.get("attempts")),
        "lastError": r.get("lastError") or None,
        "result": as_json(r.get("result")),
        "createdAt": iso_ms(r.get("createdAt")) or "",
        "updatedAt": iso_ms(r.get("updatedAt")) or "",
        "idempotencyKey": r.get("idempotencyKey") or None,
    }
