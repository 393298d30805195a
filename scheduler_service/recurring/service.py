"""Recurring jobs: their records, and creating, changing and cancelling them.

A recurring job keeps exactly one timer: a ``RECURRING_TICK`` job due at its next
occurrence on its clock (a wall timer, or a world timer of its campaign), whose pass is
:mod:`scheduler_service.recurring.tick`. Every change here is one ``MULTI`` under
``WATCH`` of the record: the record's scripts (:mod:`.store`) with the job-store creates
that go with them, so a change decided on a stale read is never committed. Ids and keys
of the jobs a recurring job makes are derived from what they stand for (the occurrence,
or the tick's sequence number and due time), so a commit repeated after a failure makes
the same jobs, never new ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass

import redis as redis_lib

from ..context import Occurrence
from ..errors import SchedulerServiceError
from ..times import iso_ms
from .pattern import Schedule, add_months, build_pattern, parse_duration
from .plan import COUNT_CAP
from .store import RecurringStore

logger = logging.getLogger(__name__)

#: The job type of a recurring job's timer.
TICK_TYPE = "RECURRING_TICK"
#: Priority of the ticks: high, so a backlog of occurrences never delays the next ones.
TICK_PRIORITY = 9
#: Key of the store in ``Services.extras``.
EXTRAS_KEY = "recurring"
#: Commits tried before a pass gives up (and its tick is retried).
MAX_COMMITS = 8
#: Occurrences listed by ``GET /recurring/{id}``.
UPCOMING = 5
#: Jobs per job-store script call within a commit.
BATCH = 500
#: The namespace of the ids derived from keys (uuid5): same key, same job id.
ID_NAMESPACE = uuid.UUID("6f1c9a52-5d0e-4c57-9a53-3b1f7b7a2c11")


class RecurringError(SchedulerServiceError):
    """A request about a recurring job that cannot be carried out."""


class RecurringNotFound(RecurringError):
    """No recurring job has that id (or it expired)."""


class RecurringStateError(RecurringError):
    """The change is not allowed in the recurring job's state."""


class InvalidRecurrence(RecurringError):
    """The definition cannot work; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Definition:
    """A recurring job's record, parsed."""

    id: str
    type: str
    campaign_id: str
    payload: dict
    priority: int
    clock: str
    cron: str | None
    every: str | None
    start: int
    start_at: int | None
    end_at: int | None
    max_occurrences: int | None
    catch_up: str
    catch_up_window: str | None
    state: str
    cursor: int | None
    seq: int
    tick_job: str
    count: int
    skipped: int
    last_occurrence: int | None
    last_job: str | None
    fields: dict

    @classmethod
    def from_fields(cls, f: dict) -> "Definition":
        def num(name):
            value = f.get(name, "")
            return None if value == "" else int(value)

        return cls(
            id=f["id"], type=f["type"], campaign_id=f["campaignId"],
            payload=json.loads(f.get("payload") or "{}"), priority=int(f["priority"]),
            clock=f["clock"], cron=f.get("cron") or None, every=f.get("every") or None,
            start=int(f["start"]), start_at=num("startAt"), end_at=num("endAt"),
            max_occurrences=num("maxOccurrences"), catch_up=f.get("catchUp", "all"),
            catch_up_window=f.get("catchUpWindow") or None, state=f["state"],
            cursor=num("cursor"), seq=int(f.get("seq") or 1), tick_job=f.get("tickJob", ""),
            count=int(f.get("count") or 0), skipped=int(f.get("skippedTotal") or 0),
            last_occurrence=num("lastOccurrence"), last_job=f.get("lastJobId") or None, fields=f)

    @property
    def window_ms(self) -> int | None:
        if not self.catch_up_window:
            return None
        return round(parse_duration(self.catch_up_window).approx_ms)

    def schedule(self) -> Schedule:
        pattern = build_pattern(cron=self.cron, every=self.every, anchor_ms=self.start)
        return Schedule(pattern, self.start, self.end_at)


def recurring_store(services) -> RecurringStore:
    """The process's recurring-job store, built on first use."""
    return services.per_process(EXTRAS_KEY, lambda: RecurringStore(
        services.redis, services.settings.redis_namespace, services.jobs.retention_s))


