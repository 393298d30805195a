"""Health: components register checks; ``/health`` runs them and sums them up.

Each check returns a :class:`~scheduler_service.jobtypes.HealthStatus`. A critical
component that is down makes the service ``unhealthy`` (HTTP 503); anything else not
``up`` makes it ``degraded``. A check that raises counts as down, with the error as its
message, so one broken component never hides the others.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from .jobtypes import HealthStatus
from .wire import queue_stats

logger = logging.getLogger(__name__)


def redis_check(services) -> HealthStatus:
    """Redis answers PING; reports the round-trip time."""
    started = time.perf_counter()
    services.redis.ping()
    ms = (time.perf_counter() - started) * 1000
    return HealthStatus("up", f"PING answered in {ms:.1f} ms", {"latencyMs": round(ms, 2)})


def queue_check(services) -> HealthStatus:
    """The job queues can be read; reports ready, delayed and dead-lettered counts."""
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    totals = stats["totals"]
    message = (f"{totals['ready']} ready, {totals['delayed']} delayed, "
               f"{totals['dead']} dead-lettered in {len(services.queue_names)} queues")
    return HealthStatus("up", message, totals)


def _now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_checks(services) -> tuple[str, dict]:
    """Run every registered check.

    Returns:
        ``(overall status, {component: {"status", "message", "lastChecked", ...}})``.
    """
    components = {}
    overall = "healthy"
    for check in services.registry.health_checks:
        try:
            result = check.check(services)
        except Exception as e:  # a failing check is a finding, not a crash
            result = HealthStatus("down", f"{type(e).__name__}: {e}")
        body = {"status": result.status, "message": result.message, "lastChecked": _now_iso()}
        if result.details:
            body["details"] = dict(result.details)
        components[check.name] = body
        if result.status == "down" and check.critical:
            overall = "unhealthy"
        elif result.status != "up" and overall == "healthy":
            overall = "degraded"
    return overall, components
