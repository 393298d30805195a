"""Every query of the contract, over HTTP against the live reference API."""

from reference_fixtures import unique

T0 = "2026-03-01T12:00:00.000Z"

SETTLEMENT = "id kingdomId campaignId name level variables version"
STRUCTURE = "id settlementId campaignId type name level variables version"
EVENT = "id campaignId name eventType scheduledAt occurredAt isCompleted variables version"


def test_campaigns_lists_created_campaigns_with_their_clock(reference_api):
    with_clock = reference_api.make_campaign(world_time=T0, settings={"tz": "UTC"})
    without = reference_api.make_campaign()
    listed = reference_api.data("{ campaigns { id name currentWorldTime isActive settings } }")
    by_id = {c["id"]: c for c in listed["campaigns"]}
    assert by_id[with_clock["id"]] == {"id": with_clock["id"], "name": with_clock["name"],
                                       "currentWorldTime": T0, "isActive": True,
                                       "settings": {"tz": "UTC"}}
    assert by_id[without["id"]]["currentWorldTime"] is None


def test_campaign_and_world_time_by_id(reference_api):
    camp = reference_api.make_campaign(world_time="2026-03-01T14:30:00.5+02:00")
    data = reference_api.data(
        "query($id: ID!) { campaign(id: $id) { id currentWorldTime } "
        "getCurrentWorldTime(campaignId: $id) }", {"id": camp["id"]})
    # Always emitted in UTC with milliseconds
    assert data["campaign"]["currentWorldTime"] == "2026-03-01T12:30:00.500Z"
    assert data["getCurrentWorldTime"] == "2026-03-01T12:30:00.500Z"
    no_clock = reference_api.make_campaign()
    assert reference_api.data("query($id: ID!) { getCurrentWorldTime(campaignId: $id) }",
                              {"id": no_clock["id"]}) == {"getCurrentWorldTime": None}


def test_missing_entities_read_as_null(reference_api):
    data = reference_api.data(
        'query { campaign(id: "nope") { id } settlement(id: "nope") { id } '
        'structure(id: "nope") { id } event(id: "nope") { id } getEffect(id: "nope") { id } }')
    assert data == {"campaign": None, "settlement": None, "structure": None, "event": None,
                    "getEffect": None}


def test_queries_on_a_missing_campaign_or_settlement_are_not_found(reference_api):
    for query, path in [
        ('{ getCurrentWorldTime(campaignId: "nope") }', "getCurrentWorldTime"),
        ('{ getOverdueEvents(campaignId: "nope") { nodes { id } } }', "getOverdueEvents"),
        ('{ settlementsByCampaign(campaignId: "nope") { nodes { id } } }', "settlementsByCampaign"),
        ('{ structuresByCampaign(campaignId: "nope") { nodes { id } } }', "structuresByCampaign"),
        ('{ structuresBySettlement(settlementId: "nope") { id } }', "structuresBySettlement"),
    ]:
        body = reference_api.gql(query)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "NOT_FOUND", query
        assert error["path"] == [path]
        assert "'nope'" in error["message"]


def test_settlement_structure_and_event_by_id(reference_api):
    world = reference_api.make_world(world_time=T0, settlements=1, structures=2,
                                     settlement_variables={"population": 120},
                                     structure_variables={"health": 90})
    camp, settlement = world["campaign"], world["settlements"][0]
    event = reference_api.make_event(camp["id"], scheduled_at="2026-03-01T11:00:00Z",
                                     event_type="world", variables={"x": 1})
    data = reference_api.data(
        f"query($s: ID!, $t: ID!, $e: ID!) {{ settlement(id: $s) {{ {SETTLEMENT} }} "
        f"structure(id: $t) {{ {STRUCTURE} }} event(id: $e) {{ {EVENT} }} "
        f"structuresBySettlement(settlementId: $s) {{ id }} }}",
        {"s": settlement["id"], "t": world["structures"][0]["id"], "e": event["id"]})
    assert data["settlement"] == {
        "id": settlement["id"], "kingdomId": world["kingdom"]["id"], "campaignId": camp["id"],
        "name": settlement["name"], "level": 1, "variables": {"population": 120}, "version": 1}
    assert data["structure"]["settlementId"] == settlement["id"]
    assert data["structure"]["campaignId"] == camp["id"]
    assert data["structure"]["variables"] == {"health": 90}
    assert data["event"] == {
        "id": event["id"], "campaignId": camp["id"], "name": event["name"], "eventType": "world",
        "scheduledAt": "2026-03-01T11:00:00.000Z", "occurredAt": None, "isCompleted": False,
        "variables": {"x": 1}, "version": 1}
    assert [s["id"] for s in data["structuresBySettlement"]] == [s["id"] for s in world["structures"]]


def test_get_effect_returns_its_definition_and_executions(reference_api):
    world = reference_api.make_world()
    target = world["settlements"][0]
    patch = [{"op": "add", "path": "/variables/morale", "value": 3}]
    effect = reference_api.make_effect("Settlement", target["id"], patch, timing="POST",
                                       priority=7, name=unique("feast"))
    data = reference_api.data(
        "query($id: ID!) { getEffect(id: $id) { id name effectType payload entityType entityId "
        "timing priority isActive version executions { id } } }", {"id": effect["id"]})
    assert data["getEffect"] == {
        "id": effect["id"], "name": effect["name"], "effectType": "patch", "payload": patch,
        "entityType": "Settlement", "entityId": target["id"], "timing": "POST", "priority": 7,
        "isActive": True, "version": 1, "executions": []}
