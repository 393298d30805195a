"""``GET /metrics``: HTTP metrics from prometheus-flask-exporter plus queue gauges.

Queue gauges are read from Redis at scrape time by a custom collector, so every web
replica reports the same numbers and nothing has to keep them up to date.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_flask_exporter import PrometheusMetrics

from .. import __version__
from ..api.health import ApiCollector
from ..cron.status import CronCollector
from ..health import run_checks
from ..recurring.status import RecurringCollector
from ..wire import queue_stats
from ..subscriber.status import SubscriberCollector

logger = logging.getLogger(__name__)


class QueueCollector:
    """Reports ready, delayed and dead-lettered messages per queue, and component health."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        ready = GaugeMetricFamily("scheduler_queue_ready_messages",
                                  "Messages waiting in a queue.", labels=["queue"])
        delayed = GaugeMetricFamily("scheduler_queue_delayed_messages",
                                    "Messages waiting in a queue's retry (delay) queue.", labels=["queue"])
        dead = GaugeMetricFamily("scheduler_queue_dead_letter_messages",
                                 "Messages in a queue's dead-letter set.", labels=["queue"])
        up = GaugeMetricFamily("scheduler_component_up",
                               "1 when a health component is up, else 0.", labels=["component"])
        try:
            stats = queue_stats(self.services.redis, self.services.settings.redis_namespace,
                                self.services.queue_names)
            for name, counts in stats["queues"].items():
                ready.add_metric([name], counts["ready"])
                delayed.add_metric([name], counts["delayed"])
                dead.add_metric([name], counts["dead"])
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("queue metrics unavailable: %s", e)
        _, components = run_checks(self.services)
        for name, body in components.items():
            up.add_metric([name], 1 if body["status"] == "up" else 0)
        yield from (ready, delayed, dead, up)


def init_metrics(app, services):
    """Attach ``/metrics`` with a registry of the app's own (several apps may coexist)."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = PrometheusMetrics(app, registry=registry, path="/metrics",
                                excluded_paths=["/metrics"])
    metrics.info("scheduler_service_info", "Scheduler service version.", version=__version__)
    registry.register(QueueCollector(services))
    registry.register(ApiCollector(services))
    registry.register(CronCollector(services))
    registry.register(SubscriberCollector(services))
    registry.register(RecurringCollector(services))
    app.extensions["prometheus"] = metrics
    return metrics
