"""The recurring-job API against a real Redis, a real worker and the live reference API."""

from datetime import datetime, timedelta, timezone

import pytest
from openapi_spec_validator import validate

from helpers import wait_for
from scheduler_service.recurring.service import Definition, recurring_store
from scheduler_service.timers import pump_world
from scheduler_service.times import parse_iso_ms

AUTH = {"Authorization": "Bearer dev-token"}
START = datetime(1450, 3, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ms(dt):
    return parse_iso_ms(iso(dt))


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env(CAMPAIGN_CACHE_MS=0))


@pytest.fixture
def campaign(reference_api):
    return reference_api.make_campaign(world_time=START)["id"]


def post(client, body, **headers):
    return client.post("/api/v1/recurring", json=body, headers={**AUTH, **headers})


def market_day(campaign, **over):
    return {"type": "SAMPLE_ECHO", "campaignId": campaign, "payload": {"text": "market day"},
            "clock": "world", "every": "P7D", **over}


def error_of(response):
    return response.get_json()["error"]


def settle(services, rid):
    def settled():
        d = Definition.from_fields(recurring_store(services).get(rid))
        tick = services.jobs.get(d.tick_job) if d.tick_job else None
        return d.state != "active" or (tick is not None and tick["state"] == "scheduled")

    wait_for(settled, message="the recurring job to settle")


def test_a_world_clock_recurring_job_from_creation_to_cancellation(client, services, worker,
                                                                   campaign):
    # Create: 201, with its next five occurrences as world times
    r = post(client, market_day(campaign))
    assert r.status_code == 201, r.get_json()
    rec = r.get_json()
    assert rec["state"] == "active" and rec["clock"] == "world"
    assert rec["nextOccurrences"] == [iso(START + 7 * k * DAY) for k in range(1, 6)]
    assert rec["nextOccurrence"] == iso(START + 7 * DAY)
    rid = rec["id"]
    # List with filters, and read one
    other = post(client, {**market_day(campaign), "clock": "wall", "every": "PT1H"}).get_json()
    listed = client.get(f"/api/v1/recurring?campaignId={campaign}&clock=world", headers=AUTH)
    assert [i["id"] for i in listed.get_json()["items"]] == [rid]
    both = client.get(f"/api/v1/recurring?campaignId={campaign}&limit=1", headers=AUTH).get_json()
    assert [i["id"] for i in both["items"]] == [other["id"]] and both["nextCursor"]
    page2 = client.get(f"/api/v1/recurring?campaignId={campaign}&limit=1&cursor={both['nextCursor']}",
                       headers=AUTH).get_json()
    assert [i["id"] for i in page2["items"]] == [rid]
    page3 = client.get(f"/api/v1/recurring?campaignId={campaign}&limit=1&cursor={page2['nextCursor']}",
                       headers=AUTH).get_json()
    assert page3 == {"items": [], "nextCursor": None}
    assert client.get(f"/api/v1/recurring/{rid}", headers=AUTH).get_json()["nextOccurrences"] == \
        rec["nextOccurrences"]
    # When the world moves 15 days, two market days happen, listed with their jobs
    pump_world(services.jobs, campaign, ms(START + 15 * DAY))
    settle(services, rid)
    history = client.get(f"/api/v1/recurring/{rid}/occurrences", headers=AUTH).get_json()
    assert history["clock"] == "world"
    assert [(e["kind"], e["occurrence"]) for e in history["items"]] == [
        ("created", iso(START + 7 * DAY)), ("created", iso(START + 14 * DAY))]
    job = client.get(f"/api/v1/jobs/{history['items'][0]['jobId']}", headers=AUTH).get_json()
    assert job["type"] == "SAMPLE_ECHO" and job["payload"] == {"text": "market day"}
    assert job["idempotencyKey"] == f"recurring:{rid}:{iso(START + 7 * DAY)}"
    # Pause: no next occurrence; what a resume would give is still shown
    paused = client.patch(f"/api/v1/recurring/{rid}", json={"paused": True}, headers=AUTH)
    assert paused.status_code == 200
    assert paused.get_json()["state"] == "paused" and paused.get_json()["nextOccurrence"] is None
    assert paused.get_json()["nextOccurrences"][0] == iso(START + 21 * DAY)
    # Resume with a new pattern and payload: it starts afresh from the world's now
    r = client.patch(f"/api/v1/recurring/{rid}", headers=AUTH,
                     json={"paused": False, "every": "P1D", "payload": {"text": "fair"}})
    assert r.status_code == 200, r.get_json()
    changed = r.get_json()
    assert changed["state"] == "active" and changed["every"] == "P1D" and changed["cron"] is None
    assert changed["nextOccurrences"][:2] == [iso(START + 16 * DAY), iso(START + 17 * DAY)]
    assert changed["payload"] == {"text": "fair"}
    bad = client.patch(f"/api/v1/recurring/{rid}", json={"payload": {"text": ""}}, headers=AUTH)
    assert bad.status_code == 400 and error_of(bad)["code"] == "INVALID_PAYLOAD"
    # Cancel: its pending occurrence (the timer) is cancelled with it
    tick = Definition.from_fields(recurring_store(services).get(rid)).tick_job
    gone = client.delete(f"/api/v1/recurring/{rid}", headers=AUTH)
    assert gone.status_code == 200 and gone.get_json()["state"] == "cancelled"
    assert gone.get_json()["endedReason"] == "cancelled" and gone.get_json()["nextOccurrences"] == []
    assert services.jobs.get(tick)["state"] == "cancelled"
    again = client.delete(f"/api/v1/recurring/{rid}", headers=AUTH)
    assert again.status_code == 409 and error_of(again)["code"] == "WRONG_STATE"
    assert client.patch(f"/api/v1/recurring/{rid}", json={"paused": False},
                        headers=AUTH).status_code == 409
    assert client.get(f"/api/v1/recurring?state=cancelled&campaignId={campaign}",
                      headers=AUTH).get_json()["items"][0]["id"] == rid