@contextlib.contextmanager
def watched(services, rid: str):
    """A transaction pipeline watching recurring job ``rid``'s record, with the record as
    read under the watch: ``(pipe, definition or None when there is none)``. A commit on
    the pipeline fails with ``WatchError`` when the record changed meanwhile."""
    store = recurring_store(services)
    with services.redis.pipeline(transaction=True) as pipe:
        pipe.watch(store.record_key(rid))
        fields = store.get(rid, client=pipe)
        yield pipe, (None if fields is None else Definition.from_fields(fields))


def occurrence_key(rid: str, at_ms: int) -> str:
    """The idempotency key of an occurrence's job: ``recurring:{id}:{occurrence time}``."""
    return f"recurring:{rid}:{iso_ms(at_ms)}"


def occurrence_job_id(rid: str, at_ms: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, occurrence_key(rid, at_ms)))


def _tick_key(rid: str, seq: int, due_ms: int) -> str:
    return f"recurring-tick:{rid}:{seq}:{iso_ms(due_ms)}"


def tick_job_id(rid: str, seq: int, due_ms: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, _tick_key(rid, seq, due_ms)))


def clock_now(services, clock: str, campaign_id: str) -> int:
    """The reading of a recurrence's clock: the job store's wall clock, or the world time
    the campaign's pumps last reached (the API's, when none is remembered).

    Raises:
        RecurringError: the campaign has no world clock (any more).
        UpstreamError: the API was needed and could not be asked.
    """
    if clock == "wall":
        return services.jobs.clock()
    remembered = services.jobs.remembered_world_time(campaign_id)
    if remembered is not None:
        return remembered
    from ..campaigns import get_campaign_directory

    known = get_campaign_directory(services).lookup(campaign_id)
    if known.world_time_ms is None:
        raise RecurringError(f"campaign {campaign_id} has no world clock now")
    return known.world_time_ms


def tick_entry(rid, campaign_id, clock, seq, due_ms) -> tuple:
    """The job-store entry of a tick (see ``JobStore.queue_create_many``)."""
    job = {"id": tick_job_id(rid, seq, due_ms), "type": TICK_TYPE, "campaignId": campaign_id,
           "payload": {"recurringId": rid, "seq": seq}, "priority": TICK_PRIORITY}
    wall, world = (None, due_ms) if clock == "world" else (due_ms, None)
    return job, wall, world, _tick_key(rid, seq, due_ms), None


def queue_jobs(services, pipe, entries) -> None:
    # Batches of BATCH keep each script call's tables far below Lua's unpack limit.
    for start in range(0, len(entries), BATCH):
        services.jobs.queue_create_many(pipe, entries[start:start + BATCH])


def _start_of(every: str | None, start_at: int | None, now: int) -> int:
    """Where a pattern begins: ``startAt``; else, for ``every``, one interval from now
    (the first occurrence is one period away), and for cron, now."""
    if start_at is not None:
        return start_at
    if every is None:
        return now
    d = parse_duration(every)
    moved = add_months(now, d.months)
    if moved is None:
        raise InvalidRecurrence("every", "the first occurrence would fall past the year 9999")
    return moved + d.fixed_ms


# -- create ----------------------------------------------------------------------------

