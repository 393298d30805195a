"""The HTTP metrics of every request: prometheus-flask-exporter's families, recorded lean.

prometheus-flask-exporter defines what the web process exports about its requests:
``flask_http_request_duration_seconds{method, path, status}`` (a histogram with
prometheus_client's default buckets), ``flask_http_request_total{method, status}``,
``flask_http_request_exceptions_total{method, status}`` and ``flask_exporter_info``. Its own
per-request hooks look the request up through Flask's context proxy fourteen times and
mark their progress on it with ``hasattr``/``setattr``; measured on a job create under
load, they took about an eighth of the web worker's CPU per request (80 µs), as much as
all of the view's own Python. The hooks here record the same families, with the same
names, labels and buckets, reading the request once and keeping each label set's children,
so a request costs three updates of the shared multiprocess files and little else.

The exporter still provides the info metric and the ``do_not_track`` /
``exclude_all_metrics`` decorators, whose marks these hooks honour. ``path`` is the pattern
of the route that answered (``/api/v1/jobs/<job_id>``), ``(no route)`` for a URL no route
matches, and a method outside HTTP's own is counted as ``other``: no caller can add series.
"""

from __future__ import annotations

from time import perf_counter

from flask import request
from prometheus_client import Counter, Histogram

#: The ``path`` label of a request that no route matched.
NO_ROUTE = "(no route)"
#: Methods counted under their own name; any other is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                     "CONNECT"})
#: Marks the exporter's decorators set on a request that is not to be counted.
_UNTRACKED = ("prom_do_not_track", "prom_exclude_all")


class HttpMetrics:
    """Records prometheus-flask-exporter's request families for ``app`` in ``registry``."""

    def __init__(self, app, registry):
        self.duration = Histogram("flask_http_request_duration_seconds",
                                  "Flask HTTP request duration in seconds",
                                  ("method", "path", "status"), registry=registry)
        self.total = Counter("flask_http_request_total", "Total number of HTTP requests",
                             ("method", "status"), registry=registry)
        self.exceptions = Counter("flask_http_request_exceptions_total",
                                  "Total number of HTTP requests which resulted in an exception",
                                  ("method", "status"), registry=registry)
        #: ``(method, path, status) -> (duration child, total child)``: label sets are few
        #: (routes x methods x statuses), and a child found once is not looked up again.
        self._children: dict[tuple, tuple] = {}
        app.before_request(self.started)
        app.after_request(self.answered)
        app.teardown_request(self.failed)

    def started(self) -> None:
        request._get_current_object().metrics_started = perf_counter()

    def answered(self, response):
        req = request._get_current_object()
        started = req.__dict__.pop("metrics_started", None)
        if started is None or _untracked(req):
            return response
        self._count(req, str(response.status_code), perf_counter() - started)
        return response

    def failed(self, exception=None) -> None:
        """A request that ended in an exception no error handler took: counted as a 500,
        in the exceptions family too."""
        if exception is None:
            return
        req = request._get_current_object()
        if _untracked(req):
            return
        self.exceptions.labels(_method(req), "500").inc()
        started = req.__dict__.pop("metrics_started", None)
        if started is not None:  # not counted by answered()
            self._count(req, "500", perf_counter() - started)

    def _count(self, req, status: str, seconds: float) -> None:
        method = _method(req)
        rule = req.url_rule
        key = (method, rule.rule if rule is not None else NO_ROUTE, status)
        children = self._children.get(key)
        if children is None:
            children = (self.duration.labels(*key), self.total.labels(method, status))
            self._children[key] = children
        children[0].observe(max(seconds, 0.0))
        children[1].inc()


def _untracked(req) -> bool:
    return any(mark in req.__dict__ for mark in _UNTRACKED)


def _method(req) -> str:
    method = req.method
    return method if method in METHODS else "other"
