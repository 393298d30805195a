"""The shared services of one process, built once at start-up and passed down.

Handlers, health checks, the web app and the CLI reach Redis, the broker and (later)
the API client through this object; none of them builds its own.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from . import queueing
from .alerts import get_alerter
from .broker import build_broker, declare_actors
from .jobstore import JobStore
from .lifecycle import JobRecords
from .plugins import Registry, load_registry
from .redis_client import connect


#: Guards building the per-process components (re-entrant: one may need another).
_PER_PROCESS_LOCK = threading.RLock()


@dataclass
class Services:
    """Everything a process shares: settings, plugins, Redis, broker and actors."""

    settings: Any
    registry: Registry
    redis: redis.Redis
    broker: Any
    actors: dict = field(default_factory=dict)
    jobs: JobStore | None = None
    started_at: float = field(default_factory=time.time)
    #: Further components added by later layers (``api``, ``timers``...).
    extras: dict = field(default_factory=dict)

    @property
    def queue_names(self) -> list[str]:
        return queueing.all_queue_names()

    def per_process(self, key: str, build):
        """The component kept in ``extras[key]``, made by ``build()`` on first use.

        One per process: a component that carries a ``pid`` attribute (the process that
        built it) is built again in a forked child, whose threads and sockets it does not
        share.
        """
        pid = os.getpid()
        found = self.extras.get(key)
        if found is not None and getattr(found, "pid", pid) == pid:
            return found
        with _PER_PROCESS_LOCK:
            found = self.extras.get(key)
            if found is None or getattr(found, "pid", pid) != pid:
                found = build()
                self.extras[key] = found
            return found

    def close(self):
        """Release connections (the broker's pool and ours), the metrics written first."""
        if "metrics" in self.extras:
            self.extras["metrics"].stop()
        try:
            self.broker.close()
        finally:
            self.redis.close()


def build_services(settings, registry: Registry | None = None) -> Services:
    """Load plugins (unless given), connect to Redis and declare every actor.

    Raises:
        PluginLoadError: when a plugin is broken.
    """
    from .runner import make_runner

    registry = registry or load_registry()
    client = connect(settings, socket_connect_timeout=5, socket_timeout=30,
                     health_check_interval=30)
    jobs = JobStore(client, settings.redis_namespace, settings.job_retention_hours)
    records = JobRecords(jobs, max_retries=settings.queue_max_retries,
                         min_backoff_ms=settings.queue_retry_backoff_ms,
                         max_backoff_ms=settings.queue_max_backoff_ms)
    broker = build_broker(settings, client=client, records=records)
    services = Services(settings=settings, registry=registry, redis=client, broker=broker,
                        jobs=jobs)
    services.actors = declare_actors(broker, registry, settings, make_runner(services))
    records.alerts = get_alerter(services)
    return services
