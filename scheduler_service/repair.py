"""The periodic check that no job record stays ``running`` after its attempt ended.

A worker writes an attempt's outcome in the same Lua call as it acknowledges the Dramatiq
message (:mod:`scheduler_service.lifecycle`), so the two cannot part; this check is the
safety net for what that cannot cover (a record changed by hand, a message removed by an
operator, one acknowledged by an earlier version that wrote outcomes separately). It finds
records ``running`` for longer than their job type's time limit plus a grace whose message
is acknowledged (no longer in its queue's message hash, so Dramatiq will never deliver it
again). The outcome of that attempt is unknown, so the job is enqueued again with a fresh
message: handlers are idempotent (``DEFERRED_EFFECT`` finds its own execution, expirations
see completed events), so running it again gives the same state as the lost attempt did.
A record whose message is still there is left alone: Dramatiq redelivers it.
"""

from __future__ import annotations

import logging

from .jobstore import iso_ms, now_ms

logger = logging.getLogger(__name__)

#: Time beyond a job type's time limit before a ``running`` record is checked.
DEFAULT_GRACE_MS = 60_000
#: Records checked per pass at most.
BATCH = 500


def time_limit_of(services):
    """``job type name -> time limit in ms`` (the job type's, else ``JOB_TIME_LIMIT_MS``)."""
    default = services.settings.job_time_limit_ms
    limits = {name: jt.time_limit_ms or default for name, jt in services.registry.job_types.items()}
    return lambda job_type: limits.get(job_type, default)


def repair_stuck_running(store, limit_of, now: int | None = None,
                         grace_ms: int = DEFAULT_GRACE_MS) -> list[str]:
    """Enqueue again every job left ``running`` whose message is gone; returns their ids.

    Args:
        store: the :class:`~scheduler_service.jobstore.JobStore`.
        limit_of: ``job type -> time limit (ms)``, see :func:`time_limit_of`.
        now: the wall clock in epoch ms (injected by tests).
        grace_ms: how long past its time limit a record may still be ``running``.
    """
    now = now_ms() if now is None else now
    repaired = []
    for job_id, job_type, since, queue, rid in store.running_records(BATCH):
        if not since or not rid or now - since <= limit_of(job_type) + grace_ms:
            continue
        if store.message_pending(queue, rid):
            continue  # still owned by Dramatiq: a dead worker's message comes back by itself
        result = store.requeue(
            job_id, from_states=("running",),
            detail=f"repaired: running since {iso_ms(since)} but its message was acknowledged "
                   "without an outcome recorded; enqueued again (handlers are idempotent)")
        if result.ok:
            repaired.append(job_id)
            logger.warning("job %s was left running without its message; enqueued again",
                           job_id, extra={"job_id": job_id, "job_type": job_type,
                                          "alert": "job_record_repaired"})
    return repaired


def job_repair(services):
    """``repair(now_ms)`` for :class:`~scheduler_service.timers.WallTimerPump`."""
    limit_of = time_limit_of(services)
    return lambda now: repair_stuck_running(services.jobs, limit_of, now)
