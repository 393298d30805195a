"""The ``scheduler-service cron`` process: sweeps on cron triggers, one leader, the timer pump.

Every replica runs the same machinery:

* an APScheduler ``BackgroundScheduler`` in UTC with one job per sweep, coalescing
  missed runs into one and running a late tick within ``CRON_MISFIRE_GRACE_S``;
* an :class:`~scheduler_service.cron.leader.Elector`: only the replica holding the
  leader lock fires; on the others a tick does nothing;
* a control loop that polls the schedule version in Redis every second and applies
  changes (cron, enabled) to the local triggers, so a change made over the REST API
  takes effect on the leader within a second or two, and a replica that becomes leader
  already has the current schedule;
* the wall-timer pump (:class:`~scheduler_service.timers.WallTimerPump`). It runs on
  every replica, not just the leader: its Lua promotion is exactly-once however many
  pumps run, and timers keep flowing while the leadership changes hands.

A tick only enqueues a job, with the idempotency key ``sweep:{name}:{tick}``, so a tick
fired twice at a hand-over still creates one job. A replica that becomes leader fires
the latest tick it finds not yet enqueued if it is within the grace period (the tick
the dead leader never fired), and logs the ticks it had to drop.

"Now" is the replica's ``clock`` (epoch ms; the wall clock unless one is passed in): it
decides which tick is due when a trigger fires or a leader catches up, and stamps runs
and heartbeats. APScheduler still wakes the replica on the real clock, and the lease
keeps to the monotonic one (see :mod:`.leader`).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Callable

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from ..alerts import get_alerter
from ..dispatch import send_job
from ..errors import SchedulerServiceError
from ..jobstore import TERMINAL, now_ms
from ..metrics import sweep_failed, sweep_failures
from ..repair import job_repair
from ..timers import WallTimerPump
from .expr import (
    UTC, fire_times_between, from_ms, iso_seconds, latest_fire_time, parse_cron, to_ms,
)
from .leader import Elector, LeaderLock, new_identity
from .schedules import ScheduleStore

logger = logging.getLogger(__name__)

#: Seconds between two polls of the schedule version in Redis.
CONTROL_POLL_S = 1.0
#: Most dropped ticks listed one by one in a log line.
SKIPPED_LISTED = 5


class CronProcess:
    """One ``cron`` replica. ``start()``, then ``stop()`` on shutdown.

    Args:
        services: the process's shared services (settings, registry, Redis, job store).
        identity: this replica's name in the lock; a fresh ``host:pid:random`` by default.
        run_pump: whether to run the wall-timer pump here.
        clock: the wall clock in epoch ms; what this replica takes for "now".
    """

    def __init__(self, services, identity: str | None = None, run_pump: bool = True,
                 clock: Callable[[], int] = now_ms):
        settings = services.settings
        self.services = services
        self.settings = settings
        self.identity = identity or new_identity()
        self.clock = clock
        self.store = ScheduleStore(services.redis, settings.redis_namespace, services.registry,
                                   settings, clock=clock)
        self.grace_s = settings.cron_misfire_grace_s
        lock = LeaderLock(services.redis, self.store.leader_key, self.identity,
                          settings.cron_leader_ttl_s * 1000)
        self.elector = Elector(lock, on_elected=self._on_elected, on_lost=self._on_lost,
                               on_beat=self._heartbeat)
        names = sorted(services.registry.sweeps)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=max(4, min(len(names), 20)))},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": self.grace_s},
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.pump = (WallTimerPump(services.jobs, settings.timer_pump_interval_ms,
                                   settings.timer_pump_batch,
                                   repair=job_repair(services)) if run_pump else None)
        self._applied = {}
        self._applied_version: int | None = None
        self._fired: dict[str, int] = {}
        self._locks = {name: threading.Lock() for name in names}
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._control: threading.Thread | None = None
        self._started_at = clock()
        self._leader_since: int | None = None
        self.alerts = get_alerter(services)
        self._metrics_prefix = f"{settings.redis_namespace}:"
        #: Per sweep, the failures in a row last alerted here (a new one alerts again).
        self._streaks: dict[str, int] = {}
        self._streaks_lock = threading.Lock()

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> "CronProcess":
        # APScheduler logs every job it adds and runs at INFO; ours say more, with timings.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        for name, sweep in sorted(self.services.registry.sweeps.items()):
            cron = self.store.configured_cron(sweep)
            self.scheduler.add_job(self._on_tick, parse_cron(cron), args=[name], id=name,
                                   name=f"sweep {name}", replace_existing=True)
        self.scheduler.start()
        try:
            self.sync()
        except Exception as e:  # Redis down: the control loop keeps trying
            logger.warning("cannot read the schedule state yet: %s", e)
        if self.pump is not None:
            self.pump.start()
        self.elector.start()
        self._control = threading.Thread(target=self._control_loop, name="cron-control", daemon=True)
        self._control.start()
        crons = {name: state.cron for name, state in sorted(self._applied.items())}
        logger.info("cron replica %s started; sweeps: %s", self.identity,
                    ", ".join(f"{n} ({c})" for n, c in crons.items()) or "none", extra={
            "identity": self.identity, "sweeps": crons,
            "leader_ttl_s": self.settings.cron_leader_ttl_s, "misfire_grace_s": self.grace_s})
        return self

    def stop(self) -> None:
        """Stop firing, hand the lock over (a standby takes it at once) and stop the pump."""
        self._stop.set()
        self.elector.stop()
        self.scheduler.shutdown(wait=True)
        if self._control is not None:
            self._control.join(5)
        if self.pump is not None:
            self.pump.stop()
        try:
            self.store.forget_replica(self.identity)
        except Exception as e:
            logger.debug("could not remove the replica entry: %s", e)
        logger.info("cron replica %s stopped", self.identity, extra={"identity": self.identity})

    def is_leader(self) -> bool:
        return self.elector.is_leader()

    # -- schedule state ----------------------------------------------------------------
    def sync(self, force: bool = False) -> bool:
        """Apply the schedule state in Redis if its version moved; True when it did."""
        version = self.store.version()
        if not force and version == self._applied_version:
            return False
        states = self.store.states()
        for name, state in states.items():
            self._apply(name, state)
        self._applied_version = version
        self._heartbeat(self.is_leader())
        return True

    def _apply(self, name, state) -> None:
        """Make the local trigger of one sweep match ``state``."""
        with self._apply_lock:
            old = self._applied.get(name)
            if old == state:
                return
            if old is None or old.cron != state.cron:
                self.scheduler.reschedule_job(name, trigger=state.trigger())
                if old is not None:
                    logger.info("sweep %s now runs on %s (was %s)", name, state.cron, old.cron, extra={
                        "sweep": name, "cron": state.cron, "previous_cron": old.cron})
            if not state.enabled:
                self.scheduler.pause_job(name)
            elif old is None or not old.enabled or old.cron != state.cron:
                self.scheduler.resume_job(name)
            if old is not None and old.enabled != state.enabled:
                logger.info("sweep %s %s", name, "enabled" if state.enabled else "disabled",
                            extra={"sweep": name})
            self._applied[name] = state

    def _control_loop(self) -> None:
        failing = False
        while not self._stop.wait(CONTROL_POLL_S):
            try:
                self.sync()
                if self.is_leader() and self.alerts.enabled:
                    self.check_sweeps(sweep_failures(self.services.redis, self._metrics_prefix))
                if failing:
                    logger.info("schedule state readable again")
                failing = False
            except Exception as e:  # warn once per outage, not every second
                if not failing:
                    logger.warning("cannot read the schedule state (retrying every %ss): %s",
                                   CONTROL_POLL_S, e)
                failing = True

    def _heartbeat(self, leader: bool) -> None:
        self.store.heartbeat(self.identity, {
            "leader": leader, "leaderSince": self._leader_since if leader else None,
            "appliedVersion": self._applied_version, "startedAt": self._started_at})

    # -- leadership --------------------------------------------------------------------
    def _on_elected(self) -> None:
        self._leader_since = self.clock()
        threading.Thread(target=self._catch_up, name="cron-catch-up", daemon=True).start()
        try:
            previous = self.store.note_leader(self.identity)
        except Exception as e:
            logger.warning("could not record the leader change: %s", e)
            return
        if previous and previous != self.identity:
            self.alerts.send("cron_leader_changed", "cron", "info",
                             f"Cron leadership changed hands: {self.identity} took over from "
                             f"{previous}", {"leader": self.identity, "previousLeader": previous})

    def check_sweeps(self, streaks: dict[str, int]) -> list[str]:
        """Alert on each sweep that failed twice or more in a row and failed again since it
        was last alerted here; returns those sweeps."""
        alerted = []
        for name, streak in sorted(streaks.items()):
            with self._streaks_lock:
                seen = self._streaks.get(name, 0)
                self._streaks[name] = streak
            if streak >= 2 and streak > seen:
                self.alerts.send("sweep_failing", name, "critical",
                                 f"Sweep {name} failed {streak} times in a row",
                                 {"sweep": name, "consecutiveFailures": streak})
                alerted.append(name)
        return alerted

    def _on_lost(self, reason: str) -> None:
        self._leader_since = None

    def _catch_up(self) -> None:
        """Fire, once, each sweep's latest tick that no leader enqueued, if within the grace;
        and the latest tick of a sweep that never ran, if it asks to (``run_on_first_start``)."""
        try:
            self.sync(force=True)
            now = self._now()
            for name, state in self.store.states().items():
                if not state.enabled:
                    continue
                trigger = state.trigger()
                due = latest_fire_time(trigger, now)
                last_tick, _ = self.store.run_info(name)
                if due is None:
                    continue
                if last_tick is None:
                    if self.services.registry.sweeps[name].run_on_first_start:
                        logger.info("sweep %s: never ran; running its latest tick %s now", name,
                                    iso_seconds(due), extra={"sweep": name, "tick": iso_seconds(due)})
                        self.fire(name, origin="catch-up", tick=due)
                    continue  # never ran: nothing was missed
                if to_ms(due) <= max(last_tick, state.changed_at_ms or 0):
                    continue
                if (now - due).total_seconds() <= self.grace_s:
                    logger.info("sweep %s: firing tick %s that no leader enqueued", name,
                                iso_seconds(due), extra={
                        "sweep": name, "tick": iso_seconds(due)})
                    self.fire(name, origin="catch-up", tick=due)
                else:
                    self._missed(name, due, "no leader fired it within the grace period")
        except Exception:
            logger.exception("cron catch-up after election failed")

    # -- ticks -------------------------------------------------------------------------
    def _now(self) -> datetime:
        return from_ms(self.clock())

    def _on_tick(self, name: str) -> None:
        self.fire(name, origin="cron")

    def _on_missed(self, event) -> None:
        if self.is_leader():
            self._missed(event.job_id, event.scheduled_run_time,
                         f"ran more than CRON_MISFIRE_GRACE_S={self.grace_s}s late")

    def _missed(self, name: str, tick: datetime, why: str) -> None:
        logger.warning("sweep %s tick %s missed: %s", name, iso_seconds(tick), why,
                       extra={"sweep": name, "tick": iso_seconds(tick)})
        try:
            tick_ms = to_ms(tick)
            self.store.record_run(name, {"start": self.clock(), "durationMs": 0,
                                         "outcome": "missed",
                                         "error": None, "tick": tick_ms, "trigger": "cron",
                                         "detail": why}, tick_ms=tick_ms)
        except Exception as e:
            logger.warning("could not record a missed tick: %s", e)

    def fire(self, name: str, *, origin: str = "cron", tick: datetime | None = None) -> str | None:
        """Enqueue the job of one tick of sweep ``name`` if this replica leads.

        Args:
            name: the sweep.
            origin: ``cron`` (a trigger fired) or ``catch-up`` (after an election).
            tick: the tick to fire; the latest fire time at or before now by default.

        Returns:
            The outcome (``enqueued``, ``duplicate``, ``skipped``, ``failed``), or None
            when nothing was due here (standby, disabled, already fired).
        """
        if not self.is_leader():
            return None
        with self._locks[name]:
            started_ms, t0 = self.clock(), time.perf_counter()
            tick_ms = None
            try:
                state = self.store.state(name)
                if self._applied.get(name) != state:
                    self._apply(name, state)  # a change not yet polled: obey it now
                if not state.enabled:
                    return None
                trigger = state.trigger()
                tick = tick or latest_fire_time(trigger, self._now())
                if tick is None:
                    return None
                tick_ms = to_ms(tick)
                if self._fired.get(name, 0) >= tick_ms:
                    return None
                last_tick, last_job = self.store.run_info(name)
                self._log_dropped(name, trigger, tick, last_tick, state.changed_at_ms)
                if state.overlap == "skip" and last_job:
                    previous = self.services.jobs.get(last_job)
                    if previous is not None and previous["state"] not in TERMINAL:
                        detail = (f"previous tick's job {last_job} is still {previous['state']} "
                                  "(overlap policy skip)")
                        self._fired[name] = tick_ms
                        return self._finish(name, "skipped", started_ms, t0, tick_ms, origin,
                                            detail=detail)
                if not self.is_leader():
                    logger.warning("sweep %s: lost leadership before enqueueing; not firing", name,
                                   extra={"sweep": name, "tick": iso_seconds(tick)})
                    return None
                sweep = self.services.registry.sweeps[name]
                record, created = send_job(
                    self.services, sweep.job_type, sweep.campaign_id, dict(sweep.payload),
                    idempotency_key=f"sweep:{name}:{iso_seconds(tick)}")
                self._fired[name] = tick_ms
                if not created:
                    self.store.advance_tick(name, tick_ms)
                    self.store.count(name, "duplicate")
                    logger.info("sweep %s tick %s: already enqueued as job %s", name,
                                iso_seconds(tick), record["id"], extra={
                        "sweep": name, "tick": iso_seconds(tick), "job_id": record["id"]})
                    return "duplicate"
                return self._finish(name, "enqueued", started_ms, t0, tick_ms, origin,
                                    job_id=record["id"])
            except Exception as e:  # a failing sweep never stops the scheduler
                return self._fail(name, e, started_ms, t0, tick_ms, origin)

    def _log_dropped(self, name, trigger, tick, last_tick, changed_at_ms) -> None:
        """Count and log the ticks between the last one dealt with and this one."""
        if last_tick is None:
            return
        floor = from_ms(max(last_tick, changed_at_ms or 0))
        dropped = fire_times_between(trigger, floor, tick - timedelta(microseconds=1), limit=10_000)
        if not dropped:
            return
        listed = ", ".join(iso_seconds(t) for t in dropped[:SKIPPED_LISTED])
        more = f" and {len(dropped) - SKIPPED_LISTED} more" if len(dropped) > SKIPPED_LISTED else ""
        logger.warning("sweep %s: %s tick(s) coalesced, never ran (%s%s); running %s instead",
                       name, len(dropped), listed, more, iso_seconds(tick),
                       extra={"sweep": name, "dropped": len(dropped), "tick": iso_seconds(tick)})
        self.store.count(name, "missed", len(dropped))

    def _finish(self, name, outcome, started_ms, t0, tick_ms, origin, *, job_id=None, detail=None):
        duration = round((time.perf_counter() - t0) * 1000, 2)
        self.store.record_run(name, {"start": started_ms, "durationMs": duration, "outcome": outcome,
                                     "error": None, "tick": tick_ms, "trigger": origin,
                                     "detail": detail}, job_id=job_id, tick_ms=tick_ms)
        level = logging.INFO if outcome == "enqueued" else logging.WARNING
        what = f"job {job_id}" if job_id else detail
        logger.log(level, "sweep %s tick %s (%s): %s, %s, in %s ms", name,
                   iso_seconds(from_ms(tick_ms)) if tick_ms else "-", origin, outcome, what,
                   duration, extra={
            "sweep": name, "outcome": outcome, "tick": iso_seconds(from_ms(tick_ms)),
            "trigger": origin, "duration_ms": duration, "enqueued_job_id": job_id,
            "detail": detail})
        return outcome

    def _fail(self, name, error, started_ms, t0, tick_ms, origin) -> str:
        duration = round((time.perf_counter() - t0) * 1000, 2)
        message = f"{type(error).__name__}: {error}"
        # The alert: one ERROR line with alert=cron_sweep_failed, and the failure counter.
        expected = isinstance(error, SchedulerServiceError)  # no traceback for our own errors
        logger.error("sweep %s failed: %s", name, message, exc_info=None if expected else error, extra={
            "sweep": name, "outcome": "failed", "alert": "cron_sweep_failed",
            "tick": iso_seconds(from_ms(tick_ms)) if tick_ms else None, "trigger": origin,
            "duration_ms": duration})
        try:
            self.store.record_run(name, {"start": started_ms, "durationMs": duration,
                                         "outcome": "failed", "error": message, "tick": tick_ms,
                                         "trigger": origin, "detail": None})
            streak = sweep_failed(self.services.redis, self._metrics_prefix, name)
        except Exception as e:  # Redis itself is what failed
            logger.warning("could not record the failed run: %s", e)
        else:
            self.check_sweeps({name: streak})
        return "failed"


def run_cron(settings, registry, stop: threading.Event) -> int:
    """Run one cron replica until ``stop`` is set; returns the exit code."""
    from ..services import build_services

    services = build_services(settings, registry)
    process = CronProcess(services).start()
    try:
        stop.wait()
    finally:
        process.stop()
        services.close()
    return 0
