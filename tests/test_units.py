"""Settlement units through the real reference API, real Redis and (where jobs run) a real worker."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.dispatch import send_job
from scheduler_service.jobtypes import JobContext
from scheduler_service.simulation import iso
from scheduler_service.timers import pump_world
from scheduler_service.units import UnitStore, run_unit, unit_key
from scheduler_settlements import SettlementPayload
from helpers import wait_for

T = datetime(1800, 6, 1, 12, tzinfo=timezone.utc)


def ms(dt):
    return int(dt.timestamp() * 1000)


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


def first_seen(at=T):
    stamp = iso(ms(at))
    return {"population": 100, "lastResourceGenerationAt": stamp,
            "lastPopulationGrowthAt": stamp, "lastLevelUpCheckAt": stamp}


def temple(at=T, **extra):
    stamp = iso(ms(at))
    return {"health": 100, "lastMaintenanceAt": stamp, "lastUpgradeCheckAt": stamp, **extra}


def read(reference_api, kind, entity_id):
    query = f"query($id: ID!) {{ {kind}(id: $id) {{ id level variables version }} }}"
    return reference_api.data(query, {"id": entity_id})[kind]


def context(services, settlement_id, campaign_id, job_id="job-under-test"):
    return JobContext(job_id=job_id, job_type="SETTLEMENT_GROWTH", campaign_id=campaign_id,
                      payload=SettlementPayload(settlementId=settlement_id), attempt=1,
                      services=services)


def world(reference_api, structures=1, world_time=T + timedelta(minutes=180), **variables):
    made = reference_api.make_world(world_time=world_time, structures=structures,
                                    settlement_variables={**first_seen(), **variables},
                                    structure_variables=temple())
    return made["campaign"]["id"], made["settlements"][0], made["structures"]


def test_a_unit_is_brought_up_to_its_world_clock_written_once_and_given_one_timer(
        services, reference_api):
    # Given a settlement first seen at T with one temple, and a clock at T + 180 minutes
    camp, settlement, (structure,) = world(reference_api)
    ctx = context(services, settlement["id"], camp)
    # When its unit is brought up to date
    result = run_unit(ctx, settlement["id"])
    # Then RULES.md's worked example happened (plus one paid maintenance at T + 120)
    s = read(reference_api, "settlement", settlement["id"])
    assert s["variables"]["population"] == 115
    assert s["variables"]["resources"] == {"food": 30, "gold": 14, "materials": 9}
    assert s["version"] == settlement["version"] + 1
    assert result["occurrences"] == {"RESOURCE_GENERATION": 3, "POPULATION_GROWTH": 3,
                                     "MAINTENANCE_DUE": 1}
    assert sorted(result["written"]) == sorted([settlement["id"], structure["id"]])
    # and its one timer waits on the world clock for the next occurrence, T + 240
    assert result["nextDue"] == iso(ms(T + timedelta(minutes=240)))
    timer_id = services.jobs.keyed_timer(camp, unit_key(settlement["id"]))
    timer = services.jobs.get(timer_id)
    assert timer["state"] == "scheduled" and timer["runAtWorldTime"] == result["nextDue"]
    assert timer["type"] == "SETTLEMENT_GROWTH" and timer["payload"] == {"settlementId": settlement["id"]}
    # A second run at the same clock writes nothing and keeps the same timer
    again = run_unit(ctx, settlement["id"])
    assert again["written"] == [] and again["steps"] == 0
    assert read(reference_api, "settlement", settlement["id"])["version"] == s["version"]
    assert services.jobs.keyed_timer(camp, unit_key(settlement["id"])) == timer_id
    assert services.jobs.get(timer_id)["state"] == "scheduled"


def test_the_unit_timer_fires_on_the_world_clock_and_is_replaced_not_piled_up(
        services, worker, reference_api):
    camp, settlement, _ = world(reference_api, structures=0)
    job, _ = send_job(services, "SETTLEMENT_GROWTH", camp, {"settlementId": settlement["id"]})
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=20)
    first_timer = services.jobs.keyed_timer(camp, unit_key(settlement["id"]))
    # When the world clock passes the timer's due time (T + 240) and the timers are pumped
    reference_api.advance(camp, T + timedelta(minutes=300))
    pump_world(services.jobs, camp, ms(T + timedelta(minutes=300)))
    wait_for(lambda: services.jobs.get(first_timer)["state"] == "succeeded", timeout=20,
             message="the unit timer's job")
    # Then the unit moved on to T + 300 and exactly one new timer waits (T + 360)
    s = read(reference_api, "settlement", settlement["id"])
    assert s["variables"]["lastPopulationGrowthAt"] == iso(ms(T + timedelta(minutes=300)))
    second_timer = services.jobs.keyed_timer(camp, unit_key(settlement["id"]))
    assert second_timer != first_timer
    waiting = [j for j in services.jobs.list(state="scheduled", campaign_id=camp)[0]]
    assert [j["id"] for j in waiting] == [second_timer]
    assert waiting[0]["runAtWorldTime"] == iso(ms(T + timedelta(minutes=360)))


def test_a_concurrent_edit_causes_conflict_and_the_unit_is_simulated_again(
        services, reference_api):
    camp, settlement, _ = world(reference_api, structures=0)
    ctx = context(services, settlement["id"], camp)
    api = ctx.api
    real_update = api.update_settlement
    edits = []

    def edited_first(settlement_id, **kw):
        if not edits:  # a game master changes the settlement between our read and our write
            edits.append(reference_api.data(
                "mutation($id: ID!, $i: UpdateSettlementInput!) { updateSettlement(id: $id, "
                "input: $i) { version } }",
                {"id": settlement_id, "i": {"expectedVersion": kw["expected_version"],
                                            "variables": {"population": 200, "motto": "hold"}}}))
        return real_update(settlement_id, **kw)

    api.update_settlement = edited_first
    try:
        result = run_unit(ctx, settlement["id"])
    finally:
        api.update_settlement = real_update
    # Then the edit was kept and the 3 growths applied to it, once: 200 -> 210 -> 220 -> 231
    s = read(reference_api, "settlement", settlement["id"])
    assert s["variables"]["motto"] == "hold" and s["variables"]["population"] == 231
    assert s["version"] == settlement["version"] + 2
    assert result["occurrences"]["POPULATION_GROWTH"] == 3


def test_a_job_stopped_between_the_settlement_and_a_structure_write_ends_as_one_run_would(
        services, reference_api):
    # Given two units alike: one run straight through, one whose structure write dies
    camp, straight, (straight_temple,) = world(reference_api)
    other, broken, (broken_temple,) = world(reference_api)
    run_unit(context(services, straight["id"], camp), straight["id"])
    ctx = context(services, broken["id"], other)
    api = ctx.api
    real_update = api.update_structure

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost mid-plan")

    api.update_structure = crash
    try:
        with pytest.raises(RuntimeError):
            run_unit(ctx, broken["id"])
    finally:
        api.update_structure = real_update
    half = read(reference_api, "structure", broken_temple["id"])
    assert half["version"] == broken_temple["version"]  # the settlement was written, not it
    assert UnitStore(services).plan(broken["id"]) is not None
    # When the job is retried
    retried = run_unit(ctx, broken["id"])
    # Then the plan was finished, nothing was applied twice, and both units agree
    assert UnitStore(services).plan(broken["id"]) is None
    assert retried["steps"] == 0
    for kind, a, b in [("settlement", straight["id"], broken["id"]),
                       ("structure", straight_temple["id"], broken_temple["id"])]:
        assert read(reference_api, kind, a)["variables"] == read(reference_api, kind, b)["variables"]
    assert read(reference_api, "settlement", broken["id"])["variables"]["resources"]["gold"] == 14


def test_a_timer_already_due_when_it_is_placed_finds_the_unit_unlocked(services, reference_api):
    # Given a unit whose job is finishing when the world clock moves past its next due time
    camp, settlement, _ = world(reference_api)
    sid = settlement["id"]
    lock = f"{services.settings.redis_namespace}:unit:lock:{sid}"
    seen = {}

    class ClockMovesMeanwhile(JobContext):
        def replace_timer(self, key, job_type, payload, *, due_ms, clock, campaign_id=None):
            # the campaign advances past the next due time and the subscriber remembers it,
            # so the timer is placed due now, and a second worker thread takes its job at once
            moved = due_ms + 60 * 60_000
            reference_api.advance(camp, datetime.fromtimestamp(moved / 1000, timezone.utc))
            services.jobs.remember_world_time(camp, moved)
            record = super().replace_timer(key, job_type, payload, due_ms=due_ms, clock=clock,
                                           campaign_id=campaign_id)
            seen["locked"] = bool(services.redis.exists(lock))
            seen["state"] = services.jobs.get(record["id"])["state"]
            seen["next"] = run_unit(context(services, sid, camp, job_id=record["id"]), sid)
            return record

    ctx = ClockMovesMeanwhile(job_id="finishing-job", job_type="SETTLEMENT_GROWTH",
                              campaign_id=camp, payload=SettlementPayload(settlementId=sid),
                              attempt=1, services=services)
    # When the job places the timer
    first = run_unit(ctx, sid)
    # Then the timer's job found the unit free and brought it up to the new clock (before,
    # the timer was placed under the finishing job's lock: the new job skipped, and the
    # unit stayed behind its clock with no timer left)
    assert first["outcome"] == "simulated" and seen["state"] == "queued"
    assert seen["next"]["outcome"] == "simulated", seen["next"]
    assert seen["locked"] is False
    assert seen["next"]["occurrences"]["RESOURCE_GENERATION"] >= 1
    assert services.jobs.keyed_timer(camp, unit_key(sid)) is not None


def test_past_simulation_max_steps_a_job_continues_in_another(make_settings, reference_api,
                                                              redis_client):
    from dramatiq import Worker

    from scheduler_service.services import build_services

    services = build_services(make_settings(**reference_api.client_env(SIMULATION_MAX_STEPS=4)))
    worker = Worker(services.broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        camp, settlement, _ = world(reference_api, structures=0,
                                    world_time=T + timedelta(minutes=600))
        job, _ = send_job(services, "SETTLEMENT_GROWTH", camp, {"settlementId": settlement["id"]})
        # 10 resource + 10 population occurrences: 4 per job, so 5 jobs in all
        wait_for(lambda: read(reference_api, "settlement", settlement["id"])["variables"]
                 ["lastPopulationGrowthAt"] == iso(ms(T + timedelta(minutes=600))), timeout=30,
                 message="the continuations to catch up")
        wait_for(lambda: services.jobs.keyed_timer(camp, unit_key(settlement["id"])), timeout=10)
    finally:
        worker.stop()
        services.close()
    first = services.jobs.get(job["id"])
    assert first["result"]["continued"] is True and first["result"]["steps"] == 4
    s = read(reference_api, "settlement", settlement["id"])["variables"]
    assert s["population"] == 158  # 100 grown 5 % ten times, floored each time
    assert s["resources"] == {"food": 100, "gold": 50, "materials": 30}


AUTH = {"Authorization": "Bearer dev-token"}


def test_a_preview_shows_exactly_what_the_advance_then_writes(services, reference_api):
    from scheduler_service.web import create_app

    client = create_app(services=services).test_client()
    camp, settlement, (structure,) = world(reference_api, world_time=T)
    until = T + timedelta(hours=20)
    before = read(reference_api, "settlement", settlement["id"])
    # When a game master previews the next 20 hours
    r = client.post(f"/api/v1/campaigns/{camp}/preview", json={"until": iso(ms(until))},
                    headers=AUTH)
    assert r.status_code == 200
    body = r.get_json()
    assert body["unitsTotal"] == 1 and body["unitsChanged"] == 1 and body["clock"] == "world"
    (unit,) = body["units"]
    # Then nothing was written
    assert read(reference_api, "settlement", settlement["id"]) == before
    # and advancing the clock to that time writes exactly what the preview showed
    reference_api.advance(camp, until)
    result = run_unit(context(services, settlement["id"], camp), settlement["id"])
    after = read(reference_api, "settlement", settlement["id"])["variables"]
    temple_after = read(reference_api, "structure", structure["id"])["variables"]
    assert unit["occurrences"] == result["occurrences"]
    assert unit["settlement"]["population"] == {"from": 100, "to": after["population"]}
    assert unit["settlement"]["resources"]["to"] == after["resources"]
    assert temple_after["upgradeAvailable"] is True and temple_after["health"] == 100
    assert unit["structures"] == [{"id": structure["id"], "type": "temple",
                                   "upgradeAvailable": {"from": None, "to": True}}]


def test_preview_errors_name_the_problem(services, reference_api):
    from scheduler_service.web import create_app

    client = create_app(services=services).test_client()
    camp, _, _ = world(reference_api, world_time=T)
    r = client.post(f"/api/v1/campaigns/{camp}/preview", json={"until": iso(ms(T) - 1)}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"]["details"][0]["field"] == "until"
    r = client.post(f"/api/v1/campaigns/{camp}/preview", json={"until": "soon"}, headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"]["details"][0]["field"] == "until"
    r = client.post("/api/v1/campaigns/nope/preview", json={"until": iso(ms(T))}, headers=AUTH)
    assert r.status_code == 404
    assert client.post(f"/api/v1/campaigns/{camp}/preview", json={"until": iso(ms(T))}).status_code == 401


def _unit_state(reference_api, settlement_id):
    s = read(reference_api, "settlement", settlement_id)
    structures = reference_api.data(
        "query($id: ID!) { structuresBySettlement(settlementId: $id) { type level variables } }",
        {"id": settlement_id})["structuresBySettlement"]
    return s["level"], s["variables"], sorted((t["type"], t["level"], sorted(t["variables"].items()))
                                                for t in structures)


@pytest.mark.slow
def test_one_advance_and_a_split_advance_end_alike_through_the_whole_service(
        services, worker, subscribers, reference_api):
    # Given two identical campaigns at T, each with a settlement, a temple and a market being built
    def build():
        made = reference_api.make_world(world_time=T, settlement_variables=first_seen())
        sid = made["settlements"][0]["id"]
        reference_api.make_structure(sid, "temple", variables=temple(health=60))
        reference_api.make_structure(sid, "market", variables={
            "constructionStartedAt": iso(ms(T)), "constructionDurationMinutes": 600,
            "isOperational": False})
        return made["campaign"]["id"], sid

    subscribers.start(services)
    (one, one_sid), (split, split_sid) = build(), build()
    for camp, sid in ((one, one_sid), (split, split_sid)):  # their unit timers are placed
        wait_for(lambda: services.jobs.keyed_timer(camp, unit_key(sid)), timeout=30,
                 message="the unit's first timer")
    end = T + timedelta(days=2)

    def reached(sid, when):
        return read(reference_api, "settlement", sid)["variables"]["lastResourceGenerationAt"] == \
            iso(ms(when))

    # When one campaign advances by two days at once, the other in four steps of 12 hours
    reference_api.advance(one, end)
    for hours in (12, 24, 36, 48):
        reference_api.advance(split, T + timedelta(hours=hours))
        wait_for(lambda: reached(split_sid, T + timedelta(hours=hours)), timeout=60,
                 message=f"the split campaign's unit at +{hours}h")
    wait_for(lambda: reached(one_sid, end), timeout=60, message="the one-step campaign's unit")
    wait_for(lambda: not services.jobs.list(state="queued")[0]
             and not services.jobs.list(state="running")[0], timeout=30, message="quiet")
    # Then both units are in the same state, the market built and the temple maintained
    assert _unit_state(reference_api, one_sid) == _unit_state(reference_api, split_sid)
    level, variables, structures = _unit_state(reference_api, one_sid)
    market = dict(next(s[2] for s in structures if s[0] == "market"))
    assert market["isOperational"] is True and market["constructionCompletedAt"] == iso(ms(T) + 600 * 60_000)
    assert variables["population"] > 100


def test_a_checkpoint_is_kept_with_its_job_and_a_keyed_timer_replaces_the_last(services):
    from scheduler_service.jobstore import now_ms, parse_iso_ms

    job, _ = send_job(services, "PING", "c1", {}, run_at_ms=now_ms() + 3_600_000)
    ctx = JobContext(job_id=job["id"], job_type="PING", campaign_id="c1",
                     payload=SettlementPayload(settlementId="x"), attempt=1, services=services)
    assert ctx.load_checkpoint() is None
    ctx.save_checkpoint({"written": ["s1"], "step": 3})
    assert ctx.load_checkpoint() == {"written": ["s1"], "step": 3}
    ctx.save_checkpoint(None)
    assert ctx.load_checkpoint() is None
    # One waiting job per key: a new due time cancels the previous one, the same keeps it
    first = ctx.replace_timer("probe", "PING", {}, due_ms=now_ms() + 60_000, clock="wall")
    same = ctx.replace_timer("probe", "PING", {}, due_ms=parse_iso_ms(first["runAt"]),
                             clock="wall")
    assert same["id"] == first["id"] and services.jobs.get(first["id"])["state"] == "scheduled"
    second = ctx.replace_timer("probe", "PING", {}, due_ms=now_ms() + 120_000, clock="wall")
    assert services.jobs.get(first["id"])["state"] == "cancelled"
    assert services.jobs.keyed_timer("c1", "probe") == second["id"]
    assert ctx.clear_timer("probe") is True
    assert services.jobs.get(second["id"])["state"] == "cancelled"
    assert services.jobs.keyed_timer("c1", "probe") is None


def test_a_unit_is_read_in_one_request(services, reference_api):
    from scheduler_service.api import get_api_client

    api = get_api_client(services)
    _, settlement, (a, b) = world(reference_api, structures=2)
    found, structures = api.unit(settlement["id"])
    assert found.id == settlement["id"] and {s.id for s in structures} == {a["id"], b["id"]}
    assert api.unit("no-such-settlement") is None
