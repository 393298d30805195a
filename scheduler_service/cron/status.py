"""What the cron replicas report: the ``cron`` health component and the ``scheduler_cron_*`` metrics.

Both read Redis at request or scrape time (the lock, the replicas' heartbeats, the
sweeps' last runs and the run counters), so every web replica reports the same thing
and the cron processes serve nothing themselves.
"""

from __future__ import annotations

import logging

from ..jobstore import iso_ms, now_ms
from ..jobtypes import HealthStatus
from .schedules import OUTCOMES, ScheduleStore

logger = logging.getLogger(__name__)


def schedule_store(services) -> ScheduleStore:
    return ScheduleStore(services.redis, services.settings.redis_namespace, services.registry,
                         services.settings)


def replica_max_age_ms(settings) -> int:
    """A replica not heard from for three leader TTLs counts as gone."""
    return 3 * settings.cron_leader_ttl_s * 1000


def summarize(leader: str | None, lock_ttl_ms: int | None, replicas: dict[str, dict],
              last_runs: dict[str, dict | None], now: int) -> HealthStatus:
    """The health of the cron replicas (a pure function of what Redis holds and ``now``).

    Up while a replica holds the leader lock. Down when none does: sweeps do not fire
    (and, with no replica at all, wall-clock timers are not pumped either).
    """
    ran = [(name, run) for name, run in last_runs.items() if run]
    latest = max(ran, key=lambda item: item[1]["start"], default=None)
    details = {
        "leader": leader,
        "lockExpiresInMs": lock_ttl_ms,
        "leaderSince": iso_ms((replicas.get(leader) or {}).get("leaderSince")) if leader else None,
        "replicas": {rid: {"leader": rid == leader, "lastSeen": iso_ms(info.get("seenAt")),
                           "appliedVersion": info.get("appliedVersion")}
                     for rid, info in sorted(replicas.items())},
        "lastTick": ({"sweep": latest[0], "start": latest[1]["start"], "tick": latest[1]["tick"],
                      "outcome": latest[1]["outcome"]} if latest else None),
    }
    last = (f"; last run: {latest[0]} {latest[1]['outcome']} at {latest[1]['start']}"
            if latest else "; no sweep has run yet")
    if leader:
        standby = len([r for r in replicas if r != leader])
        return HealthStatus("up", f"leader {leader}, {standby} standby{last}", details)
    if replicas:
        return HealthStatus("down", f"no cron leader: {len(replicas)} replica(s) standing by, "
                                    f"one takes over when the lock expires{last}", details)
    return HealthStatus("down", "no cron replica is running: sweeps do not fire and wall-clock "
                                f"timers are not pumped{last}", details)


def cron_check(services) -> HealthStatus:
    """The ``cron`` component of ``/health``."""
    store = schedule_store(services)
    leader, ttl = store.leader()
    replicas = store.replicas(replica_max_age_ms(services.settings))
    runs = {name: store.last_run(name) for name in sorted(services.registry.sweeps)}
    return summarize(leader, ttl, replicas, runs, now_ms())


class CronCollector:
    """Prometheus collector of the leader, the replicas and the sweeps' runs, read at scrape time."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        leader_g = GaugeMetricFamily("scheduler_cron_leader",
                                     "1 for the cron replica holding the leader lock.",
                                     labels=["identity"])
        has_leader = GaugeMetricFamily("scheduler_cron_has_leader",
                                       "1 when a cron replica holds the leader lock, else 0.")
        replicas_g = GaugeMetricFamily("scheduler_cron_replicas",
                                       "Cron replicas heard from recently (leader included).")
        runs = CounterMetricFamily("scheduler_cron_sweep_runs",
                                   "Sweep ticks and manual runs by outcome (enqueued, duplicate, "
                                   "skipped, failed, missed).", labels=["sweep", "outcome"])
        failures = CounterMetricFamily("scheduler_cron_sweep_failures",
                                       "Sweep runs that failed (each is also an alert log line).",
                                       labels=["sweep"])
        enabled = GaugeMetricFamily("scheduler_cron_sweep_enabled",
                                    "1 when a sweep's ticks fire, 0 when disabled.", labels=["sweep"])
        last_run = GaugeMetricFamily("scheduler_cron_sweep_last_run_timestamp_seconds",
                                     "Start of a sweep's last run (Unix time).", labels=["sweep"])
        try:
            store = schedule_store(self.services)
            leader, _ = store.leader()
            if leader:
                leader_g.add_metric([leader], 1)
            has_leader.add_metric([], 1 if leader else 0)
            replicas_g.add_metric([], len(store.replicas(replica_max_age_ms(self.services.settings))))
            stats = store.stats()
            states = store.states()
            for name in sorted(self.services.registry.sweeps):
                for outcome in OUTCOMES:
                    runs.add_metric([name, outcome], stats.get((name, outcome), 0))
                failures.add_metric([name], stats.get((name, "failed"), 0))
                enabled.add_metric([name], 1 if states[name].enabled else 0)
                started = store.last_started_ms(name)
                if started:
                    last_run.add_metric([name], started / 1000)
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("cron metrics unavailable: %s", e)
        yield from (leader_g, has_leader, replicas_g, runs, failures, enabled, last_run)
