"""A sustained 50 jobs/s for 2 minutes into one worker process: the queue stays short, the
worker's memory flat, and nothing fails.

The producer sends by the wall clock (job ``n`` is due at ``start + n / RATE``), so a slow
moment is caught up rather than drifting the rate down. ``PING`` costs the worker well under
a millisecond, far below its capacity, so the figures depend on the machine only through
generous bounds:

* **queue depth**: a worker that keeps up takes each job within one poll interval
  (``QUEUE_POLL_INTERVAL_MS``, 100 ms) of its arrival; the ready queue then never holds
  more than a few jobs. The bound asserted is one second of arrivals (``RATE``): a worker
  that fell behind would grow the queue by up to ``RATE`` every second, to thousands.
* **memory**: the resident set of the worker process and any children, read from
  ``/proc/<pid>/status``, at 30 s (warm: caches, pools and buffers filled) and at the end,
  within :data:`RSS_SLACK_KB`.
* **errors**: every job ``succeeded`` on its first attempt, no dead letter, and no line at
  ``ERROR`` or above in the worker's log.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from scheduler_service.dispatch import send_job
from scheduler_service.wire import queue_stats
from helpers import start_role, stop_roles, wait_for

pytestmark = pytest.mark.slow

#: Jobs per second, and for how long.
RATE, DURATION_S = 50, 120
#: When the first memory reading is taken (s after the start).
WARM_S = 30
#: Largest growth of the worker's resident set allowed between the two readings.
RSS_SLACK_KB = 10 * 1024


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant of it (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_kb(pid: int) -> int:
    """Resident set of ``pid`` and its descendants, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


class PacedProducer(threading.Thread):
    """Sends ``RATE`` PING jobs a second for ``DURATION_S``, each at its own due moment."""

    def __init__(self, services):
        super().__init__(name="producer", daemon=True)
        self.services = services
        self.ids: list[str] = []
        self.started = 0.0
        self.error: BaseException | None = None

    def run(self):
        try:
            self.started = time.monotonic()
            total = RATE * DURATION_S
            while len(self.ids) < total:
                due = min(total, int((time.monotonic() - self.started) * RATE) + 1)
                while len(self.ids) < due:
                    self.ids.append(send_job(self.services, "PING", "load")[0]["id"])
                next_at = self.started + len(self.ids) / RATE
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as e:  # reported by the test
            self.error = e


def test_fifty_jobs_a_second_for_two_minutes_keep_the_queue_short_and_memory_flat(
        child_env, services, tmp_path):
    # Given one worker process (its default threads) with a JSON log
    env = child_env(REDIS_NAMESPACE=services.settings.redis_namespace, LOG_FORMAT="json",
                    LOG_LEVEL="WARNING")
    worker = start_role(["worker", "--processes", "1"], env, tmp_path / "worker.log")
    try:
        ping, _ = send_job(services, "PING", "load")
        wait_for(lambda: services.jobs.get(ping["id"])["state"] == "succeeded", timeout=60,
                 message="the worker to take a first job")
        # When jobs arrive at 50 a second for 2 minutes
        producer = PacedProducer(services)
        producer.start()
        depths, rss_warm = [], None
        while producer.is_alive():
            elapsed = time.monotonic() - producer.started
            stats = queue_stats(services.redis, services.settings.redis_namespace,
                                services.queue_names)["totals"]
            depths.append(stats["ready"])
            if rss_warm is None and elapsed >= WARM_S:
                rss_warm = rss_kb(worker.pid)
            producer.join(0.5)
        sent_s = time.monotonic() - producer.started
        rss_end = rss_kb(worker.pid)
        assert producer.error is None, producer.error
        ids = producer.ids

        # Then every job succeeded, each on its first attempt
        def unfinished():
            pipe = services.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(services.jobs.key("job", job_id), "state", "attempts")
            rows = pipe.execute()
            left = [r for r in rows if r[0] != b"succeeded"]
            return rows if not left else None
        rows = wait_for(unfinished, timeout=60, interval=1, message="every job to succeed")
        assert worker.poll() is None
    finally:
        stop_roles([worker])
    attempts = [int(a) for _, a in rows]
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    worker.log.close()
    with open(tmp_path / "worker.log") as log:
        levels = [json.loads(line).get("level") for line in log if line.startswith("{")]
    bad = [lvl for lvl in levels if lvl in ("ERROR", "CRITICAL")]
    print(f"\nsustained {RATE} jobs/s: {len(ids)} jobs in {sent_s:.1f}s, max ready queue "
          f"{max(depths)} (bound {RATE}), worker RSS {rss_warm / 1024:.1f} MiB at {WARM_S}s, "
          f"{rss_end / 1024:.1f} MiB at {DURATION_S}s, attempts max {max(attempts)}, "
          f"dead {stats['totals']['dead']}, error lines {len(bad)}")
    assert len(ids) == RATE * DURATION_S
    assert sent_s < DURATION_S + 5  # the producer kept the pace
    assert max(depths) <= RATE
    assert rss_end - rss_warm <= RSS_SLACK_KB
    assert attempts == [1] * len(ids)
    assert stats["totals"]["dead"] == 0
    assert bad == []