def test_a_world_clock_recurring_job_needs_a_campaign_with_a_world_clock(client, reference_api):
    unknown = post(client, market_day("no-such-campaign"))
    assert unknown.status_code == 400
    assert error_of(unknown)["details"] == [
        {"field": "campaignId", "message": "campaign 'no-such-campaign' does not exist in the main API"}]
    clockless = reference_api.make_campaign(world_time=None)["id"]
    r = post(client, market_day(clockless))
    assert r.status_code == 400 and error_of(r)["details"][0]["field"] == "clock"
    assert "has no world clock" in error_of(r)["message"]
    assert post(client, {**market_day(clockless), "clock": "wall"}).status_code == 201
    system = post(client, market_day("SYSTEM"))
    assert system.status_code == 400 and "not SYSTEM" in error_of(system)["message"]


@pytest.mark.parametrize("change, field, text", [
    ({"every": None}, "body", "give cron or every"),
    ({"cron": "0 0 * * *"}, "body", "give cron or every"),
    ({"every": "P0D"}, "every", "shorter than one second"),
    ({"every": "7 days"}, "every", "not an ISO-8601 duration"),
    ({"every": None, "cron": "0 25 * * *"}, "cron", "hour field"),
    ({"startAt": "tomorrow"}, "startAt", "ISO-8601 timestamp"),
    ({"startAt": "1450-03-09T00:00:00Z", "endAt": "1450-03-08T00:00:00Z"}, "body", "endAt is before"),
    ({"catchUp": "some"}, "catchUp", "'all', 'latest' or 'skip'"),
    ({"catchUpWindow": "PT"}, "catchUpWindow", "not an ISO-8601 duration"),
    ({"maxOccurrences": 0}, "maxOccurrences", "greater than or equal to 1"),
    ({"colour": "red"}, "colour", "Extra inputs"),
])
def test_bad_definitions_are_refused_naming_the_field(client, campaign, change, field, text):
    body = {k: v for k, v in {**market_day(campaign), **change}.items() if v is not None}
    r = post(client, body)
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "VALIDATION_ERROR" and text in err["message"]
    assert err["details"][0]["field"] == field


