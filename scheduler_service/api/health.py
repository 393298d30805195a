"""The ``api`` component of ``/health`` and the breaker gauges of ``/metrics``.

Every process with an API client reports its breaker's state to Redis with its metrics
(see :mod:`scheduler_service.metrics`, every :data:`~scheduler_service.recorder.FLUSH_S`
seconds and at once when it opens or closes). Both the health check and the gauges read
those reports, so that ``/health`` of a web process whose own client is idle still says
what the workers see. Neither makes a request to the API.
"""

from __future__ import annotations

import logging
import time

from ..jobtypes import HealthStatus
from . import get_api_client
from .breaker import STATE_VALUES

logger = logging.getLogger(__name__)

#: State name of each value of the ``scheduler_api_circuit_state`` gauge.
STATE_NAMES = {value: name for name, value in STATE_VALUES.items()}


def reported_states(services, exclude: str | None = None) -> dict[str, int]:
    """``{process: 0|1|2}``: the breaker state each live process with a client reported."""
    from ..metrics import read_processes

    prefix = f"{services.settings.redis_namespace}:"
    entries = read_processes(services.redis, prefix, int(time.time() * 1000))
    return {name: int(e.get("breaker") or 0) for name, e in entries.items() if name != exclude}


def api_check(services) -> HealthStatus:
    """The worst circuit of every live process with an API client, this one's included:
    up while every breaker is closed, degraded while one is half-open, down while one is
    open. Without Redis, this process's breaker alone is reported."""
    from ..recorder import get_recorder

    client = get_api_client(services)
    breaker = client.breaker
    if breaker is None:
        return HealthStatus("up", "circuit breaker disabled")
    own = breaker.state_value
    try:  # this process's entry may be up to FLUSH_S old: its live state replaces it
        others = reported_states(services, exclude=get_recorder(services).identity)
        scope = f"{len(others) + 1} processes"
    except Exception as e:  # Redis away: the redis component says so
        logger.debug("breaker states of the other processes unavailable: %s", e)
        others, scope = {}, "this process (the others' reports are unavailable)"
    states = [own, *others.values()]
    worst = max(states)
    details = {"circuit": STATE_NAMES[worst], "processes": len(states),
               "openProcesses": sum(1 for v in states if v == 2),
               "halfOpenProcesses": sum(1 for v in states if v == 1),
               "consecutiveFailures": breaker.failure_count, "threshold": breaker.threshold}
    last = f"; last failure here: {breaker.last_failure}" if breaker.last_failure else ""
    if worst == 0:
        return HealthStatus("up", f"circuit closed in {scope} ({breaker.failure_count} "
                                  f"consecutive transient failures of {breaker.threshold} "
                                  f"here)", details)
    if own == 2:
        details["retryAfterS"] = round(max(0.0, breaker.open_remaining), 3)
    if worst == 1:
        return HealthStatus("degraded", f"circuit half-open in {details['halfOpenProcesses']} "
                                        f"of {scope}; their next call is a trial{last}", details)
    return HealthStatus("down", f"circuit open in {details['openProcesses']} of {scope}{last}",
                        details)


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

        state = GaugeMetricFamily("scheduler_api_circuit_state",
                                  "API circuit breaker, the worst of every live process: 0 closed, "
                                  "1 half-open, 2 open.")
        open_ = GaugeMetricFamily("scheduler_api_circuit_open_processes",
                                  "Live processes whose API circuit breaker is open.")
        live = GaugeMetricFamily("scheduler_api_client_processes",
                                 "Live processes with an API client (reporting their breaker).")
        try:
            states = list(reported_states(self.services).values())
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("API breaker metrics unavailable: %s", e)
            return
        state.add_metric([], max(states, default=0))
        open_.add_metric([], sum(1 for s in states if s == 2))
        live.add_metric([], len(states))
        yield from (state, open_, live)
