"""The ``api`` component of ``/health`` and the breaker gauges of ``/metrics``.

The health check reports the state this process's client already knows; the gauges, what
every process with a client reported to Redis. Neither makes a request to the API.
"""

from __future__ import annotations

import logging
import time

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN

from ..jobtypes import HealthStatus
from . import get_api_client

logger = logging.getLogger(__name__)


def api_check(services) -> HealthStatus:
    """Up while the breaker is closed, degraded when half-open, down when open."""
    client = get_api_client(services)
    breaker = client.breaker
    if breaker is None:
        return HealthStatus("up", "circuit breaker disabled")
    state = breaker.state
    details = {"circuit": state, "consecutiveFailures": breaker.failure_count,
               "threshold": breaker.threshold}
    if state == STATE_CLOSED:
        return HealthStatus("up", f"circuit closed ({breaker.failure_count} consecutive "
                                  f"transient failures of {breaker.threshold})", details)
    last = f": {breaker.last_failure}" if breaker.last_failure else ""
    if state == STATE_HALF_OPEN:
        return HealthStatus("degraded", f"circuit half-open; the next call is a trial{last}", details)
    remaining = max(0.0, breaker.open_remaining)
    details["retryAfterS"] = round(remaining, 3)
    return HealthStatus("down", f"circuit open for another {remaining:.1f}s{last}", details)


class ApiCollector:
    """Prometheus collector of the breakers of every process with an API client.

    Each such process reports its breaker's state with its metrics (see
    :mod:`scheduler_service.metrics`); the calls, retries and request durations are exported
    with the other families kept in Redis.
    """

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from ..metrics import read_processes

        state = GaugeMetricFamily("scheduler_api_circuit_state",
                                  "API circuit breaker, the worst of every live process: 0 closed, "
                                  "1 half-open, 2 open.")
        open_ = GaugeMetricFamily("scheduler_api_circuit_open_processes",
                                  "Live processes whose API circuit breaker is open.")
        live = GaugeMetricFamily("scheduler_api_client_processes",
                                 "Live processes with an API client (reporting their breaker).")
        prefix = f"{self.services.settings.redis_namespace}:"
        try:
            entries = read_processes(self.services.redis, prefix, int(time.time() * 1000))
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("API breaker metrics unavailable: %s", e)
            return
        states = [int(e.get("breaker") or 0) for e in entries.values()]
        state.add_metric([], max(states, default=0))
        open_.add_metric([], sum(1 for s in states if s == 2))
        live.add_metric([], len(states))
        yield from (state, open_, live)
