"""Where a job goes in Dramatiq: queue and actor names by job type and priority band.

Dramatiq's Redis broker orders messages only within one queue (first in, first out),
so per-job priority is made of two mechanisms together, as Celery does on Redis:

* each job type has one queue per priority band (``ping.high``, ``ping.normal``,
  ``ping.low``), each consumed by its own consumer thread, so a backlog in one band
  never sits in front of a job of another;
* each (job type, band) has its own actor whose Dramatiq ``priority`` orders the
  worker's in-memory work queue, so prefetched high-band messages run first.
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


def queue_name(job_type: str, band: str) -> str:
    """Dramatiq queue of a job type's band, e.g. ``deferred_effect.high``."""
    return f"{job_type.lower()}.{band}"


def actor_name(job_type: str, band: str) -> str:
    """Dramatiq actor of a job type's band, e.g. ``DEFERRED_EFFECT.high``."""
    return f"{job_type}.{band}"


def all_queue_names(job_types) -> list[str]:
    """Every queue the given job type names use, in band order."""
    return [queue_name(t, band) for t in sorted(job_types) for band, _, _ in BANDS]
