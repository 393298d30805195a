"""Every mutation of the contract: optimistic locking, expiry, effects, world time, creates."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

T0 = "2026-03-01T12:00:00.000Z"

UPDATE_SETTLEMENT = """
mutation($id: ID!, $i: UpdateSettlementInput!) {
  updateSettlement(id: $id, input: $i) { id level variables version }
}"""
UPDATE_STRUCTURE = """
mutation($id: ID!, $i: UpdateStructureInput!) {
  updateStructure(id: $id, input: $i) { id level variables version }
}"""
EXPIRE = "mutation($id: ID!) { expireEvent(eventId: $id) { id isCompleted occurredAt version } }"
EXECUTE = """
mutation($i: ExecuteEffectInput!) {
  executeEffect(input: $i) { success patchApplied error executionId affectedFields }
}"""
EXECUTIONS = """
query($id: ID!) {
  getEffect(id: $id) { executions { id effectId executedAt executedBy context result error } }
}"""


def _code(body):
    (error,) = body["errors"]
    return error["extensions"]["code"]


@pytest.mark.parametrize("mutation, key", [(UPDATE_SETTLEMENT, "settlement"),
                                           (UPDATE_STRUCTURE, "structure")])
def test_update_merges_variables_and_bumps_the_version(reference_api, mutation, key):
    world = reference_api.make_world(
        settlements=1, structures=1,
        settlement_variables={"population": 100, "resources": {"gold": 5}, "keep": True},
        structure_variables={"population": 100, "resources": {"gold": 5}, "keep": True})
    entity = world["settlements"][0] if key == "settlement" else world["structures"][0]
    name = "updateSettlement" if key == "settlement" else "updateStructure"

    first = reference_api.data(mutation, {"id": entity["id"], "i": {
        "expectedVersion": 1, "variables": {"population": 150, "resources": {"gold": 7}},
        "level": 2, "worldTime": T0, "branchId": "main"}})[name]
    # Key by key: a top-level key is replaced whole, untouched keys stay
    assert first == {"id": entity["id"], "level": 2, "version": 2,
                     "variables": {"population": 150, "resources": {"gold": 7}, "keep": True}}

    second = reference_api.data(mutation, {"id": entity["id"], "i": {"expectedVersion": 2}})[name]
    assert second["version"] == 3 and second["level"] == 2
    assert second["variables"] == first["variables"]


@pytest.mark.parametrize("mutation", [UPDATE_SETTLEMENT, UPDATE_STRUCTURE])
def test_stale_expected_version_is_a_conflict_and_changes_nothing(reference_api, mutation):
    world = reference_api.make_world(settlements=1, structures=1,
                                     settlement_variables={"a": 1}, structure_variables={"a": 1})
    is_settlement = mutation is UPDATE_SETTLEMENT
    entity = world["settlements"][0] if is_settlement else world["structures"][0]
    reference_api.data(mutation, {"id": entity["id"], "i": {"expectedVersion": 1,
                                                           "variables": {"a": 2}}})
    # Given a writer that still holds version 1
    body = reference_api.gql(mutation, {"id": entity["id"], "i": {"expectedVersion": 1,
                                                                 "variables": {"a": 3}}})
    assert _code(body) == "CONFLICT"
    assert "version 2" in body["errors"][0]["message"]
    assert body["data"] is None
    read = reference_api.data(
        "query($id: ID!) { settlement(id: $id) { variables version } "
        "structure(id: $id) { variables version } }", {"id": entity["id"]})
    assert (read["settlement"] or read["structure"]) == {"variables": {"a": 2}, "version": 2}


def test_update_of_a_missing_entity_is_not_found(reference_api):
    for mutation in (UPDATE_SETTLEMENT, UPDATE_STRUCTURE):
        body = reference_api.gql(mutation, {"id": "missing", "i": {"expectedVersion": 1}})
        assert _code(body) == "NOT_FOUND"


def test_update_with_non_object_variables_names_the_field(reference_api):
    settlement = reference_api.make_world()["settlements"][0]
    body = reference_api.gql(UPDATE_SETTLEMENT, {"id": settlement["id"], "i": {
        "expectedVersion": 1, "variables": [1, 2]}})
    assert _code(body) == "BAD_USER_INPUT"
    assert "input.variables" in body["errors"][0]["message"]


def test_expire_event_uses_world_time_then_conflicts(reference_api):
    camp = reference_api.make_campaign(world_time=T0)
    event = reference_api.make_event(camp["id"], scheduled_at="2026-03-01T10:00:00.000Z")
    expired = reference_api.data(EXPIRE, {"id": event["id"]})["expireEvent"]
    assert expired == {"id": event["id"], "isCompleted": True, "occurredAt": T0, "version": 2}
    body = reference_api.gql(EXPIRE, {"id": event["id"]})
    assert _code(body) == "CONFLICT"
    assert "already completed" in body["errors"][0]["message"]


def test_expire_event_without_world_clock_uses_now(reference_api):
    camp = reference_api.make_campaign()
    event = reference_api.make_event(camp["id"])
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    expired = reference_api.data(EXPIRE, {"id": event["id"]})["expireEvent"]
    occurred = datetime.fromisoformat(expired["occurredAt"])
    assert expired["occurredAt"].endswith("Z")
    assert before <= occurred <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert _code(reference_api.gql(EXPIRE, {"id": "missing"})) == "NOT_FOUND"


def test_execute_effect_applies_the_patch_and_records_the_context(reference_api):
    world = reference_api.make_world(settlement_variables={"resources": {"food": 5}, "a": 1})
    settlement = world["settlements"][0]
    patch = [{"op": "replace", "path": "/variables/resources/food", "value": 60},
             {"op": "add", "path": "/variables/morale", "value": 10},
             {"op": "remove", "path": "/variables/a"},
             {"op": "replace", "path": "/level", "value": 2}]
    effect = reference_api.make_effect("Settlement", settlement["id"], patch)

    result = reference_api.data(EXECUTE, {"i": {"effectId": effect["id"],
                                                "context": {"schedulerJobId": "job-1"}}})
    outcome = result["executeEffect"]
    assert outcome["success"] is True and outcome["error"] is None
    assert outcome["patchApplied"] == patch
    assert outcome["affectedFields"] == ["/variables/resources/food", "/variables/morale",
                                         "/variables/a", "/level"]
    after = reference_api.data("query($id: ID!) { settlement(id: $id) { level variables version } }",
                               {"id": settlement["id"]})["settlement"]
    assert after == {"level": 2, "version": 2,
                     "variables": {"resources": {"food": 60}, "morale": 10}}

    (execution,) = reference_api.data(EXECUTIONS, {"id": effect["id"]})["getEffect"]["executions"]
    assert execution["id"] == outcome["executionId"]
    assert execution["effectId"] == effect["id"]
    assert execution["context"] == {"schedulerJobId": "job-1"}
    assert execution["executedBy"] == "service-account"
    assert execution["executedAt"].endswith("Z") and execution["error"] is None
    assert execution["result"]["patchApplied"] == patch


def test_dry_run_records_and_changes_nothing(reference_api):
    settlement = reference_api.make_world(settlement_variables={"a": 1})["settlements"][0]
    effect = reference_api.make_effect("Settlement", settlement["id"],
                                       [{"op": "replace", "path": "/variables/a", "value": 2}])
    outcome = reference_api.data(EXECUTE, {"i": {"effectId": effect["id"], "dryRun": True,
                                                 "context": {"schedulerJobId": "dry"}}})
    assert outcome["executeEffect"] == {"success": True, "error": None, "executionId": None,
                                        "patchApplied": [{"op": "replace", "path": "/variables/a",
                                                          "value": 2}],
                                        "affectedFields": ["/variables/a"]}
    assert reference_api.data(EXECUTIONS, {"id": effect["id"]})["getEffect"]["executions"] == []
    read = reference_api.data("query($id: ID!) { settlement(id: $id) { variables version } }",
                              {"id": settlement["id"]})
    assert read["settlement"] == {"variables": {"a": 1}, "version": 1}


def test_effect_on_a_structure_and_a_failing_patch(reference_api):
    structure = reference_api.make_world(structures=1,
                                         structure_variables={"health": 40})["structures"][0]
    heal = reference_api.make_effect("Structure", structure["id"],
                                     [{"op": "replace", "path": "/variables/health", "value": 100}])
    assert reference_api.data(EXECUTE, {"i": {"effectId": heal["id"]}})["executeEffect"]["success"]
    read = reference_api.data("query($id: ID!) { structure(id: $id) { variables version } }",
                              {"id": structure["id"]})["structure"]
    assert read == {"variables": {"health": 100}, "version": 2}

    broken = reference_api.make_effect("Structure", structure["id"],
                                       [{"op": "remove", "path": "/variables/missing"}])
    outcome = reference_api.data(EXECUTE, {"i": {"effectId": broken["id"],
                                                 "context": {"schedulerJobId": "j"}}})
    assert outcome["executeEffect"]["success"] is False
    assert "'missing' does not exist" in outcome["executeEffect"]["error"]
    # The failed attempt is recorded with its context; the target is unchanged
    (execution,) = reference_api.data(EXECUTIONS, {"id": broken["id"]})["getEffect"]["executions"]
    assert execution["context"] == {"schedulerJobId": "j"} and execution["error"]
    assert reference_api.data("query($id: ID!) { structure(id: $id) { version } }",
                              {"id": structure["id"]})["structure"]["version"] == 2


def test_inactive_effect_is_not_applied_and_missing_effect_is_not_found(reference_api):
    settlement = reference_api.make_world(settlement_variables={"a": 1})["settlements"][0]
    effect = reference_api.make_effect("Settlement", settlement["id"],
                                       [{"op": "replace", "path": "/variables/a", "value": 2}],
                                       is_active=False)
    outcome = reference_api.data(EXECUTE, {"i": {"effectId": effect["id"]}})["executeEffect"]
    assert outcome["success"] is False and "inactive" in outcome["error"]
    assert _code(reference_api.gql(EXECUTE, {"i": {"effectId": "missing"}})) == "NOT_FOUND"


def test_advance_world_time_forward_and_never_backwards(reference_api):
    camp = reference_api.make_campaign(world_time=T0)
    reference_api.make_event(camp["id"], scheduled_at="2026-03-01T13:00:00Z")
    reference_api.make_event(camp["id"], scheduled_at="2026-03-05T00:00:00Z")
    result = reference_api.advance(camp["id"], "2026-03-02T12:00:00Z")
    assert result["campaignId"] == camp["id"]
    assert result["previousWorldTime"] == T0
    assert result["currentWorldTime"] == "2026-03-02T12:00:00.000Z"
    assert result["affectedEntities"] == 1
    assert result["message"]

    body = reference_api.gql(
        "mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) { campaignId } }",
        {"i": {"campaignId": camp["id"], "to": "2026-03-02T11:59:59.999Z"}})
    assert _code(body) == "BAD_USER_INPUT"
    assert "backwards" in body["errors"][0]["message"] and "input.to" in body["errors"][0]["message"]
    assert reference_api.data("query($id: ID!) { getCurrentWorldTime(campaignId: $id) }",
                              {"id": camp["id"]})["getCurrentWorldTime"] == "2026-03-02T12:00:00.000Z"


def test_advance_world_time_starts_a_missing_clock(reference_api):
    camp = reference_api.make_campaign()
    result = reference_api.advance(camp["id"], datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert result["previousWorldTime"] is None
    assert result["currentWorldTime"] == "2026-01-01T00:00:00.000Z"


def test_creates_accept_upstream_extra_fields_and_apply_defaults(reference_api):
    data = reference_api.data(
        'mutation { createCampaign(input: {name: "c", worldId: "w1"}) { id currentWorldTime settings } }')
    camp = data["createCampaign"]
    assert camp["currentWorldTime"] is None and camp["settings"] is None
    kingdom = reference_api.data(
        "mutation($c: ID!) { createKingdom(input: {campaignId: $c, name: \"k\"}) "
        "{ campaignId level variables version } }", {"c": camp["id"]})["createKingdom"]
    assert kingdom == {"campaignId": camp["id"], "level": 1, "variables": {}, "version": 1}
    effect = reference_api.make_effect("Kingdom", reference_api.make_kingdom(camp["id"])["id"],
                                       {"kind": "narrative"}, effect_type="note")
    assert (effect["timing"], effect["priority"], effect["isActive"]) == ("ON_RESOLVE", 0, True)


@pytest.mark.parametrize("query, variables, code, words", [
    ('mutation { createCampaign(input: {name: "  "}) { id } }', None, "BAD_USER_INPUT", "input.name"),
    ("mutation { createKingdom(input: {campaignId: \"nope\", name: \"k\"}) { id } }", None,
     "NOT_FOUND", "input.campaignId"),
    ("mutation { createSettlement(input: {kingdomId: \"nope\", name: \"s\"}) { id } }", None,
     "NOT_FOUND", "input.kingdomId"),
    ("mutation { createStructure(input: {settlementId: \"nope\", type: \"t\", name: \"s\"}) { id } }",
     None, "NOT_FOUND", "input.settlementId"),
    ("mutation { createEvent(input: {campaignId: \"nope\", name: \"e\", eventType: \"story\"}) { id } }",
     None, "NOT_FOUND", "input.campaignId"),
    ("mutation($i: CreateEffectInput!) { createEffect(input: $i) { id } }",
     {"i": {"name": "e", "effectType": "patch", "payload": [], "entityType": "Planet",
            "entityId": "x"}}, "BAD_USER_INPUT", "input.entityType"),
    ("mutation($i: CreateEffectInput!) { createEffect(input: $i) { id } }",
     {"i": {"name": "e", "effectType": "patch", "payload": [{"op": "jump", "path": "/x"}],
            "entityType": "Settlement", "entityId": "x"}}, "BAD_USER_INPUT", "input.payload"),
    ("mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
     {"i": {"name": "c", "currentWorldTime": "2026-03-01T12:00:00"}}, "BAD_USER_INPUT", "offset"),
    ("mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
     {"i": {"name": "c", "currentWorldTime": "yesterday"}}, "BAD_USER_INPUT", "currentWorldTime"),
    ('mutation { createKingdom(input: {name: "k"}) { id } }', None, "BAD_USER_INPUT", "campaignId"),
    ("{ campaigns { nope } }", None, "BAD_USER_INPUT", "nope"),
    ("{ campaigns { id }", None, "BAD_USER_INPUT", "Syntax Error"),
])
def test_bad_input_gets_a_clear_error_naming_the_field(reference_api, query, variables, code, words):
    body = reference_api.gql(query, variables)
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert words in body["errors"][0]["message"], body


def test_malformed_http_bodies_are_400(reference_api):
    response = reference_api.session.post(reference_api.url, data=b"not json",
                                          headers={"x-api-key": reference_api.key,
                                                   "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = reference_api.post("{ campaigns { id } }", variables=[1])
    assert response.status_code == 400 and "variables" in response.json()["errors"][0]["message"]


def test_concurrent_writers_with_the_same_version_one_wins(reference_api):
    settlement = reference_api.make_world(settlement_variables={"n": 0})["settlements"][0]

    def write(i):
        # A connection of its own per thread, as separate scheduler workers would have
        return requests.post(reference_api.url, timeout=30, headers={"x-api-key": reference_api.key},
                             json={"query": UPDATE_SETTLEMENT, "variables": {
                                 "id": settlement["id"],
                                 "i": {"expectedVersion": 1, "variables": {"n": i}}}}).json()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(write, range(8)))
    winners = [b for b in bodies if not b.get("errors")]
    assert len(winners) == 1
    assert all(_code(b) == "CONFLICT" for b in bodies if b.get("errors"))
    read = reference_api.data("query($id: ID!) { settlement(id: $id) { variables version } }",
                              {"id": settlement["id"]})["settlement"]
    assert read == {"variables": winners[0]["data"]["updateSettlement"]["variables"], "version": 2}
