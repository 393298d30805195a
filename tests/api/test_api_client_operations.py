"""Every query and mutation of the client, over HTTP against the live reference API."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.api.models import Campaign, Effect, Event, Page, Settlement, Structure
from scheduler_service.errors import Conflict, NotFound

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_campaigns_lists_them_typed_and_caches_until_bypassed(client, reference_api):
    made = reference_api.make_campaign(world_time=T0, settings={"tz": "UTC"})
    listed = {c.id: c for c in client.campaigns(use_cache=False)}
    assert listed[made["id"]] == Campaign(id=made["id"], name=made["name"],
                                          current_world_time=T0, is_active=True,
                                          settings={"tz": "UTC"})
    # A campaign created after the list was cached shows only once the cache is bypassed
    later = reference_api.make_campaign()
    assert later["id"] not in {c.id for c in client.campaigns()}
    assert later["id"] in {c.id for c in client.campaigns(use_cache=False)}
    assert later["id"] in {c.id for c in client.campaigns()}


def test_campaign_by_id_or_none(client, reference_api):
    made = reference_api.make_campaign()
    found = client.campaign(made["id"])
    assert found.name == made["name"] and found.current_world_time is None
    assert client.campaign("no-such-campaign") is None


def test_current_world_time_is_a_utc_datetime_or_none_without_a_clock(client, reference_api):
    with_clock = reference_api.make_campaign(world_time=T0)
    without = reference_api.make_campaign()
    assert client.get_current_world_time(with_clock["id"]) == T0
    assert client.get_current_world_time(with_clock["id"]).tzinfo is not None
    assert client.get_current_world_time(without["id"]) is None
    reference_api.advance(with_clock["id"], T0 + timedelta(hours=2))
    assert client.get_current_world_time(with_clock["id"]) == T0 + timedelta(hours=2)


def test_current_world_time_of_a_missing_campaign_is_not_found(client):
    with pytest.raises(NotFound) as caught:
        client.get_current_world_time("no-such-campaign")
    assert caught.value.operation == "GetCurrentWorldTime" and caught.value.code == "NOT_FOUND"


def test_overdue_events_page_by_page_oldest_first(client, reference_api):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    oldest = reference_api.make_event(camp, T0 - timedelta(hours=3))
    old = reference_api.make_event(camp, T0 - timedelta(hours=1))
    within_grace = reference_api.make_event(camp, T0 - timedelta(minutes=2))
    reference_api.make_event(camp, T0 + timedelta(hours=1))
    first = client.get_overdue_events(camp, grace_period_ms=300_000, first=1)
    assert isinstance(first, Page) and first.has_next_page and first.end_cursor
    assert [e.id for e in first.nodes] == [oldest["id"]]
    assert isinstance(first.nodes[0], Event)
    assert first.nodes[0].scheduled_at == T0 - timedelta(hours=3)
    ids = [e.id for e in client.iter_overdue_events(camp, grace_period_ms=300_000, page_size=1)]
    assert ids == [oldest["id"], old["id"]]
    ids = [e.id for e in client.iter_overdue_events(camp, grace_period_ms=0)]
    assert ids == [oldest["id"], old["id"], within_grace["id"]]


def test_overdue_events_are_empty_without_a_world_clock(client, reference_api):
    camp = reference_api.make_campaign()["id"]
    reference_api.make_event(camp, T0)
    page = client.get_overdue_events(camp)
    assert page.nodes == () and not page.has_next_page


def test_iter_settlements_pages_through_1200(client, reference_api):
    camp = reference_api.make_campaign()["id"]
    kingdom = reference_api.make_kingdom(camp)["id"]
    ids = reference_api.make_settlements(kingdom, 1200, variables={"population": 10})
    seen = list(client.iter_settlements(camp))
    assert [s.id for s in seen] == ids
    assert all(isinstance(s, Settlement) and s.campaign_id == camp and s.kingdom_id == kingdom
               and s.variables == {"population": 10} for s in seen)
    page = client.settlements_by_campaign(camp, first=500)
    assert len(page.nodes) == 500 and page.has_next_page
    last = client.settlements_by_campaign(camp, first=500, after=client.settlements_by_campaign(
        camp, first=500, after=page.end_cursor).end_cursor)
    assert len(last.nodes) == 200 and not last.has_next_page


def test_structures_by_campaign_and_by_settlement(client, reference_api):
    world = reference_api.make_world(settlements=3, structures=2, structure_type="market",
                                     structure_variables={"health": 100})
    camp = world["campaign"]["id"]
    expected = [s["id"] for s in world["structures"]]
    assert [s.id for s in client.iter_structures(camp, page_size=4)] == expected
    page = client.structures_by_campaign(camp, first=5)
    assert len(page.nodes) == 5 and page.has_next_page
    settlement = world["settlements"][1]["id"]
    here = client.structures_by_settlement(settlement)
    assert [s.id for s in here] == expected[2:4]
    assert all(isinstance(s, Structure) and s.type == "market" and s.settlement_id == settlement
               and s.variables == {"health": 100} and s.campaign_id == camp for s in here)


def test_settlement_structure_and_event_by_id_or_none(client, reference_api):
    world = reference_api.make_world(world_time=T0, settlements=1, structures=1)
    settlement, structure = world["settlements"][0], world["structures"][0]
    event = reference_api.make_event(world["campaign"]["id"], T0, event_type="kingdom")
    assert client.settlement(settlement["id"]).name == settlement["name"]
    assert client.structure(structure["id"]).name == structure["name"]
    found = client.event(event["id"])
    assert found.event_type == "kingdom" and found.scheduled_at == T0 and not found.is_completed
    assert client.settlement("nope") is None
    assert client.structure("nope") is None
    assert client.event("nope") is None


def test_expire_event_completes_it_at_world_time_and_twice_is_a_conflict(client, reference_api):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    event = reference_api.make_event(camp, T0 - timedelta(hours=1))
    expired = client.expire_event(event["id"])
    assert expired.is_completed and expired.occurred_at == T0
    assert expired.version == event["version"] + 1
    with pytest.raises(Conflict) as caught:
        client.expire_event(event["id"])
    assert caught.value.operation == "ExpireEvent" and "already completed" in str(caught.value)
    with pytest.raises(NotFound):
        client.expire_event("no-such-event")


def test_get_effect_execute_effect_and_the_idempotency_check(client, reference_api):
    world = reference_api.make_world(settlements=1, settlement_variables={"food": 1})
    settlement = world["settlements"][0]
    made = reference_api.make_effect("Settlement", settlement["id"],
                                     [{"op": "replace", "path": "/variables/food", "value": 9}])
    effect = client.get_effect(made["id"])
    assert isinstance(effect, Effect) and effect.executions == ()
    assert effect.payload == [{"op": "replace", "path": "/variables/food", "value": 9}]
    assert effect.entity_type == "Settlement" and effect.timing == "ON_RESOLVE"
    assert client.get_effect("no-such-effect") is None

    dry = client.execute_effect(made["id"], context={"schedulerJobId": "job-dry"}, dry_run=True)
    assert dry.success and dry.execution_id is None
    result = client.execute_effect(made["id"], context={"schedulerJobId": "job-1"})
    assert result.success and result.execution_id and result.error is None
    assert result.affected_fields == ("/variables/food",)
    assert client.settlement(settlement["id"]).variables["food"] == 9

    fresh = client.get_effect(made["id"], use_cache=False)
    execution = fresh.execution_for_job("job-1")
    assert execution is not None and execution.id == result.execution_id
    assert execution.context == {"schedulerJobId": "job-1"} and execution.executed_at.tzinfo
    assert fresh.execution_for_job("job-dry") is None


def test_a_cached_effect_is_dropped_when_the_client_executes_it(client, reference_api):
    world = reference_api.make_world(settlements=1)
    made = reference_api.make_effect("Settlement", world["settlements"][0]["id"],
                                     [{"op": "add", "path": "/variables/x", "value": 1}])
    assert client.get_effect(made["id"]).executions == ()
    client.execute_effect(made["id"], context={"schedulerJobId": "j"})
    assert len(client.get_effect(made["id"]).executions) == 1


def test_update_settlement_merges_variables_and_checks_the_version(client, reference_api):
    world = reference_api.make_world(settlements=1, settlement_variables={"a": 1, "b": 2})
    s = world["settlements"][0]
    updated = client.update_settlement(s["id"], expected_version=s["version"], level=3,
                                       variables={"b": 20, "c": 30}, world_time=T0)
    assert updated.level == 3 and updated.variables == {"a": 1, "b": 20, "c": 30}
    assert updated.version == s["version"] + 1
    with pytest.raises(Conflict) as caught:
        client.update_settlement(s["id"], expected_version=s["version"], variables={"a": 0})
    assert caught.value.code == "CONFLICT" and caught.value.operation == "UpdateSettlement"
    assert client.settlement(s["id"]).variables["a"] == 1
    with pytest.raises(NotFound):
        client.update_settlement("nope", expected_version=1, level=1)


def test_update_structure_merges_variables_and_checks_the_version(client, reference_api):
    world = reference_api.make_world(settlements=1, structures=1,
                                     structure_variables={"health": 50})
    st = world["structures"][0]
    updated = client.update_structure(st["id"], expected_version=st["version"],
                                      variables={"health": 75})
    assert updated.variables == {"health": 75} and updated.version == st["version"] + 1
    assert updated.level == st["level"]
    with pytest.raises(Conflict):
        client.update_structure(st["id"], expected_version=st["version"], level=2)
