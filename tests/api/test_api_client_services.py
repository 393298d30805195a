"""The process's client in the shared services, the api health component and its metrics."""

import pytest

from scheduler_service.api import EXTRAS_KEY, get_api_client
from scheduler_service.api.client import ApiClient
from scheduler_service.embedded_redis import free_port
from scheduler_service.services import build_services
from scheduler_service.web import create_app
from helpers import hold_cron_leadership


@pytest.fixture
def api_services(make_settings, reference_api, redis_client):
    settings = make_settings(API_URL=reference_api.url, API_SERVICE_ACCOUNT_TOKEN=reference_api.key)
    built = build_services(settings)
    yield built
    get_api_client(built).close()
    built.close()
    for key in redis_client.scan_iter(f"{settings.redis_namespace}:*", count=1000):
        redis_client.delete(key)


def test_one_client_per_process_built_lazily_from_the_settings(api_services, reference_api):
    assert EXTRAS_KEY not in api_services.extras
    client = get_api_client(api_services)
    assert isinstance(client, ApiClient) and get_api_client(api_services) is client
    assert client.transport.url == reference_api.url
    assert client.breaker.threshold == api_services.settings.api_breaker_threshold
    assert client.limiter.rate == api_services.settings.api_rate_limit_per_second


def test_a_client_of_an_unreachable_api_builds_and_reports_up_until_calls_fail(make_settings):
    # Services and the client are built without a network call to the API
    settings = make_settings(API_URL=f"http://127.0.0.1:{free_port()}/graphql")
    services = build_services(settings)
    try:
        web = create_app(services=services).test_client()
        hold_cron_leadership(services)
        body = web.get("/health").get_json()
        assert body["components"]["api"]["status"] == "up"
        assert body["status"] == "healthy"
    finally:
        get_api_client(services).close()
        services.close()


def test_health_and_metrics_report_the_client(api_services):
    client = get_api_client(api_services)
    client.campaigns(use_cache=False)
    client.settlement("missing")
    web = create_app(services=api_services).test_client()
    api = web.get("/health").get_json()["components"]["api"]
    assert api["status"] == "up" and api["details"]["circuit"] == "closed"
    metrics = web.get("/metrics").get_data(as_text=True)
    assert "scheduler_api_circuit_state 0.0" in metrics
    assert 'scheduler_api_calls_total{operation="Campaigns",outcome="ok"} 1.0' in metrics
    assert 'scheduler_api_calls_total{operation="Settlement",outcome="ok"} 1.0' in metrics
