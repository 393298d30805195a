"""The request metrics: prometheus-flask-exporter's families, recorded by our own hooks."""

from flask import Flask, abort
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_flask_exporter import PrometheusMetrics

from scheduler_service.web.http_metrics import NO_ROUTE, HttpMetrics


def _route_pattern(request):
    rule = request.url_rule
    return rule.rule if rule is not None else NO_ROUTE


_route_pattern.__name__ = "path"


def _app(lean: bool):
    app = Flask("lean" if lean else "exporter")
    registry = CollectorRegistry(auto_describe=True)
    if lean:
        metrics = PrometheusMetrics(app, registry=registry, path=None, export_defaults=False)
        metrics.info("flask_exporter_info", "Information about the Prometheus Flask exporter",
                     version=metrics.version)
        HttpMetrics(app, registry)
    else:  # the exporter's own hooks, labelled by route as ours are
        metrics = PrometheusMetrics(app, registry=registry, path=None, group_by=_route_pattern)

    @app.get("/items/<item_id>")
    def item(item_id):
        if item_id == "missing":
            abort(404)
        if item_id == "boom":
            raise RuntimeError("unhandled")
        return {"id": item_id}

    @app.post("/items")
    def create():
        return {"created": True}, 201

    @app.get("/quiet")
    @metrics.do_not_track()
    def quiet():
        return "not counted"

    return app, registry


REQUESTS = [("GET", "/items/a"), ("GET", "/items/b"), ("GET", "/items/missing"),
            ("POST", "/items"), ("POST", "/items"), ("DELETE", "/items"),  # 405
            ("GET", "/nowhere"), ("GET", "/quiet"), ("GET", "/items/boom")]


def _samples(registry):
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name.endswith("_created") or s.name.endswith("_sum"):
                continue  # times of creation and summed durations differ by nature
            if s.name.endswith("_bucket") and s.labels["le"] != "+Inf":
                continue  # which bucket a duration falls in depends on the machine
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_families_match_the_exporters_own_request_for_request():
    results = {}
    for lean in (False, True):
        app, registry = _app(lean)
        app.config["PROPAGATE_EXCEPTIONS"] = False  # an unhandled error answers 500
        client = app.test_client()
        statuses = [client.open(url, method=method).status_code for method, url in REQUESTS]
        assert statuses == [200, 200, 404, 201, 201, 405, 404, 200, 500]
        results[lean] = _samples(registry)
    assert results[True] == results[False]
    lean = results[True]
    # by route, never by URL; the untracked view not at all; the error in its own family
    assert lean[("flask_http_request_duration_seconds_count",
                 (("method", "GET"), ("path", "/items/<item_id>"), ("status", "200")))] == 2
    assert lean[("flask_http_request_duration_seconds_count",
                 (("method", "GET"), ("path", NO_ROUTE), ("status", "404")))] == 1
    assert not any(dict(labels).get("path") == "/quiet" for _, labels in lean)
    assert lean[("flask_http_request_exceptions_total",
                 (("method", "GET"), ("status", "500")))] == 1
    assert sum(v for (name, _), v in lean.items() if name == "flask_http_request_total") == 8


def test_a_method_outside_http_is_counted_as_other():
    app, registry = _app(lean=True)
    client = app.test_client()
    for method in ("BREW", "PROPFIND", "X" * 200):
        client.open("/items", method=method)
    samples = _samples(registry)
    methods = {dict(labels)["method"] for (name, labels), _ in samples.items()
               if name == "flask_http_request_total"}
    assert methods == {"other"}
