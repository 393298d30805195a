"""The schedule API through the Flask app on a real Redis."""

from datetime import datetime, timedelta

import pytest

from scheduler_service.cron.expr import next_fire_times, parse_cron
from scheduler_service.cron.schedules import ScheduleStore
from scheduler_service.services import build_services
from scheduler_service.web import create_app

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


def get(client, path):
    response = client.get(f"/api/v1/schedules{path}", headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def patch(client, name, body, actor=None):
    headers = {**AUTH, **({"X-Actor": actor} if actor else {})}
    return client.patch(f"/api/v1/schedules/{name}", json=body, headers=headers)


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/schedules"), ("get", "/api/v1/schedules/sample-tick"),
    ("patch", "/api/v1/schedules/sample-tick"), ("post", "/api/v1/schedules/sample-tick/run"),
    ("get", "/api/v1/schedules/sample-tick/history"),
])
def test_every_schedule_route_requires_the_bearer_token(client, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = getattr(client, method)(path, headers=headers, json={"enabled": False})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "UNAUTHENTICATED"


def test_list_shows_every_sweep_with_its_cron_state_and_next_run(client):
    items = {s["name"]: s for s in get(client, "")["items"]}
    assert {"event-expiration", "sample-tick", "sample-ping", "sample-broken"} <= set(items)
    core = items["event-expiration"]
    assert core["cron"] == "*/5 * * * *" and core["cronSource"] == "default"
    assert core["envVar"] == "CRON_EVENT_EXPIRATION" and core["jobType"] == "EVENT_EXPIRATION"
    assert core["plugin"] == "core" and core["campaignId"] == "SYSTEM"
    assert core["enabled"] is True and core["overlap"] == "skip" and core["lastRun"] is None
    assert ts(core["nextRun"]).minute % 5 == 0 and ts(core["nextRun"]) > datetime.now(ts(core["nextRun"]).tzinfo)


def test_detail_lists_the_next_five_ticks(client):
    body = get(client, "/sample-ping")
    runs = [ts(t) for t in body["nextRuns"]]
    assert len(runs) == 5 and body["nextRun"] == body["nextRuns"][0]
    assert all((b - a).total_seconds() == 60 for a, b in zip(runs, runs[1:]))


def test_environment_variable_overrides_the_default(make_settings, redis_client):
    services = build_services(make_settings(CRON_SAMPLE_PING="*/10 * * * *"))
    try:
        body = get(create_app(services=services).test_client(), "/sample-ping")
        assert body["cron"] == "*/10 * * * *" and body["cronSource"] == "env"
        assert body["defaultCron"] == "* * * * *"
    finally:
        services.close()


def test_patch_changes_are_stored_and_kept_in_the_history_with_the_actor(client, services):
    # When an operator disables a sweep and changes its cron and overlap policy
    r = patch(client, "sample-ping", {"enabled": False, "cron": "*/15 * * * *", "overlap": "allow"},
              actor="ops@example.org")
    assert r.status_code == 200
    body = r.get_json()
    # Then the answer shows the new state (no next run while disabled)
    assert body["enabled"] is False and body["cron"] == "*/15 * * * *" and body["cronSource"] == "api"
    assert body["overlap"] == "allow" and body["nextRun"] is None and body["nextRuns"] == []
    # and every cron replica reads the same from Redis
    state = ScheduleStore(services.redis, services.settings.redis_namespace, services.registry,
                          services.settings).state("sample-ping")
    assert (state.enabled, state.cron, state.overlap) == (False, "*/15 * * * *", "allow")
    # When it is enabled again without a name, and the cron goes back to the configured one
    body = patch(client, "sample-ping", {"enabled": True, "cron": None}).get_json()
    assert body["enabled"] is True and body["cron"] == "* * * * *" and body["cronSource"] == "default"
    # Then the history tells what, from, to, when and who
    history = get(client, "/sample-ping/history")
    assert history["name"] == "sample-ping"
    changes = [(h["field"], h["from"], h["to"], h["actor"]) for h in history["items"]]
    assert changes == [
        ("enabled", True, False, "ops@example.org"),
        ("cron", "* * * * *", "*/15 * * * *", "ops@example.org"),
        ("overlap", "skip", "allow", "ops@example.org"),
        ("enabled", False, True, "api"),
        ("cron", "*/15 * * * *", "* * * * *", "api"),
    ]
    assert all(h["at"].endswith("Z") for h in history["items"])


def test_patch_that_changes_nothing_adds_no_history(client):
    assert patch(client, "sample-ping", {"enabled": True}).status_code == 200
    # {} is a change of nothing too: 200 with the schedule as it is
    before = get(client, "/sample-ping")
    r = patch(client, "sample-ping", {})
    assert r.status_code == 200 and r.get_json()["cron"] == before["cron"]
    assert get(client, "/sample-ping/history")["items"] == []


@pytest.mark.parametrize("body, field, words", [
    ({"cron": "61 * * * *"}, "cron", "minute field '61'"),
    ({"cron": "* * *"}, "cron", "3 field(s)"),
    ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
    ({"enabled": "yes"}, "enabled", "boolean"),
    ({"enabled": None}, "enabled", "boolean"),
    ({"enabled": 1}, "enabled", "boolean"),
    ({"overlap": "queue"}, "overlap", "'skip' or 'allow'"),
    ({"priority": 3}, "priority", "Extra inputs"),
    ({"overlap": None}, "overlap", "'skip' or 'allow'"),
])
def test_bad_patch_is_400_naming_the_field_and_changes_nothing(client, body, field, words):
    r = patch(client, "sample-tick", body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and words in error["message"]
    assert error["details"][0]["field"] == field
    detail = get(client, "/sample-tick")
    assert detail["cron"] == "* * * * *" and detail["enabled"] is True
    assert get(client, "/sample-tick/history")["items"] == []


def test_unknown_schedule_is_404(client):
    for method, path in [("get", ""), ("get", "/history"), ("post", "/run")]:
        r = getattr(client, method)(f"/api/v1/schedules/nope{path}", headers=AUTH)
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "NOT_FOUND"
    assert patch(client, "nope", {"enabled": False}).status_code == 404


def test_run_now_enqueues_the_sweeps_job_even_when_disabled(client, services):
    patch(client, "sample-tick", {"enabled": False})
    r = client.post("/api/v1/schedules/sample-tick/run", headers={**AUTH, "X-Actor": "alice"})
    assert r.status_code == 201
    job = r.get_json()["job"]
    assert r.get_json()["schedule"] == "sample-tick"
    assert job["type"] == "SAMPLE_ECHO" and job["campaignId"] == "sample"
    assert job["payload"] == {"text": "tick"} and job["state"] == "queued"
    assert services.jobs.get(job["id"])["state"] == "queued"
    last = get(client, "/sample-tick")["lastRun"]
    assert last["outcome"] == "enqueued" and last["trigger"] == "manual" and last["jobId"] == job["id"]
    assert last["tick"] is None and last["durationMs"] >= 0 and "alice" in last["detail"]
    assert get(client, "/sample-tick/history")["items"][-1]["field"] == "run"


def test_a_run_that_fails_is_500_and_recorded_as_the_last_run(client):
    r = client.post("/api/v1/schedules/sample-broken/run", headers=AUTH)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "SWEEP_FAILED"
    assert r.get_json()["error"]["details"][0]["field"] == "name"
    last = get(client, "/sample-broken")["lastRun"]
    assert last["outcome"] == "failed" and "payload.text" in last["error"]


def test_schedule_routes_are_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json", headers=AUTH).get_json()
    assert set(doc["paths"]["/api/v1/schedules/{name}"]) == {"get", "patch"}
    assert "post" in doc["paths"]["/api/v1/schedules/{name}/run"]
    assert doc["paths"]["/api/v1/schedules"]["get"]["tags"] == ["schedules"]
    patch_body = doc["components"]["schemas"]["PatchSchedule"]["properties"]
    assert set(patch_body) == {"enabled", "cron", "overlap"}


def test_next_runs_follow_the_cron_the_api_set(client):
    patch(client, "sample-ping", {"cron": "*/20 * * * * *"})
    runs = [ts(t) for t in get(client, "/sample-ping")["nextRuns"]]
    assert all(t.second % 20 == 0 for t in runs)
    assert runs == next_fire_times(parse_cron("*/20 * * * * *"), runs[0] - timedelta(seconds=20), 5)
