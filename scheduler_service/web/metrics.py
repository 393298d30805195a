"""``GET /metrics``: the web process's HTTP metrics and everything the service keeps in Redis.

Two sources, so that every scrape of every web process is right and never goes backwards:

* the HTTP metrics of prometheus-flask-exporter (``flask_http_request_*``) belong to the
  process that served each request. Under gunicorn every worker writes them to files in a
  directory of the web process's own (prometheus_client's multiprocess mode, set up by
  :mod:`scheduler_service.webserver`), and each scrape adds up the files of every worker,
  the ones that exited included;
* everything else is read from Redis at scrape time by the collectors below: the
  families that every role records (:mod:`scheduler_service.metrics`), queue depths,
  job states, timers, workers, breakers, cron and subscribers. Every web replica reports
  the same values, so dashboards take ``max`` across replicas, not ``sum``.
"""

from __future__ import annotations

import logging
import time

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily,
)
from prometheus_flask_exporter import PrometheusMetrics

from .. import __version__
from ..api.health import ApiCollector
from ..cron.status import CronCollector
from ..health import run_checks
from ..metrics import FAMILIES, histogram_series, read_families
from ..recorder import get_recorder
from ..recurring.status import RecurringCollector
from ..subscriber.status import SubscriberCollector
from ..wire import heartbeats_key, queue_stats
from .http_metrics import HttpMetrics

logger = logging.getLogger(__name__)

#: Key in ``Services.extras`` of the multiprocess directory of a gunicorn-served app.
MULTIPROCESS_DIR_KEY = "web_metrics_dir"
#: Job states counted by ``scheduler_jobs`` (the finished ones only grow, and expire).
LIVE_STATES = ("scheduled", "queued", "running", "failed")
#: Campaigns with the most waiting world timers shown one by one.
TOP_CAMPAIGNS = 20
#: Seconds between two scans of the keyspace for campaigns with world timers; those whose
#: world time was seen are read at every scrape.
CAMPAIGNS_SCAN_S = 300.0