def test_unknown_type_invalid_payload_auth_and_missing_ids(client, campaign):
    r = post(client, {**market_day(campaign), "type": "NOPE"})
    assert r.status_code == 400 and error_of(r)["code"] == "UNKNOWN_JOB_TYPE"
    r = post(client, {**market_day(campaign), "payload": {}})
    assert r.status_code == 400 and error_of(r)["code"] == "INVALID_PAYLOAD"
    assert client.post("/api/v1/recurring", json=market_day(campaign)).status_code == 401
    assert client.get("/api/v1/recurring").status_code == 401
    for method, path in [("get", "/api/v1/recurring/x"), ("patch", "/api/v1/recurring/x"),
                         ("delete", "/api/v1/recurring/x"), ("get", "/api/v1/recurring/x/occurrences")]:
        response = getattr(client, method)(path, headers=AUTH, json={"paused": True})
        assert response.status_code == 404 and error_of(response)["code"] == "NOT_FOUND", path
    rid = post(client, market_day(campaign)).get_json()["id"]
    for body, text in [({"cron": "@daily", "every": "P1D"}, "not both"),
                       ({"paused": None}, "boolean"), ({"paused": "yes"}, "boolean"),
                       ({"priority": "5"}, "integer"), ({"priority": True}, "integer")]:
        r = client.patch(f"/api/v1/recurring/{rid}", json=body, headers=AUTH)
        assert r.status_code == 400 and text in error_of(r)["message"], body
    # {} changes nothing: the recurring job as it is
    before = client.get(f"/api/v1/recurring/{rid}", headers=AUTH).get_json()
    r = client.patch(f"/api/v1/recurring/{rid}", json={}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == before


def test_an_idempotency_key_returns_the_first_and_refuses_another_request(client, campaign):
    body = {**market_day(campaign), "idempotencyKey": "market-1"}
    first = post(client, body)
    assert first.status_code == 201
    again = post(client, body)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = post(client, {**body, "every": "P3D"})
    assert other.status_code == 409 and error_of(other)["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_end_at_and_max_occurrences_show_in_the_view(client, services, worker, campaign):
    rec = post(client, market_day(campaign, every="P1D", maxOccurrences=2,
                                  endAt=iso(START + 30 * DAY))).get_json()
    assert rec["nextOccurrences"] == [iso(START + DAY), iso(START + 2 * DAY)]
    pump_world(services.jobs, campaign, ms(START + 10 * DAY))
    settle(services, rec["id"])
    done = client.get(f"/api/v1/recurring/{rec['id']}", headers=AUTH).get_json()
    assert (done["state"], done["endedReason"], done["occurrences"]) == ("ended", "maxOccurrences", 2)
    assert done["lastOccurrence"]["occurrence"] == iso(START + 2 * DAY)
    r = post(client, market_day(campaign, startAt=iso(START + 3 * DAY), endAt=iso(START + 2 * DAY)))
    assert r.status_code == 400


def test_health_and_metrics_show_recurring_jobs(client, services, worker, campaign):
    rid = post(client, market_day(campaign, every="P1D", catchUp="latest")).get_json()["id"]
    post(client, {**market_day(campaign), "clock": "wall", "every": "P1D"})
    pump_world(services.jobs, campaign, ms(START + 5 * DAY))
    settle(services, rid)
    health = client.get("/health").get_json()["components"]["recurring"]
    assert health["status"] == "up"
    assert health["details"]["states"]["active"] == 2
    assert health["details"]["nextWorldOccurrences"] == [
        {"campaignId": campaign, "nextOccurrence": iso(START + 6 * DAY)}]
    assert health["details"]["nextWallOccurrence"] is not None
    text = client.get("/metrics").get_data(as_text=True)
    assert 'scheduler_recurring_occurrences_total{clock="world",policy="latest"} 1.0' in text
    assert 'scheduler_recurring_skipped_occurrences_total{clock="world",policy="latest"} 4.0' in text
    assert 'scheduler_recurring_jobs{state="active"} 2.0' in text


def test_the_recurring_routes_are_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json", headers=AUTH).get_json()
    validate(doc)
    paths = doc["paths"]
    assert set(paths["/api/v1/recurring"]) == {"get", "post"}
    assert set(paths["/api/v1/recurring/{rid}"]) == {"get", "patch", "delete"}
    assert "/api/v1/recurring/{rid}/occurrences" in paths
    create = paths["/api/v1/recurring"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CreateRecurring")
    assert {"200", "201", "400", "401", "409", "413", "415", "503"} <= set(create["responses"])
    assert "nextOccurrences" in doc["components"]["schemas"]["RecurringDetail"]["properties"]


def test_a_game_master_advancing_the_world_gets_each_market_day_once(
        client, services, worker, subscribers, reference_api, campaign):
    # Given "market day every 7 days" and a subscriber following the API's messages
    rid = post(client, market_day(campaign)).get_json()["id"]
    subscribers.start(services)
    # When the game master advances the world by 30 days through the main API
    reference_api.advance(campaign, START + 30 * DAY)
    # Then four market days happen, each once
    wait_for(lambda: len(recurring_store(services).history(rid)) == 4, timeout=30,
             message="four market days")
    settle(services, rid)
    items = client.get(f"/api/v1/recurring/{rid}/occurrences", headers=AUTH).get_json()["items"]
    assert [e["occurrence"] for e in items] == [iso(START + 7 * k * DAY) for k in range(1, 5)]
    assert len({e["jobId"] for e in items}) == 4
    assert client.get(f"/api/v1/recurring/{rid}", headers=AUTH).get_json()["nextOccurrence"] == \
        iso(START + 35 * DAY)
