"""Durable timers: the pumps that move due jobs from Redis sorted sets into Dramatiq.

Wall-clock timers are pumped continuously by :class:`WallTimerPump` (a thread of the
process that owns it); world-clock timers of a campaign are pumped by
:func:`pump_world` when its world time is known to have advanced. Both promote in
batches with one Lua call each (see :mod:`scheduler_service.jobstore`), so several
pumps may run at once and each timer is still promoted exactly once. Time is the job
store's clock (``store.clock``), so a test moves it instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
import time

from .redis_client import UNREACHABLE, outage

logger = logging.getLogger(__name__)


def pump_wall(store, batch: int = 1000, now: int | None = None) -> int:
    """Promote every wall timer due at ``now``; returns how many jobs were enqueued."""
    now = store.clock() if now is None else now
    total = 0
    while True:
        moved, seen = store.pump(store.wall_timers, now, batch, detail="due (wall clock)")
        total += moved
        if seen < batch:
            return total


def pump_world(store, campaign_id: str, world_time_ms: int, batch: int = 1000) -> int:
    """Promote the campaign's world timers due at ``world_time_ms``; returns the count.

    Also remembers the world time, so jobs created later for an earlier world time run
    at once instead of waiting for the next advance.
    """
    store.remember_world_time(campaign_id, world_time_ms)
    total = 0
    while True:
        moved, seen = store.pump(store.world_timers(campaign_id), world_time_ms, batch,
                                 detail="due (world clock)")
        total += moved
        if seen < batch:
            if total:
                logger.info("promoted %s world timer(s)", total, extra={"campaign_id": campaign_id})
            return total


class WallTimerPump:
    """A thread that promotes wall timers as they fall due.

    It sleeps until the earliest timer is due, at most ``interval_ms``, and wakes early
    when a new timer is added (``notify``), so lateness stays in milliseconds without
    polling Redis hard.
    """

    #: Seconds between sweeps of expired ids out of the listing indexes (and the repair).
    PRUNE_EVERY_S = 60.0
    #: Longest pause after a failed round (Redis down), so timers flow soon after it is back.
    MAX_BACKOFF_S = 5.0

    def __init__(self, store, interval_ms: int = 250, batch: int = 1000, repair=None):
        """
        Args:
            store: the job store.
            interval_ms: longest sleep between checks.
            batch: timers promoted per Lua call.
            repair: ``repair(now_ms)`` run with the index pruning, every
                :attr:`PRUNE_EVERY_S` (see :func:`scheduler_service.repair.repair_stuck_running`).
        """
        self.store = store
        self.repair = repair
        self.interval_s = interval_ms / 1000
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_run_ms: int | None = None
        self.promoted = 0

    def start(self) -> "WallTimerPump":
        self._thread = threading.Thread(target=self._loop, name="wall-timer-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self):
        backoff = 0.5
        next_prune = time.monotonic() + self.PRUNE_EVERY_S
        while not self._stop.is_set():
            try:
                self.promoted += pump_wall(self.store, self.batch)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.PRUNE_EVERY_S
                    pruned = self.store.prune_indexes()
                    if pruned:
                        logger.info("dropped %s expired job ids from the indexes", pruned)
                    if self.repair is not None:
                        self.repair(self.store.clock())
                self.last_run_ms = self.store.clock()
                next_due = self.store.next_wall_due()
                wait = self.interval_s
                if next_due is not None:
                    wait = min(wait, max(0.0, (next_due - self.store.clock()) / 1000))
                backoff = 0.5
                outage().reached()
            except UNREACHABLE as e:  # Redis down: one line per outage, keep trying
                outage().failed(e, "the wall-timer pump")
                wait, backoff = backoff, min(backoff * 2, self.MAX_BACKOFF_S)
            except Exception:  # never die
                logger.exception("timer pump failed; retrying in %.1fs", backoff)
                wait, backoff = backoff, min(backoff * 2, self.MAX_BACKOFF_S)
            self._stop.wait(wait)