def create(services, spec: dict, *, now: int, idempotency_key: str | None = None,
           request_hash: str = "") -> tuple[dict, bool]:
    """Store a recurring job and place its first timer, atomically.

    Args:
        spec: ``type``, ``campaignId``, ``payload`` (validated), ``priority``, ``clock``,
            ``cron`` or ``every``, ``startAt``/``endAt`` (epoch ms of the clock, or None),
            ``maxOccurrences``, ``catchUp``, ``catchUpWindow``.
        now: the clock's reading (the world time of the campaign for ``world``).
        idempotency_key: a second create with the key returns the first recurring job.
        request_hash: stored with the key, so that a different request reusing it is known.

    Returns:
        ``(record fields, created)``.

    Raises:
        InvalidRecurrence: no occurrence can ever fall (``endAt`` before the first).
    """
    store = recurring_store(services)
    rid = str(uuid.uuid4())
    start = _start_of(spec.get("every"), spec.get("startAt"), now)
    pattern = build_pattern(cron=spec.get("cron"), every=spec.get("every"), anchor_ms=start)
    schedule = Schedule(pattern, start, spec.get("endAt"))
    cursor = schedule.first_at_or_after(max(start, now))
    if cursor is None:
        raise InvalidRecurrence("endAt", "no occurrence falls between the start and endAt")
    wall = services.jobs.clock()
    fields = {
        "id": rid, "type": spec["type"], "campaignId": spec["campaignId"],
        "payload": json.dumps(spec["payload"]), "priority": spec["priority"],
        "clock": spec["clock"], "cron": spec.get("cron") or "", "every": spec.get("every") or "",
        "start": start, "startAt": _blank(spec.get("startAt")), "endAt": _blank(spec.get("endAt")),
        "maxOccurrences": _blank(spec.get("maxOccurrences")), "catchUp": spec["catchUp"],
        "catchUpWindow": spec.get("catchUpWindow") or "", "state": "active", "cursor": cursor,
        "seq": 1, "tickJob": tick_job_id(rid, 1, cursor), "count": 0, "skippedTotal": 0,
        "createdAt": wall, "updatedAt": wall, "idemKey": idempotency_key or "",
        "requestHash": request_hash,
    }
    with services.redis.pipeline(transaction=True) as pipe:
        if idempotency_key:
            pipe.watch(store.idem_key(idempotency_key))
            existing = store.by_idempotency_key(idempotency_key)
            if existing:
                return store.get(existing) or {}, False
        pipe.multi()
        queue_jobs(services, pipe, [tick_entry(rid, spec["campaignId"], spec["clock"], 1, cursor)])
        store.queue_save(pipe, rid, fields, idempotency_key)
        try:
            answer = pipe.execute()[-1]
        except redis_lib.WatchError:  # the same key created meanwhile: that one
            return store.get(store.by_idempotency_key(idempotency_key)) or {}, False
    if int(answer[0]) != 1:
        return store.get(answer[1].decode()) or {}, False
    logger.info("recurring job created", extra={
        "recurring_id": rid, "job_type": spec["type"], "campaign_id": spec["campaignId"],
        "clock": spec["clock"], "next_occurrence": iso_ms(cursor)})
    return {k: str(v) for k, v in fields.items()}, True


# -- change and cancel -----------------------------------------------------------------

def update(services, rid: str, changes: dict, *, now_of=None) -> dict:
    """Change a recurring job: pause or resume, pattern, payload, priority, end, limits.

    Args:
        changes: what to change, by field of the API (``paused``, ``cron``, ``every``,
            ``payload`` (validated), ``priority``, ``endAt``, ``maxOccurrences``,
            ``catchUp``, ``catchUpWindow``); ``endAt`` and ``maxOccurrences`` may be None.
        now_of: ``now_of(definition) -> clock reading``; :func:`clock_now` by default.

    Returns:
        The record's fields after the change.

    Raises:
        RecurringNotFound, RecurringStateError, InvalidRecurrence.
    """
    store = recurring_store(services)
    now_of = now_of or (lambda d: clock_now(services, d.clock, d.campaign_id))
    for _ in range(MAX_COMMITS):
        with watched(services, rid) as (pipe, d):
            if d is None:
                raise RecurringNotFound(f"no recurring job with id {rid!r}")
            if d.state in ("ended", "cancelled"):
                raise RecurringStateError(f"the recurring job is {d.state}; create a new one")
            change = _decide(d, changes, now_of(d))
            pipe.multi()
            tick = d.tick_job if change["keep_tick"] else ""
            if change["state"] == "active" and not change["keep_tick"]:
                entry = tick_entry(rid, d.campaign_id, d.clock, d.seq + 1, change["cursor"])
                queue_jobs(services, pipe, [entry])
                tick = entry[0]["id"]
            store.queue_update(pipe, rid, seq=d.seq, now=services.jobs.clock(),
                               state=change["state"], cursor=change["cursor"], tick=tick,
                               fields=change["fields"], skipped=change["skipped"])
            try:
                pipe.execute()
            except redis_lib.WatchError:
                continue
        if d.tick_job and d.tick_job != tick:
            _cancel_tick(services, d.tick_job, f"recurring job {rid} changed")
        logger.info("recurring job changed: %s", ", ".join(sorted(changes)), extra={
            "recurring_id": rid, "state": change["state"]})
        return store.get(rid)
    raise RecurringError("the recurring job kept changing under this request; try again")


