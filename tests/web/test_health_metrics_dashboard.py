"""/health, /metrics and /admin/queues through the Flask app on a real Redis."""

import base64

import pytest

from prometheus_client.parser import text_string_to_metric_families

from scheduler_service import wire
from scheduler_service.config import load_settings
from scheduler_service.errors import BadInput, CircuitOpen, Transient, UpstreamError
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import EmbeddedRedis
from scheduler_service.services import build_services
from scheduler_service.web import create_app
from helpers import hold_cron_leadership, wait_for


def test_health_is_healthy_with_every_component(client, services):
    # Given a cron leader (no cron process runs here; without one the service is degraded)
    hold_cron_leadership(services)
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["version"] and body["uptime"] >= 0
    for name in ("redis", "queue", "sample", "cron"):
        component = body["components"][name]
        assert component["status"] == "up"
        assert component["message"] and component["lastChecked"].endswith("Z")


def test_health_is_unhealthy_with_503_when_redis_is_down(tmp_path, base_env):
    # Given a service on a Redis of its own
    server = EmbeddedRedis(tmp_path, persist=False).start()
    services = build_services(load_settings({**base_env, "REDIS_URL": server.url}))
    client = create_app(services=services).test_client()
    try:
        assert client.get("/health").status_code == 200
        # When Redis stops
        server.stop()
        # Then /health says unhealthy with 503 and names the failing component
        response = client.get("/health")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unhealthy"
        assert body["components"]["redis"]["status"] == "down"
        assert "Error" in body["components"]["redis"]["message"]
        # and /metrics still answers
        assert client.get("/metrics").status_code == 200
    finally:
        services.close()
        server.stop()


def metric_samples(text):
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_are_parseable_and_count_queues(client, services):
    client.get("/health")
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "hi"})
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "hi"}, priority=9)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = metric_samples(response.get_data(as_text=True))
    assert samples[("scheduler_queue_ready_messages", (("queue", "jobs.low"),))] == 1
    assert samples[("scheduler_queue_ready_messages", (("queue", "jobs.high"),))] == 1
    assert samples[("scheduler_queue_dead_letter_messages", (("queue", "jobs.normal"),))] == 0
    assert samples[("scheduler_component_up", (("component", "redis"),))] == 1
    assert any(name.startswith("flask_http_request") for name, _ in samples)


def test_http_duration_is_labelled_by_route_not_by_url(client):
    # Three job ids and two URLs no route has: one series for the route, one for "no route"
    # (labelled by URL, every id and every probe of an unknown URL made a series of its own).
    import uuid

    headers = {"Authorization": "Bearer dev-token"}
    for _ in range(3):
        assert client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=headers).status_code == 404
    for url in ("/nowhere", "/api/v1/nothing-here"):
        assert client.get(url, headers=headers).status_code == 404
    samples = metric_samples(client.get("/metrics").get_data(as_text=True))
    paths = {dict(labels)["path"]: value for (name, labels), value in samples.items()
             if name == "flask_http_request_duration_seconds_count"}
    assert paths == {"/api/v1/jobs/<job_id>": 3, "(no route)": 2}


def test_dashboard_redirects_bare_path_and_shows_every_queue(client, services):
    response = client.get("/admin/queues")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/admin/queues/")
    page = client.get("/admin/queues/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for queue in services.queue_names:
        assert queue in html


def test_dashboard_shows_dead_letters(client, services, worker):
    send_job(services, "SAMPLE_REFUSE", "c1", {})
    key = wire.dead_key(services.jobs.prefix, "jobs.normal")
    wait_for(lambda: services.redis.zcard(key), timeout=10, message="dead letter")
    for tab in ("standard", "delayed", "failed"):
        assert client.get(f"/admin/queues/queues/jobs.normal/{tab}").status_code == 200
    failed = client.get("/admin/queues/queues/jobs.normal/failed").get_data(as_text=True)
    assert "SAMPLE_REFUSE.normal" in failed


def test_dashboard_is_off_in_production_unless_enabled(make_settings, redis_client):
    prod = dict(SCHEDULER_ENV="production", API_SERVICE_ACCOUNT_TOKEN="t", SCHEDULER_API_TOKEN="t" * 16)
    services = build_services(make_settings(**prod))
    try:
        client = create_app(services=services).test_client()
        assert client.get("/admin/queues/").status_code == 404
    finally:
        services.close()


def test_dashboard_in_production_requires_basic_auth(make_settings):
    prod = dict(SCHEDULER_ENV="production", API_SERVICE_ACCOUNT_TOKEN="t", SCHEDULER_API_TOKEN="t" * 16,
                ADMIN_DASHBOARD_ENABLED="true", ADMIN_DASHBOARD_USER="ops",
                ADMIN_DASHBOARD_PASSWORD="pw")
    services = build_services(make_settings(**prod))
    try:
        client = create_app(services=services).test_client()
        denied = client.get("/admin/queues/")
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"ops:nope").decode()
        assert client.get("/admin/queues/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"ops:pw").decode()
        assert client.get("/admin/queues/", headers={"Authorization": f"Basic {right}"}).status_code == 200
        # the rest of the app is not behind the dashboard's auth
        assert client.get("/health").status_code == 200
    finally:
        services.close()


def test_unknown_route_gets_json_error(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("error, status, code, retry_after", [
    (lambda: Transient("read timed out", operation="Effect"), 503, "UPSTREAM_UNAVAILABLE", None),
    (lambda: CircuitOpen("circuit open", retry_after_s=12.4), 503, "UPSTREAM_UNAVAILABLE", "12"),
    (lambda: BadInput("bad id", operation="Effect"), 502, "UPSTREAM_ERROR", None),
    (lambda: UpstreamError("unexpected answer"), 502, "UPSTREAM_ERROR", None),
])
def test_an_api_failure_a_route_does_not_handle_is_502_or_503_not_500(
        services, error, status, code, retry_after):
    app = create_app(services=services)

    def failing():
        raise error()

    app.add_url_rule("/test-upstream-failure", "test_upstream_failure", failing)
    response = app.test_client().get("/test-upstream-failure")
    assert response.status_code == status
    body = response.get_json()["error"]
    assert body["code"] == code and str(error()) in body["message"]
    assert response.headers.get("Retry-After") == retry_after
