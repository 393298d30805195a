"""The REST job API through the Flask app on a real Redis, with a real worker where jobs run."""

import re
import time

import pytest
from openapi_spec_validator import validate

from scheduler_service import wire
from scheduler_service.jobstore import iso_ms, now_ms, parse_iso_ms
from scheduler_service.wire import queue_stats
from scheduler_service.timers import pump_wall, pump_world
from scheduler_service.web import create_app
from helpers import wait_for

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


def post(client, body, **kw):
    return client.post("/api/v1/jobs", json=body, headers=AUTH, **kw)


def nothing_enqueued(services):
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    return stats["totals"]["ready"] == 0 and not services.redis.zcard(services.jobs.wall_timers)


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]


# -- authentication -------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_every_route_requires_the_bearer_token(client, headers):
    for method, path in [("post", "/api/v1/jobs"), ("get", "/api/v1/jobs"), ("get", "/api/v1/jobs/x"),
                         ("get", "/api/v1/jobs/x/history"), ("patch", "/api/v1/jobs/x"),
                         ("delete", "/api/v1/jobs/x"), ("get", "/api/v1/job-types"),
                         ("get", "/api/v1/dead-letters"), ("post", "/api/v1/dead-letters/x/requeue"),
                         ("delete", "/api/v1/dead-letters/x"), ("get", "/api/v1/openapi.json")]:
        response = getattr(client, method)(path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        assert error_of(response)["code"] == "UNAUTHENTICATED"


# -- create ---------------------------------------------------------------------------

def test_create_due_now_is_queued_and_runs(client, services, worker):
    response = post(client, {"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": "hi"}})
    assert response.status_code == 201
    job = response.get_json()
    assert set(job) >= {"id", "type", "campaignId", "payload", "priority", "state", "runAt",
                        "runAtWorldTime", "attempts", "lastError", "result", "createdAt", "updatedAt"}
    assert job["state"] == "queued" and job["priority"] == 3
    done = wait_for(lambda: (j := client.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).get_json())["state"] == "succeeded" and j,
                    timeout=10, message="success")
    assert done["result"] == {"echo": "hi"} and done["attempts"] == 1
    history = client.get(f"/api/v1/jobs/{job['id']}/history", headers=AUTH).get_json()["items"]
    assert [(h["from"], h["to"]) for h in history] == [(None, "queued"), ("queued", "running"),
                                                      ("running", "succeeded")]


@pytest.mark.parametrize("body, status, field", [
    ({"type": "NOPE", "campaignId": "c1"}, 400, "type"),
    ({"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": ""}}, 400, "payload.text"),
    ({"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": "x", "more": 1}}, 400, "payload.more"),
    ({"type": "PING", "campaignId": "c1", "priority": 11}, 400, "priority"),
    ({"type": "PING", "campaignId": "c1", "priority": -1}, 400, "priority"),
    ({"type": "PING", "campaignId": "c1", "runAt": "tomorrow"}, 400, "runAt"),
    ({"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00"}, 400, "runAt"),
    ({"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z",
      "runAtWorldTime": "2030-01-01T00:00:00Z"}, 400, "body"),
    ({"campaignId": "c1"}, 400, "type"),
    ({"type": "PING"}, 400, "campaignId"),
    ({"type": "PING", "campaignId": "c1", "surprise": True}, 400, "surprise"),
    # instants that could be stored but never shown again (UTC year 10000, UTC year 0)
    ({"type": "PING", "campaignId": "c1", "runAt": "9999-12-31T23:59:59-01:00"}, 400, "runAt"),
    ({"type": "PING", "campaignId": "c1", "runAt": "0001-01-01T00:00:00+01:00"}, 400, "runAt"),
    ({"type": "PING", "campaignId": "c1", "runAtWorldTime": "9999-12-31T23:59:59-01:00"}, 400,
     "runAtWorldTime"),
    ({"type": "PING", "campaignId": "c1", "runAtWorldTime": "0001-01-01T00:00:00+01:00"}, 400,
     "runAtWorldTime"),
])
def test_bad_creates_are_400_naming_the_field_and_enqueue_nothing(client, services, body, status, field):
    response = post(client, body)
    assert response.status_code == status
    error = error_of(response)
    fields = [d["field"] for d in error["details"]]
    assert field in fields, error
    assert nothing_enqueued(services)
    assert services.jobs.list()[0] == []


