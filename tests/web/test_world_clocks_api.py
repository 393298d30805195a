"""The world-clock API against a real Redis and the live reference API."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import parse_iso_ms
from scheduler_service.services import build_services
from scheduler_service.timers import pump_world
from scheduler_service.web import create_app

AUTH = {"Authorization": "Bearer dev-token"}
START = datetime(1700, 5, 1, tzinfo=timezone.utc)


def ms(dt):
    return int(dt.timestamp() * 1000)


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


def test_a_poisoned_clock_is_shown_beside_the_apis_and_reset_to_it(client, services, reference_api):
    # Given a campaign whose remembered clock went far past the API's (as a forged message did
    # before messages were checked)
    camp = reference_api.make_campaign(world_time=START)["id"]
    job, _ = send_job(services, "PING", camp, run_at_world_ms=ms(START + timedelta(days=3)))
    services.jobs.remember_world_time(camp, parse_iso_ms("2999-01-01T00:00:00Z"))
    # Then the operator sees both
    listed = client.get("/api/v1/world-clocks", headers=AUTH).get_json()["items"]
    assert {"campaignId": camp, "rememberedWorldTime": "2999-01-01T00:00:00.000Z",
            "pendingTimers": 1, "nextDue": "1700-05-04T00:00:00.000Z"} in listed
    one = client.get(f"/api/v1/world-clocks/{camp}", headers=AUTH).get_json()
    assert one["rememberedWorldTime"] == "2999-01-01T00:00:00.000Z"
    assert one["apiWorldTime"] == "1700-05-01T00:00:00.000Z" and one["apiStatus"] == "ok"
    # When they reset it
    r = client.post(f"/api/v1/world-clocks/{camp}/reset", headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["previousWorldTime"] == "2999-01-01T00:00:00.000Z"
    assert r.get_json()["clock"]["rememberedWorldTime"] == "1700-05-01T00:00:00.000Z"
    # Then a job created for a world time still ahead waits again
    later, _ = send_job(services, "PING", camp, run_at_world_ms=ms(START + timedelta(days=1)))
    assert later["state"] == "scheduled"
    assert pump_world(services.jobs, camp, ms(START + timedelta(days=2))) == 1
    assert services.jobs.get(job["id"])["state"] == "scheduled"


def test_an_unknown_campaign_is_404_and_a_deleted_one_is_forgotten_on_reset(client, services):
    assert client.get("/api/v1/world-clocks/nobody", headers=AUTH).status_code == 404
    services.jobs.remember_world_time("gone", 1000)
    assert client.get("/api/v1/world-clocks/gone", headers=AUTH).get_json()["apiStatus"] == \
        "unknown_campaign"
    r = client.post("/api/v1/world-clocks/gone/reset", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["clock"]["rememberedWorldTime"] is None
    assert services.jobs.remembered_world_time("gone") is None


def test_reset_with_the_api_unreachable_is_503_and_changes_nothing(make_settings):
    services = build_services(make_settings(
        API_URL=f"http://127.0.0.1:{free_port()}/graphql", API_MAX_RETRIES=0))
    try:
        services.jobs.remember_world_time("c9", 5000)
        client = create_app(services=services).test_client()
        r = client.post("/api/v1/world-clocks/c9/reset", headers=AUTH)
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert services.jobs.remembered_world_time("c9") == 5000
        view = client.get("/api/v1/world-clocks/c9", headers=AUTH).get_json()
        assert view["apiStatus"] == "unreachable" and view["rememberedWorldTime"]
    finally:
        for key in services.redis.scan_iter(f"{services.settings.redis_namespace}:*"):
            services.redis.delete(key)
        services.close()


def test_world_clock_routes_require_the_token(client):
    for method, path in [("get", "/api/v1/world-clocks"), ("get", "/api/v1/world-clocks/x"),
                         ("post", "/api/v1/world-clocks/x/reset")]:
        assert getattr(client, method)(path).status_code == 401
        assert getattr(client, method)(path, query_string={"token": "dev-token"}).status_code == 401
