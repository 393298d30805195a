"""Recurring jobs on ``/health`` and ``/metrics``, read from Redis when asked."""

from __future__ import annotations

import logging

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..jobtypes import HealthStatus
from ..times import iso_ms
from .plan import POLICIES
from .service import recurring_store
from .store import STATES

logger = logging.getLogger(__name__)

#: Campaigns listed one by one in the health details (earliest next occurrence first).
LISTED_CAMPAIGNS = 10


def recurring_check(services) -> HealthStatus:
    """Recurring jobs: how many in each state, and when the next ones fall due."""
    counts = recurring_store(services).counts()
    states = counts["states"]
    worlds = sorted(counts["nextWorld"], key=lambda item: item[1])
    parts = [f"{states['active']} active, {states['paused']} paused"]
    if counts["nextWall"] is not None:
        parts.append(f"next wall-clock occurrence {iso_ms(counts['nextWall'])}")
    if worlds:
        parts.append(f"world-clock ones in {len(worlds)} campaign(s), the earliest due at "
                     f"{iso_ms(worlds[0][1])} of {worlds[0][0]}")
    details = {
        "states": states,
        "nextWallOccurrence": iso_ms(counts["nextWall"]),
        "worldCampaigns": len(worlds),
        "nextWorldOccurrences": [{"campaignId": c, "nextOccurrence": iso_ms(t)}
                                 for c, t in worlds[:LISTED_CAMPAIGNS]],
    }
    return HealthStatus("up", "; ".join(parts), details)


class RecurringCollector:
    """Occurrences created and skipped by clock and policy, and recurring jobs by state."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        created = CounterMetricFamily(
            "scheduler_recurring_occurrences",
            "Occurrences of recurring jobs created (each one job), by clock and catch-up policy.",
            labels=["clock", "policy"])
        skipped = CounterMetricFamily(
            "scheduler_recurring_skipped_occurrences",
            "Occurrences of recurring jobs skipped by catch-up (a window, latest or skip), by "
            "clock and policy; cron occurrences beyond 10,000 in one pass are not counted.",
            labels=["clock", "policy"])
        jobs = GaugeMetricFamily("scheduler_recurring_jobs", "Recurring jobs by state.",
                                 labels=["state"])
        try:
            store = recurring_store(self.services)
            stats = store.stats()
            for clock in ("wall", "world"):
                for policy in POLICIES:
                    created.add_metric([clock, policy], stats.get(("created", clock, policy), 0))
                    skipped.add_metric([clock, policy], stats.get(("skipped", clock, policy), 0))
            states = store.counts()["states"]
            for state in STATES:
                jobs.add_metric([state], states[state])
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("recurring-job metrics unavailable: %s", e)
        yield from (created, skipped, jobs)