def test_not_json_bad_json_and_too_large(client, services):
    r = client.post("/api/v1/jobs", data="type=PING", headers=AUTH)
    assert r.status_code == 415 and error_of(r)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = client.post("/api/v1/jobs", data="{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and error_of(r)["code"] == "BAD_JSON"
    r = client.post("/api/v1/jobs", data="[1]", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400
    big = {"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": "x" * (65 * 1024)}}
    r = post(client, big)
    assert r.status_code == 413 and error_of(r)["code"]
    assert nothing_enqueued(services)


def test_idempotency_key_returns_the_first_job_for_the_same_request(client, services):
    body = {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z", "idempotencyKey": "k-1"}
    first = post(client, body)
    second = post(client, dict(body))
    assert first.status_code == 201 and second.status_code == 200
    assert second.get_json() == first.get_json()
    assert services.redis.zcard(services.jobs.wall_timers) == 1


@pytest.mark.parametrize("change", [{"runAt": "2031-01-01T00:00:00Z"}, {"priority": 9},
                                    {"campaignId": "c2"}, {"type": "SAMPLE_ECHO", "payload": {"text": "x"}}])
def test_the_same_idempotency_key_with_another_request_is_409(client, services, change):
    body = {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z", "idempotencyKey": "k-2"}
    first = post(client, body).get_json()
    r = post(client, {**body, **change})
    assert r.status_code == 409
    error = error_of(r)
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and first["id"] in error["message"]
    assert [d["field"] for d in error["details"]] == ["idempotencyKey"]
    assert [j["id"] for j in services.jobs.list()[0]] == [first["id"]]


def test_a_clients_key_cannot_suppress_a_cron_tick(client, services):
    from scheduler_service.dispatch import send_job

    # Given a client that uses the key a future sweep tick will use
    tick_key = "sweep:event-expiration:2030-01-01T00:05:00Z"
    taken = post(client, {"type": "PING", "campaignId": "c1", "idempotencyKey": tick_key})
    assert taken.status_code == 201
    # When the tick comes, the service's own job with that key is still created
    job, created = send_job(services, "PING", "SYSTEM", {}, idempotency_key=tick_key)
    assert created and job["id"] != taken.get_json()["id"]
    # and each key keeps answering in its own scope
    assert send_job(services, "PING", "SYSTEM", {}, idempotency_key=tick_key)[0]["id"] == job["id"]
    again = post(client, {"type": "PING", "campaignId": "c1", "idempotencyKey": tick_key})
    assert again.status_code == 200 and again.get_json()["id"] == taken.get_json()["id"]


# -- list, read, patch, cancel ---------------------------------------------------------

def test_list_filters_and_pages(client):
    ids = []
    for i in range(5):
        ids.append(post(client, {"type": "PING", "campaignId": f"c{i % 2}",
                                 "runAt": "2030-01-01T00:00:00Z"}).get_json()["id"])
        time.sleep(0.002)
    post(client, {"type": "SAMPLE_ECHO", "campaignId": "c0", "payload": {"text": "a"}})
    page = client.get("/api/v1/jobs?type=PING&limit=2", headers=AUTH).get_json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]
    seen = [j["id"] for j in page["items"]]
    while page["nextCursor"]:
        page = client.get(f"/api/v1/jobs?type=PING&limit=2&cursor={page['nextCursor']}", headers=AUTH).get_json()
        seen += [j["id"] for j in page["items"]]
    assert seen == ids[::-1]
    c0 = client.get("/api/v1/jobs?campaignId=c0&state=scheduled", headers=AUTH).get_json()["items"]
    assert {j["id"] for j in c0} == {ids[0], ids[2], ids[4]}
    r = client.get("/api/v1/jobs?state=weird&limit=0", headers=AUTH)
    assert r.status_code == 400
    assert {d["field"] for d in error_of(r)["details"]} == {"state", "limit"}


def test_unknown_job_is_404(client):
    for method in ("get", "patch", "delete"):
        r = getattr(client, method)("/api/v1/jobs/nope", headers=AUTH, json={"priority": 1})
        assert r.status_code == 404, method
    assert client.get("/api/v1/jobs/nope/history", headers=AUTH).status_code == 404


def test_patch_moves_a_scheduled_job_and_refuses_other_states(client, services):
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z"}).get_json()
    r = client.patch(f"/api/v1/jobs/{job['id']}", json={"runAt": "2031-06-01T10:00:00+02:00", "priority": 9},
                     headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["runAt"] == "2031-06-01T08:00:00.000Z" and r.get_json()["priority"] == 9
    score = services.redis.zscore(services.jobs.wall_timers, job["id"])
    assert iso_ms(int(score)) == "2031-06-01T08:00:00.000Z"
    # {} changes nothing: the job as it is
    r = client.patch(f"/api/v1/jobs/{job['id']}", json={}, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["runAt"] == "2031-06-01T08:00:00.000Z"
    assert len(client.get(f"/api/v1/jobs/{job['id']}/history", headers=AUTH).get_json()["items"]) == 2
    due_now = post(client, {"type": "PING", "campaignId": "c1"}).get_json()
    r = client.patch(f"/api/v1/jobs/{due_now['id']}", json={"priority": 1}, headers=AUTH)
    assert r.status_code == 409 and error_of(r)["code"] == "WRONG_STATE"


@pytest.mark.parametrize("bad", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_refused_patch_applies_none_of_its_fields(client, services, bad):
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z"}).get_json()
    r = client.patch(f"/api/v1/jobs/{job['id']}", json={"runAt": bad, "priority": 9}, headers=AUTH)
    assert r.status_code == 400
    assert [d["field"] for d in error_of(r)["details"]] == ["runAt"]
    after = client.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).get_json()
    assert after == job
    assert services.redis.zscore(services.jobs.wall_timers, job["id"]) == parse_iso_ms(job["runAt"])


def test_a_record_with_a_bad_stored_time_shows_as_such_and_can_still_be_cancelled(client, services):
    # Given a scheduled job whose stored due time cannot be shown (as an older version could store)
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z"}).get_json()
    other = post(client, {"type": "PING", "campaignId": "c1", "runAt": "2030-01-02T00:00:00Z"}).get_json()
    services.redis.hset(services.jobs.key("job", job["id"]), "runAt", "253402304399000")
    # Then every read still answers, showing the bad value for what it is
    listed = client.get("/api/v1/jobs", headers=AUTH)
    assert listed.status_code == 200
    by_id = {j["id"]: j for j in listed.get_json()["items"]}
    assert by_id[job["id"]]["runAt"] == "invalid time: 253402304399000"
    assert by_id[other["id"]]["runAt"] == "2030-01-02T00:00:00.000Z"
    assert client.get("/api/v1/jobs?state=scheduled", headers=AUTH).status_code == 200
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).get_json()["runAt"].startswith("invalid")
    assert client.get(f"/api/v1/jobs/{job['id']}/history", headers=AUTH).status_code == 200
    # and it can be cancelled
    r = client.delete(f"/api/v1/jobs/{job['id']}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    assert services.redis.zscore(services.jobs.wall_timers, job["id"]) is None


def test_patch_runat_into_the_past_makes_it_due(client, services, worker):
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": "2030-01-01T00:00:00Z"}).get_json()
    client.patch(f"/api/v1/jobs/{job['id']}", json={"runAt": iso_ms(now_ms() - 1000)}, headers=AUTH)
    assert pump_wall(services.jobs) == 1
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=10, message="run")


def test_cancelled_job_never_runs_even_if_already_queued(client, services, caplog):
    # Given a job already in its Dramatiq queue (no worker yet)
    job = post(client, {"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": "no"}}).get_json()
    assert job["state"] == "queued"
    # When it is cancelled, then a worker starts
    r = client.delete(f"/api/v1/jobs/{job['id']}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    from dramatiq import Worker

    caplog.set_level("INFO")
    w = Worker(services.broker, worker_threads=1, worker_timeout=50)
    w.start()
    try:
        services.broker.join("jobs.low", timeout=10_000)
        w.join()
    finally:
        w.stop()
    # Then it never ran
    assert services.jobs.get(job["id"])["state"] == "cancelled"
    assert not [r for r in caplog.records if r.getMessage() == "job started"]
    assert client.delete(f"/api/v1/jobs/{job['id']}", headers=AUTH).status_code == 409


def test_cancel_before_due_removes_the_timer(client, services):
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": iso_ms(now_ms() + 60_000)}).get_json()
    assert client.delete(f"/api/v1/jobs/{job['id']}", headers=AUTH).status_code == 200
    assert services.redis.zscore(services.jobs.wall_timers, job["id"]) is None
    assert pump_wall(services.jobs, now=now_ms() + 120_000) == 0


# -- timers ---------------------------------------------------------------------------

def test_wall_timer_runs_when_due_and_not_before(client, services, worker):
    due = now_ms() + 600_000
    job = post(client, {"type": "PING", "campaignId": "c1", "runAt": iso_ms(due)}).get_json()
    assert job["state"] == "scheduled"
    assert pump_wall(services.jobs, now=due - 1) == 0
    assert pump_wall(services.jobs, now=due) == 1
    assert pump_wall(services.jobs, now=due + 1) == 0  # promoted exactly once
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=10, message="run")


def test_world_timer_waits_for_the_campaigns_world_clock(client, services, worker, reference_api):
    w1 = reference_api.make_campaign(world_time="1450-01-01T00:00:00.000Z")["id"]
    job = post(client, {"type": "PING", "campaignId": w1,
                        "runAtWorldTime": "1450-03-01T12:00:00Z"}).get_json()
    assert job["state"] == "scheduled"
    assert pump_world(services.jobs, "w2", 10**13) == 0       # another campaign's clock
    assert pump_world(services.jobs, w1, parse_iso_ms("1450-03-01T11:59:59.999Z")) == 0  # not yet
    assert pump_world(services.jobs, w1, parse_iso_ms("1450-03-01T12:00:00Z")) == 1
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=10, message="run")
    # A job created for a world time the campaign has already passed is due at once.
    late = post(client, {"type": "PING", "campaignId": w1,
                         "runAtWorldTime": "1450-01-01T00:00:00Z"}).get_json()
    assert late["state"] in ("queued", "running", "succeeded")  # the worker may be quick
    assert services.redis.zscore(services.jobs.world_timers(w1), late["id"]) is None


@pytest.mark.parametrize("make_body, field", [
    # a job that touches campaign data, for a campaign the API does not know
    (lambda api: {"type": "EVENT_EXPIRATION", "campaignId": "no-such-campaign"}, "campaignId"),
    (lambda api: {"type": "DEFERRED_EFFECT", "campaignId": "no-such-campaign",
                  "payload": {"effectId": "e"}}, "campaignId"),
    # a world time for an unknown campaign, or one without a world clock
    (lambda api: {"type": "PING", "campaignId": "no-such-campaign",
                  "runAtWorldTime": "2026-03-02T00:00:00Z"}, "campaignId"),
    (lambda api: {"type": "PING", "campaignId": api.make_campaign()["id"],
                  "runAtWorldTime": "2026-03-02T00:00:00Z"}, "runAtWorldTime"),
])
def test_a_job_that_could_never_run_is_refused(client, services, reference_api, make_body, field):
    response = post(client, make_body(reference_api))
    assert response.status_code == 400
    error = error_of(response)
    assert [d["field"] for d in error["details"]] == [field]
    assert nothing_enqueued(services) and services.jobs.list()[0] == []


def test_a_world_time_patch_for_a_clockless_campaign_is_refused(client, services, reference_api):
    camp = reference_api.make_campaign()["id"]
    job = post(client, {"type": "PING", "campaignId": camp, "runAt": "2030-01-01T00:00:00Z"}).get_json()
    r = client.patch(f"/api/v1/jobs/{job['id']}", json={"runAtWorldTime": "2026-03-02T00:00:00Z"},
                     headers=AUTH)
    assert r.status_code == 400 and error_of(r)["details"][0]["field"] == "runAtWorldTime"
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=AUTH).get_json() == job


