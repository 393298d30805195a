"""The pass a recurring job's timer runs, and the sweep that repairs a lost timer.

A ``RECURRING_TICK`` job is released by the pumps that release every other job: the
wall-timer pump, the subscriber on ``worldTimeAdvanced``, the expiration sweep's safety
net. Its worker runs one pass:

1. read the record under ``WATCH``; a tick that is no longer the record's timer does
   nothing (it was replaced by a change, or is a redelivery of a pass already done);
2. plan the pass (:func:`~scheduler_service.recurring.plan.plan_pass`) at the clock's
   reading: the remembered world time of the campaign, or the job store's wall clock;
3. commit in one ``MULTI``: each occurrence's job, the next tick, and the record's
   advance (:data:`~scheduler_service.recurring.store.ADVANCE`). A change to the record
   meanwhile (another pass, a PATCH) aborts the commit, and the pass starts again.

Redis runs the rest of a transaction when one command fails, so the occurrences and the
next tick may land without the advance. The tick is then retried, and its second commit
finds the same jobs already there (same keys, same ids); a next tick released first finds
the record one step behind it and completes that step before its own. Work is bounded: a
pass creates at most ``RECURRING_MAX_PER_PASS`` occurrences and the next tick, due at
once, goes on.

The slow path, :func:`repair_ticks` (the ``recurring-repair`` sweep), gives a new timer to
an active recurring job whose timer is gone: dead-lettered after its retries, cancelled by
hand, or expired.
"""

from __future__ import annotations

import logging

import redis as redis_lib
from pydantic import BaseModel, ConfigDict, Field

from ..jobstore import TERMINAL
from ..times import iso_ms
from .plan import plan_pass
from .service import (
    MAX_COMMITS, Definition, RecurringError, clock_now, occurrence_job_id, occurrence_key,
    queue_jobs, recurring_store, replace_tick, tick_entry, watched,
)

logger = logging.getLogger(__name__)

#: The job type of the repair sweep.
REPAIR_TYPE = "RECURRING_REPAIR"
#: Recurring jobs read per round trip by the repair.
REPAIR_BATCH = 500


class TickPayload(BaseModel):
    """The payload of a ``RECURRING_TICK``: which recurring job, and which of its timers."""

    model_config = ConfigDict(extra="forbid")
    recurringId: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)


# -- the pass --------------------------------------------------------------------------

def run_pass(services, rid: str, seq: int, tick_id: str, *, limit: int) -> dict:
    """The work of one tick: create the due occurrences, place the next tick.

    Returns:
        The tick's result: ``outcome`` (``fired``, ``stale`` or ``gone``) and, when fired,
        ``created``, ``skipped``, ``next`` (the next occurrence on its clock), ``ended``,
        ``continues`` (the next tick is due at once).
    """
    store = recurring_store(services)
    for _ in range(MAX_COMMITS):
        with watched(services, rid) as (pipe, d):
            if d is None:
                return {"outcome": "gone"}
            own = d.tick_job == tick_id
            if d.state != "active" or not (own or seq == d.seq + 1):
                return {"outcome": "stale", "state": d.state}
            now = clock_now(services, d.clock, d.campaign_id)
            plan = plan_pass(d.schedule(), d.cursor, now, d.catch_up, window_ms=d.window_ms,
                             created=d.count, max_occurrences=d.max_occurrences, limit=limit)
            pipe.multi()
            entries = _occurrence_entries(d, plan.create)
            next_tick = ""
            if plan.cursor is not None:
                entries.append(tick_entry(rid, d.campaign_id, d.clock, d.seq + 1, plan.cursor))
                next_tick = entries[-1][0]["id"]
            queue_jobs(services, pipe, entries)
            created = [(at, entry[0]["id"]) for at, entry in zip(plan.create, entries)]
            store.queue_advance(pipe, rid, tick=d.tick_job, seq=d.seq, now=services.jobs.clock(),
                                plan=plan, next_tick=next_tick, created=created)
            try:
                advanced = pipe.execute()[-1]
            except redis_lib.WatchError:
                continue
        if not own:
            # This tick was placed by a commit whose advance did not land: that step is
            # done now; go round, to run this tick's own pass if it is the timer now.
            logger.warning("recurring job %s: completed the pass of tick %s for its successor",
                           rid, d.tick_job, extra={"recurring_id": rid})
            continue
        result = {"outcome": "fired" if advanced else "stale", "created": len(created),
                  "skipped": plan.skipped, "next": iso_ms(plan.cursor), "ended": plan.ended,
                  "continues": plan.more}
        if created:
            logger.info("recurring job %s: %s occurrence(s) created", rid, len(created), extra={
                "recurring_id": rid, "occurrences_created": len(created), "skipped": plan.skipped,
                "next_occurrence": iso_ms(plan.cursor)})
        return result
    raise RecurringError(f"recurring job {rid}: the record kept changing under the pass")


def _occurrence_entries(d: Definition, times) -> list[tuple]:
    """Job-store entries of the occurrences' jobs: due at their time on the recurrence's
    clock (already reached, so due at once), keyed and named by the occurrence."""
    entries = []
    for at in times:
        key = occurrence_key(d.id, at)
        job = {"id": occurrence_job_id(d.id, at), "type": d.type, "campaignId": d.campaign_id,
               "payload": d.payload, "priority": d.priority}
        wall, world = (None, at) if d.clock == "world" else (at, None)
        entries.append((job, wall, world, key,
                        {"recurringId": d.id, "occurrenceAt": at, "occurrenceClock": d.clock}))
    return entries


def run_recurring_tick(ctx) -> dict:
    """The ``RECURRING_TICK`` handler."""
    return run_pass(ctx.services, ctx.payload.recurringId, ctx.payload.seq, ctx.job_id,
                    limit=ctx.services.settings.recurring_max_per_pass)


# -- the slow path ---------------------------------------------------------------------

def repair_ticks(services) -> dict:
    """Give a new timer, at its next occurrence, to each active recurring job whose timer
    job is gone or finished without moving it on (dead-lettered, cancelled by hand).

    A pass that commits moves the record to its next timer in the same transaction, so a
    current timer in a final state never finished its work; the replacement is a guarded
    change of the record, a no-op when a pass moved it meanwhile.

    Returns:
        ``{"checked": n, "repaired": n}``.
    """
    store = recurring_store(services)
    checked = repaired = 0
    for timers in store.active_timers(REPAIR_BATCH):
        for rid, seq, tick in timers:
            checked += 1
            (state,) = services.jobs.get_internal(tick, "state") if tick else (None,)
            if state is not None and state not in TERMINAL:
                continue
            if replace_tick(services, rid, seq, tick):
                repaired += 1
                logger.warning("recurring job %s lost its timer (%s, %s); placed a new one",
                               rid, tick or "none", state or "gone", extra={
                    "recurring_id": rid, "alert": "recurring_timer_repaired"})
    return {"checked": checked, "repaired": repaired}


def run_recurring_repair(ctx) -> dict:
    """The ``RECURRING_REPAIR`` handler (the ``recurring-repair`` sweep)."""
    return repair_ticks(ctx.services)