def _decide(d: Definition, changes: dict, now: int) -> dict:
    """The record's new fields, state and cursor after ``changes`` (pure)."""
    fields: dict = {}
    cron, every, start, start_at = d.cron, d.every, d.start, d.start_at
    for name in ("payload", "priority", "catchUp", "catchUpWindow"):
        if name in changes:
            value = changes[name]
            fields[name] = json.dumps(value) if name == "payload" else ("" if value is None else value)
    repattern = "cron" in changes or "every" in changes
    if repattern:
        cron, every = changes.get("cron"), changes.get("every")
        # A new pattern starts afresh now (or at startAt, while that is still ahead).
        start_at_ahead = start_at if start_at is not None and start_at > now else None
        start = _start_of(every, start_at_ahead, now)
        fields.update(cron=cron or "", every=every or "", start=start)
    end_at = changes["endAt"] if "endAt" in changes else d.end_at
    max_occ = changes["maxOccurrences"] if "maxOccurrences" in changes else d.max_occurrences
    if "endAt" in changes:
        fields["endAt"] = _blank(end_at)
    if "maxOccurrences" in changes:
        fields["maxOccurrences"] = _blank(max_occ)
    schedule = Schedule(build_pattern(cron=cron, every=every, anchor_ms=start), start, end_at)

    paused = changes.get("paused", d.state == "paused")
    skipped = (0, None, None)
    if repattern:
        cursor = schedule.first_at_or_after(now)
    elif d.state == "paused" and not paused and d.cursor is not None:
        # Occurrences that fell due while paused are skipped (and recorded as such).
        count = schedule.count_between(d.cursor, now - 1, COUNT_CAP)
        if count != 0:
            skipped = (count, schedule.first_at_or_after(d.cursor),
                       schedule.latest_at_or_before(now - 1))
        cursor = schedule.first_at_or_after(now)
    else:
        cursor = schedule.first_at_or_after(d.cursor) if d.cursor is not None else None
    if max_occ is not None and d.count >= max_occ:
        return {"state": "ended", "cursor": None, "keep_tick": False,
                "fields": {**fields, "endedReason": "maxOccurrences"}, "skipped": skipped}
    if cursor is None:
        return {"state": "ended", "cursor": None, "keep_tick": False,
                "fields": {**fields, "endedReason": "endAt"}, "skipped": skipped}
    if paused:
        # The cursor stays where the pause found it: a resume counts what it skipped.
        return {"state": "paused", "cursor": cursor, "keep_tick": False, "fields": fields,
                "skipped": skipped}
    keep = d.state == "active" and cursor == d.cursor and bool(d.tick_job)
    return {"state": "active", "cursor": cursor, "keep_tick": keep, "fields": fields,
            "skipped": skipped}


def cancel(services, rid: str) -> dict:
    """Cancel a recurring job and its pending occurrence (its timer); returns its fields.

    Raises:
        RecurringNotFound, RecurringStateError (already ended or cancelled).
    """
    store = recurring_store(services)
    for _ in range(MAX_COMMITS):
        with watched(services, rid) as (pipe, d):
            if d is None:
                raise RecurringNotFound(f"no recurring job with id {rid!r}")
            if d.state in ("ended", "cancelled"):
                raise RecurringStateError(f"the recurring job is already {d.state}")
            pipe.multi()
            store.queue_update(pipe, rid, seq=d.seq, now=services.jobs.clock(),
                               state="cancelled", cursor=None, tick="",
                               fields={"endedReason": "cancelled"})
            try:
                pipe.execute()
            except redis_lib.WatchError:
                continue
        if d.tick_job:
            _cancel_tick(services, d.tick_job, f"recurring job {rid} cancelled")
        logger.info("recurring job cancelled", extra={"recurring_id": rid})
        return store.get(rid)
    raise RecurringError("the recurring job kept changing under this request; try again")