def test_a_job_for_a_real_campaign_and_a_label_only_job_are_accepted(client, reference_api):
    camp = reference_api.make_campaign(world_time="2026-03-01T00:00:00.000Z")["id"]
    assert post(client, {"type": "EVENT_EXPIRATION", "campaignId": camp}).status_code == 201
    assert post(client, {"type": "EVENT_EXPIRATION", "campaignId": "SYSTEM"}).status_code == 201
    assert post(client, {"type": "PING", "campaignId": "any-label"}).status_code == 201
    assert post(client, {"type": "PING", "campaignId": camp,
                         "runAtWorldTime": "2026-03-02T00:00:00Z"}).status_code == 201


def test_a_create_that_cannot_be_checked_is_503_and_stores_nothing(make_settings, redis_client):
    from scheduler_service.embedded_redis import free_port
    from scheduler_service.services import build_services

    services = build_services(make_settings(API_URL=f"http://127.0.0.1:{free_port()}/graphql",
                                            API_MAX_RETRIES=0))
    try:
        client = create_app(services=services).test_client()
        r = post(client, {"type": "EVENT_EXPIRATION", "campaignId": "c1"})
        assert r.status_code == 503 and error_of(r)["code"] == "UPSTREAM_UNAVAILABLE"
        assert nothing_enqueued(services) and services.jobs.list()[0] == []
    finally:
        services.close()


