"""The ``api`` component of ``/health`` and the client's Prometheus metrics.

Both report the state this process's client already knows (breaker state, call counters);
neither makes a request to the API.
"""

from __future__ import annotations

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN

from ..jobtypes import HealthStatus
from . import get_api_client


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
    """Prometheus collector: breaker state and the calls made by this process's client."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        client = get_api_client(self.services)
        state = GaugeMetricFamily("scheduler_api_circuit_state",
                                  "API circuit breaker: 0 closed, 1 half-open, 2 open.")
        opened = CounterMetricFamily("scheduler_api_circuit_opened",
                                     "Times the API circuit breaker opened.")
        calls = CounterMetricFamily("scheduler_api_calls", "API calls by operation and outcome.",
                                    labels=["operation", "outcome"])
        retries = CounterMetricFamily("scheduler_api_retries",
                                      "Retries of transient API failures by operation.",
                                      labels=["operation"])
        breaker = client.breaker
        state.add_metric([], breaker.state_value if breaker else 0)
        opened.add_metric([], breaker.times_opened if breaker else 0)
        call_counts, retry_counts = client.stats.snapshot()
        for (operation, outcome), count in sorted(call_counts.items()):
            calls.add_metric([operation, outcome], count)
        for operation, count in sorted(retry_counts.items()):
            retries.add_metric([operation], count)
        yield from (state, opened, calls, retries)