def replace_tick(services, rid: str, seq: int, tick: str) -> bool:
    """Place a new timer at the record's cursor if it is still active at ``seq`` with
    ``tick`` as its timer (see :func:`~scheduler_service.recurring.tick.repair_ticks`);
    returns whether it did."""
    store = recurring_store(services)
    with watched(services, rid) as (pipe, d):
        if d is None:
            return False
        if d.state != "active" or d.seq != seq or d.tick_job != tick or d.cursor is None:
            return False
        pipe.multi()
        entry = tick_entry(rid, d.campaign_id, d.clock, d.seq + 1, d.cursor)
        queue_jobs(services, pipe, [entry])
        store.queue_update(pipe, rid, seq=d.seq, now=services.jobs.clock(), state="active",
                           cursor=d.cursor, tick=entry[0]["id"], fields={})
        try:
            pipe.execute()
        except redis_lib.WatchError:
            return False
    return True


def _cancel_tick(services, tick_id: str, reason: str) -> None:
    # A tick already running finds itself replaced and does nothing.
    services.jobs.transition(tick_id, ("scheduled", "queued", "failed"), "cancelled", reason)


def occurrence_of(services, job_id: str) -> Occurrence | None:
    """The occurrence a job was created for, or None (see ``ctx.occurrence``)."""
    rid, at, clock = services.jobs.get_internal(job_id, "recurringId", "occurrenceAt",
                                                "occurrenceClock")
    if not rid or not at:
        return None
    return Occurrence(rid, int(at), clock or "wall")


# -- views -----------------------------------------------------------------------------

def view(services, fields: dict, upcoming: int = 0) -> dict:
    """A record as the API shows it; with ``upcoming``, its next occurrences."""
    d = Definition.from_fields(fields)
    out = {
        "id": d.id, "type": d.type, "campaignId": d.campaign_id, "payload": d.payload,
        "priority": d.priority, "clock": d.clock, "cron": d.cron, "every": d.every,
        "startAt": iso_ms(d.start_at), "endAt": iso_ms(d.end_at),
        "maxOccurrences": d.max_occurrences, "catchUp": d.catch_up,
        "catchUpWindow": d.catch_up_window, "state": d.state,
        "nextOccurrence": iso_ms(d.cursor) if d.state == "active" else None,
        "occurrences": d.count, "skipped": d.skipped,
        "lastOccurrence": ({"occurrence": iso_ms(d.last_occurrence), "jobId": d.last_job}
                           if d.last_occurrence is not None else None),
        "endedReason": fields.get("endedReason") or None,
        "createdAt": iso_ms(fields.get("createdAt")), "updatedAt": iso_ms(fields.get("updatedAt")),
        "idempotencyKey": fields.get("idemKey") or None,
    }
    if upcoming:
        out["nextOccurrences"] = [iso_ms(t) for t in _upcoming(services, d, upcoming)]
    return out


def _upcoming(services, d: Definition, count: int) -> list[int]:
    if d.state in ("ended", "cancelled"):
        return []
    if d.max_occurrences is not None:
        count = min(count, max(0, d.max_occurrences - d.count))
    schedule = d.schedule()
    if d.state == "active":
        return schedule.upcoming(d.cursor, count) if d.cursor is not None else []
    # Paused: what a resume now would give.
    if d.clock == "wall":
        now = services.jobs.clock()
    else:
        now = services.jobs.remembered_world_time(d.campaign_id)
        now = d.cursor if now is None else now
    return schedule.upcoming(now if now is not None else d.start, count)


def _blank(value):
    return "" if value is None else value


__all__ = ["Definition", "InvalidRecurrence", "Occurrence", "RecurringError",
           "RecurringNotFound", "RecurringStateError", "TICK_TYPE", "cancel", "create",
           "occurrence_job_id", "occurrence_key", "occurrence_of", "recurring_store",
           "replace_tick", "update", "view"]