@pytest.mark.parametrize("redis_state", ["away", "refusing writes"])
def test_a_request_while_redis_is_unavailable_is_503_with_retry_after(make_settings, tmp_path,
                                                                      redis_state):
    from scheduler_service.embedded_redis import EmbeddedRedis, free_port
    from scheduler_service.services import build_services

    # Given a web app whose Redis is away (restarting, or a failover under way), or is a
    # master with min-replicas-to-write and no replica in reach (it refuses writes)
    server = None
    if redis_state == "away":
        url = f"redis://127.0.0.1:{free_port()}/0"
    else:
        server = EmbeddedRedis(tmp_path, persist=False, args=[
            "--min-replicas-to-write", 1, "--min-replicas-max-lag", 1]).start()
        url = server.url
    services = build_services(make_settings(REDIS_URL=url))
    try:
        client = create_app(services=services).test_client()
        # When a job is created, Then the answer says to try again, not that the service broke
        r = post(client, {"type": "SAMPLE_ECHO", "campaignId": "c1", "payload": {"text": "x"}})
        assert r.status_code == 503 and error_of(r)["code"] == "REDIS_UNAVAILABLE"
        assert r.headers["Retry-After"] == "1" and "idempotencyKey" in error_of(r)["message"]
    finally:
        services.close()
        if server is not None:
            server.stop()


