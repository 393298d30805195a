"""Where a job goes in Dramatiq: queue and actor names by priority band and job type.

Dramatiq's Redis broker orders messages only within one queue (first in, first out),
so per-job priority is made of two mechanisms together, as Celery does on Redis:

* one queue per priority band (``jobs.high``, ``jobs.normal``, ``jobs.low``), shared by
  every job type and each consumed by its own consumer thread, so a backlog in one band
  never sits in front of a job of another;
* each (job type, band) has its own actor whose Dramatiq ``priority`` orders the
  worker's in-memory work queue, so prefetched high-band messages run first.

Within a band, jobs of all types run first in, first out. Three queues rather than three
per job type keep a worker's idle polling flat as plugins add job types: each idle queue
costs every worker process a Redis round trip per ``QUEUE_POLL_INTERVAL_MS`` (with 21
queues that polling took half of the throughput of ``bench/growth.py``).
"""

from __future__ import annotations

from .jobtypes import MAX_PRIORITY, MIN_PRIORITY

#: Bands, highest first: (name, lowest job priority in it, Dramatiq actor priority).
BANDS = (("high", 8, 0), ("normal", 4, 10), ("low", 0, 20))


def band_for(priority: int) -> str:
    """The band of a job priority (0-10)."""
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be from {MIN_PRIORITY} to {MAX_PRIORITY}, got {priority}")
    for name, lowest, _ in BANDS:
        if priority >= lowest:
            return name
    raise AssertionError("unreachable")


#: Prefix of the band queues.
QUEUE_PREFIX = "jobs"


def queue_name(band: str) -> str:
    """Dramatiq queue of a priority band, e.g. ``jobs.high``."""
    return f"{QUEUE_PREFIX}.{band}"


def actor_name(job_type: str, band: str) -> str:
    """Dramatiq actor of a job type's band, e.g. ``DEFERRED_EFFECT.high``."""
    return f"{job_type}.{band}"


def all_queue_names() -> list[str]:
    """Every queue, in band order."""
    return [queue_name(band) for band, _, _ in BANDS]
