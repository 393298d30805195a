"""Counts of ready, delayed and dead-lettered messages per queue, read in one round trip."""

from __future__ import annotations

from dramatiq.common import dq_name, xq_name


def queue_stats(redis, namespace: str, queue_names) -> dict:
    """Read the size of each queue, its delay queue and its dead-letter set.

    Returns:
        ``{"queues": {name: {"ready", "delayed", "dead"}}, "totals": {...}}``.
    """
    names = list(queue_names)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"{namespace}:{name}")
        pipe.hlen(f"{namespace}:{dq_name(name)}.msgs")
        pipe.zcard(f"{namespace}:{xq_name(name)}")
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
