"""Alerts: a JSON POST to ``ALERT_WEBHOOK_URL`` when something needs an operator.

Each process that can see a problem sends its own alert:

========================  ==========  ============================  ===========================
kind                      severity    sent by                       subject (repeats suppressed)
========================  ==========  ============================  ===========================
``job_dead``              warning     the worker that dead-lettered  the job type
``breaker_open``          critical    the process whose breaker      ``api``
                                      opened
``sweep_failing``         critical    the cron leader (second        the sweep
                                      failure in a row and on)
``subscriber_down``       warning     the subscriber, disconnected   its instance id
                                      over ALERT_SUBSCRIBER_DOWN_S
``cron_leader_changed``   info        the replica that took over     ``cron``
========================  ==========  ============================  ===========================

The body is ``{"severity", "title", "details", "time"}``: ``details`` is an object (the
kind, the subject, the host and what the alert is about), ``time`` an ISO-8601 UTC time.

Sending never slows the caller: :meth:`Alerter.send` puts the alert on a bounded queue
(dropping and counting it when full) and returns; one thread per process posts them with a
short timeout. A repeat of one alert (same kind and subject) within ``ALERT_COOLDOWN_S`` is
suppressed across every process by a Redis key (``alert:<kind>:<subject>``, set with
``NX`` and the cooldown as expiry), and within the process by memory when Redis cannot be
reached. Every alert is counted in ``scheduler_alerts_total{kind, result}``.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import requests

from .metrics import ALERTS
from .recorder import get_recorder

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
#: Alerts waiting to be posted; past this they are dropped (and counted).
QUEUE_SIZE = 100
#: Connect and read timeout of one webhook POST, in seconds.
TIMEOUT_S = 2.0
#: How long a stopping process waits for the alerts still queued.
DRAIN_S = 2.0


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class Alerter:
    """Posts alerts to one webhook from a thread of its own.

    Args:
        url: the webhook; None disables sending (alerts are then not even queued).
        cooldown_s: repeats of one (kind, subject) within this are suppressed; 0 sends all.
        redis: the client holding the shared cooldown keys (None: per process only).
        prefix: ``"<namespace>:"``.
        count: ``count(kind, result)``, the ``scheduler_alerts_total`` counter.
        timeout_s: timeout of a POST.
        queue_size: alerts that may wait.
        clock: epoch seconds.
    """

    def __init__(self, url: str | None, cooldown_s: float, *, redis=None, prefix: str = "",
                 count: Callable[[str, str], None] = lambda kind, result: None,
                 timeout_s: float = TIMEOUT_S, queue_size: int = QUEUE_SIZE,
                 clock: Callable[[], float] = time.time):
        self.url = url
        self.cooldown_s = cooldown_s
        self.redis = redis
        self.prefix = prefix
        self.count = count
        self.timeout_s = timeout_s
        self.clock = clock
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._recent: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def send(self, kind: str, subject: str, severity: str, title: str,
             details: dict | None = None) -> bool:
        """Queue one alert; returns whether it was queued. Never blocks, never raises."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        if self.url is None:
            return False
        now = self.clock()
        with self._lock:
            # Memory first: a storm of one alert in this process costs no Redis call at all.
            last = self._recent.get((kind, subject))
            if self.cooldown_s and last is not None and now - last < self.cooldown_s:
                self.count(kind, "suppressed")
                return False
            self._recent[(kind, subject)] = now
            if len(self._recent) > 10_000:
                self._recent = {k: t for k, t in self._recent.items() if now - t < self.cooldown_s}
        body = {"severity": severity, "title": title, "time": _iso(now),
                "details": {"kind": kind, "subject": subject, "host": self.host,
                            **(details or {})}}
        try:
            self._queue.put_nowait((kind, subject, body))
        except queue.Full:
            self.count(kind, "dropped")
            logger.warning("alert %s dropped: %s alerts already wait to be sent", kind,
                           self._queue.maxsize, extra={"alert": kind})
            return False
        self._ensure_thread()
        return True

    # -- what the roles report ---------------------------------------------------------------
    def job_dead(self, attempt) -> bool:
        """A job was dead-lettered (``attempt``: :class:`~scheduler_service.metrics.Attempt`)."""
        return self.send("job_dead", attempt.job_type, "warning",
                         f"Job {attempt.job_id} ({attempt.job_type}) was dead-lettered",
                         {"jobId": attempt.job_id, "jobType": attempt.job_type,
                          "campaignId": attempt.campaign_id, "error": attempt.error})

    def breaker_opened(self, failures: int, duration_s: float, error) -> bool:
        return self.send("breaker_open", "api", "critical",
                         f"API circuit breaker opened for {duration_s:g}s",
                         {"consecutiveFailures": failures, "durationS": duration_s,
                          "lastError": f"{type(error).__name__}: {error}" if error else None,
                          "pid": self.pid})

    # -- the sending thread ------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
                self._thread.start()
                atexit.register(self.drain)

    def _run(self) -> None:
        while True:
            kind, subject, body = self._queue.get()
            try:
                if self._shared_repeat(kind, subject):
                    self.count(kind, "suppressed")
                else:
                    self._post(kind, body)
            except Exception:  # never let the sender die
                logger.exception("alert %s could not be handled", kind)
            finally:
                self._queue.task_done()

    def _shared_repeat(self, kind: str, subject: str) -> bool:
        """Whether another process sent this alert within the cooldown (claims it if not)."""
        if not self.cooldown_s or self.redis is None:
            return False
        try:
            claimed = self.redis.set(f"{self.prefix}alert:{kind}:{subject}", self.host, nx=True,
                                     px=int(self.cooldown_s * 1000))
        except Exception as e:  # Redis away: the memory cooldown is all there is
            logger.debug("alert cooldown not shared (%s)", e)
            return False
        return not claimed

    def _post(self, kind: str, body: dict) -> None:
        try:
            response = self._session.post(self.url, json=body, timeout=self.timeout_s)
            ok = 200 <= response.status_code < 300
            why = f"HTTP {response.status_code}"
        except requests.RequestException as e:
            ok, why = False, type(e).__name__
        self.count(kind, "sent" if ok else "failed")
        if ok:
            logger.info("alert %s sent: %s", kind, body["title"], extra={"alert": kind})
        else:  # the URL is a secret: never logged
            logger.warning("alert %s not delivered to the webhook (%s): %s", kind, why,
                           body["title"], extra={"alert": kind})

    def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Wait up to ``timeout_s`` for the queued alerts to be handled."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)


#: Key of the alerter in ``Services.extras``.
EXTRAS_KEY = "alerts"


def get_alerter(services) -> Alerter:
    """The process's alerter, built from the settings on first use (one per process)."""

    def build():
        settings = services.settings
        recorder = get_recorder(services) if settings.alert_webhook_url else None
        return Alerter(
            settings.alert_webhook_url, settings.alert_cooldown_s, redis=services.redis,
            prefix=f"{settings.redis_namespace}:",
            count=(lambda kind, result: recorder.incr(ALERTS, (kind, result))) if recorder
            else (lambda kind, result: None))

    return services.per_process(EXTRAS_KEY, build)