# -- job types, dead letters, openapi ---------------------------------------------------

def test_job_types_list_schemas_and_defaults(client):
    items = {t["name"]: t for t in client.get("/api/v1/job-types", headers=AUTH).get_json()["items"]}
    assert items["SAMPLE_ECHO"]["plugin"] == "sample"
    assert items["SAMPLE_ECHO"]["payloadSchema"]["required"] == ["text"]
    assert items["SAMPLE_FAIL"]["maxRetries"] == 2 and items["PING"]["maxRetries"] == 3
    assert items["PING"]["defaultPriority"] == 5


def test_job_failing_twice_then_succeeding_shows_three_attempts(client, services, worker):
    job = post(client, {"type": "SAMPLE_FLAKY", "campaignId": "c1", "payload": {"failures": 2}}).get_json()
    done = wait_for(lambda: (j := services.jobs.get(job["id"]))["state"] == "succeeded" and j,
                    timeout=20, message="success")
    assert done["attempts"] == 3 and done["result"] == {"succeededOnAttempt": 3}
    states = [h["to"] for h in client.get(f"/api/v1/jobs/{job['id']}/history", headers=AUTH).get_json()["items"]]
    assert states == ["queued", "running", "failed", "queued", "running", "failed", "queued",
                      "running", "succeeded"]