class QueueCollector:
    """Reports ready, delayed and dead-lettered messages per queue, and component health."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        ready = GaugeMetricFamily("scheduler_queue_ready_messages",
                                  "Messages waiting in a queue (one per priority band: "
                                  "jobs.high, jobs.normal, jobs.low).", labels=["queue"])
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


class RecordedCollector:
    """Exports the families every process records in Redis (:data:`~scheduler_service.metrics.FAMILIES`).

    The serving process's own pending deltas are written first, so what it just did shows.
    """

    def __init__(self, services):
        self.services = services
        self.prefix = f"{services.settings.redis_namespace}:"

    def collect(self):
        get_recorder(self.services).flush()
        try:
            raw = read_families(self.services.redis, self.prefix)
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("recorded metrics unavailable: %s", e)
            return
        for family in FAMILIES:
            values = raw.get(family.name, {})
            if family.kind == "histogram":
                out = HistogramMetricFamily(family.name, family.doc, labels=list(family.labels))
                for labels, (buckets, total) in sorted(histogram_series(family, values).items()):
                    out.add_metric(list(labels), buckets, total)
            else:
                cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
                out = cls(family.name, family.doc, labels=list(family.labels))
                if family.zero_from:
                    seen = {f.split("|")[0] for f in raw.get(family.zero_from, {})}
                    values = {**{name: "0" for name in seen}, **values}
                for field, value in sorted(values.items()):
                    labels = field.split("|") if family.labels else []
                    if len(labels) == len(family.labels):
                        out.add_metric(labels, float(value))
                if not family.labels and not values and family.kind == "counter":
                    out.add_metric([], 0)
            yield out


class JobsCollector:
    """Jobs per live state, timers per clock, and the workers alive, read at scrape time."""

    def __init__(self, services, clock=time.time):
        self.services = services
        self.clock = clock
        self._campaigns: list[str] = []
        self._campaigns_at = float("-inf")

    def _world_campaigns(self) -> list[str]:
        # Campaigns whose clock was never seen are only found by a SCAN of the keyspace:
        # done every few minutes rather than at each scrape.
        now = time.monotonic()
        if now - self._campaigns_at > CAMPAIGNS_SCAN_S:
            self._campaigns = self.services.jobs.world_clock_campaigns()
            self._campaigns_at = now
        return sorted(set(self._campaigns) | self.services.jobs.remembered_campaigns())

    def collect(self):
        jobs = GaugeMetricFamily("scheduler_jobs", "Jobs by state (scheduled, queued, running, "
                                 "failed: waiting for a retry).", labels=["state"])
        pending = GaugeMetricFamily("scheduler_timers_pending",
                                    "Timers waiting, by clock (wall; world: every campaign).",
                                    labels=["clock"])
        per_campaign = GaugeMetricFamily(
            "scheduler_world_timers_pending",
            f"World-clock timers waiting, for the {TOP_CAMPAIGNS} campaigns with the most.",
            labels=["campaign"])
        overdue = GaugeMetricFamily("scheduler_timers_overdue_seconds",
                                    "Age of the oldest wall-clock timer past its due time "
                                    "(0 when none): the pumps are behind or stopped.",
                                    labels=["clock"])
        workers = GaugeMetricFamily("scheduler_worker_processes",
                                    "Worker processes whose heartbeat is recent.")
        store = self.services.jobs
        redis = self.services.redis
        settings = self.services.settings
        try:
            now_ms = int(self.clock() * 1000)
            campaigns = self._world_campaigns()
            pipe = redis.pipeline(transaction=False)
            for state in LIVE_STATES:
                pipe.zcard(store.key("jobs", "state", state))
            pipe.zcard(store.wall_timers)
            pipe.zrange(store.wall_timers, 0, 0, withscores=True)
            pipe.zcount(heartbeats_key(store.prefix), now_ms - settings.queue_heartbeat_timeout_ms,
                        "+inf")
            for campaign in campaigns:
                pipe.zcard(store.world_timers(campaign))
            answers = pipe.execute()
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("job metrics unavailable: %s", e)
            return
        counts, answers = answers[:len(LIVE_STATES)], answers[len(LIVE_STATES):]
        for state, n in zip(LIVE_STATES, counts):
            jobs.add_metric([state], n)
        wall, first, alive, world = answers[0], answers[1], answers[2], answers[3:]
        pending.add_metric(["wall"], wall)
        pending.add_metric(["world"], sum(world))
        oldest_due = first[0][1] if first else None
        overdue.add_metric(["wall"], max(0.0, (now_ms - oldest_due) / 1000) if oldest_due else 0.0)
        top = sorted(((n, c) for c, n in zip(campaigns, world) if n), reverse=True)[:TOP_CAMPAIGNS]
        for n, campaign in top:
            per_campaign.add_metric([campaign], n)
        workers.add_metric([], alive)
        yield from (jobs, pending, per_campaign, overdue, workers)


class InfoCollector:
    def collect(self):
        info = InfoMetricFamily("scheduler_service", "Scheduler service version.")
        info.add_metric([], {"version": __version__})
        yield info


class _Registry:
    """A registry seen as one collector (the HTTP metrics of a single-process app)."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def init_metrics(app, services):
    """Attach ``/metrics`` with registries of the app's own (several apps may coexist).

    Under gunicorn (``services.extras[MULTIPROCESS_DIR_KEY]`` names the directory) the HTTP
    metrics are read from every worker's files; otherwise from this process.
    """
    http = CollectorRegistry(auto_describe=True)
    # The exporter's families, recorded by hooks of our own (web.http_metrics: the same
    # names, labels and buckets, a fraction of the cost per request); the exporter gives
    # its info metric and the do_not_track decorator.
    metrics = PrometheusMetrics(app, registry=http, path=None, export_defaults=False)
    metrics.info("flask_exporter_info", "Information about the Prometheus Flask exporter",
                 version=metrics.version)
    HttpMetrics(app, http)
    exposition = CollectorRegistry(auto_describe=False)
    folder = services.extras.get(MULTIPROCESS_DIR_KEY)
    if folder:
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(exposition, path=folder)
    else:
        exposition.register(_Registry(http))
    for collector in (InfoCollector(), QueueCollector(services), JobsCollector(services),
                      RecordedCollector(services), ApiCollector(services),
                      CronCollector(services), SubscriberCollector(services),
                      RecurringCollector(services)):
        exposition.register(collector)

    # Scrapes are not counted: the exporter's do_not_track mark, honoured by HttpMetrics.
    @app.get("/metrics")
    @metrics.do_not_track()
    def prometheus_metrics():
        return Response(generate_latest(exposition), content_type=CONTENT_TYPE_LATEST)

    app.extensions["prometheus"] = metrics
    app.extensions["prometheus_exposition"] = exposition
    return metrics