def test_dead_letter_listed_requeued_with_corrected_payload_and_deleted(client, services, worker):
    # Given a job that dies: SAMPLE_FLAKY with more failures than retries
    job = post(client, {"type": "SAMPLE_FLAKY", "campaignId": "c1", "payload": {"failures": 9}}).get_json()
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "dead", timeout=30, message="dead")
    dead = client.get("/api/v1/dead-letters", headers=AUTH).get_json()["items"]
    assert [d["id"] for d in dead] == [job["id"]]
    assert dead[0]["attempts"] == 6 and "flaky failure on attempt 6" in dead[0]["lastError"]
    # A bad corrected payload is refused and changes nothing
    r = client.post(f"/api/v1/dead-letters/{job['id']}/requeue", json={"payload": {"failures": -1}}, headers=AUTH)
    assert r.status_code == 400 and error_of(r)["details"][0]["field"] == "payload.failures"
    assert services.jobs.get(job["id"])["state"] == "dead"
    # When it is replayed with a corrected payload
    r = client.post(f"/api/v1/dead-letters/{job['id']}/requeue", json={"payload": {"failures": 0}}, headers=AUTH)
    assert r.status_code == 200
    done = wait_for(lambda: (j := services.jobs.get(job["id"]))["state"] == "succeeded" and j,
                    timeout=10, message="replay")
    assert done["payload"] == {"failures": 0} and done["attempts"] == 1
    history = client.get(f"/api/v1/jobs/{job['id']}/history", headers=AUTH).get_json()["items"]
    assert "dead" in [h["to"] for h in history]
    assert any("corrected payload" in h["detail"] for h in history)
    assert client.get("/api/v1/dead-letters", headers=AUTH).get_json()["items"] == []
    # A job that is not dead is no dead letter
    assert client.delete(f"/api/v1/dead-letters/{job['id']}", headers=AUTH).status_code == 404


def test_dead_letter_delete_discards_it(client, services, worker):
    job = post(client, {"type": "SAMPLE_REFUSE", "campaignId": "c1"}).get_json()
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "dead", timeout=10, message="dead")
    xq = wire.dead_key(services.jobs.prefix, "jobs.normal")
    assert services.redis.zcard(xq) == 1
    r = client.delete(f"/api/v1/dead-letters/{job['id']}", headers=AUTH)
    assert r.status_code == 200
    assert services.redis.zcard(xq) == 0
    assert client.get("/api/v1/dead-letters", headers=AUTH).get_json()["items"] == []
    assert client.post(f"/api/v1/dead-letters/{job['id']}/requeue", headers=AUTH).status_code == 404


def test_openapi_document_is_valid_and_describes_exactly_the_routes(client, services):
    doc = client.get("/api/v1/openapi.json", headers=AUTH).get_json()
    validate(doc)
    app = create_app(services=services)
    flask_routes = {(rule.rule, m) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
                    and rule.rule != "/api/v1/openapi.json" for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(re.sub(r"\{(\w+)\}", r"<\1>", p), m.upper()) for p, ops in doc["paths"].items() for m in ops}
    assert documented == flask_routes
    create = doc["paths"]["/api/v1/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CreateJob")
    assert {"201", "200", "400", "401", "413", "415"} <= set(create["responses"])
    assert doc["components"]["schemas"]["CreateJob"]["properties"]["priority"]["anyOf"][0]["maximum"] == 10


def _api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"x-\1", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path


@pytest.mark.parametrize("auth", [
    {}, {"headers": {"Authorization": "Bearer wrong"}}, {"headers": {"Authorization": "dev-token"}},
    {"query_string": {"token": "dev-token"}}, {"query_string": {"access_token": "dev-token"}},
])
def test_every_api_route_refuses_a_missing_wrong_or_query_string_token(services, auth):
    app = create_app(services=services)
    client = app.test_client()
    routes = list(_api_routes(app))
    assert len(routes) >= 18  # jobs, job types, dead letters, schedules, world clocks, openapi
    for method, path in routes:
        response = client.open(path, method=method, json={}, **auth)
        assert response.status_code == 401, (method, path)
        assert error_of(response)["code"] == "UNAUTHENTICATED"
    assert nothing_enqueued(services) and services.jobs.list()[0] == []
