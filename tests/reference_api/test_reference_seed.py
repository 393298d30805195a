"""The demo seed: what it contains, and that seeding twice changes nothing."""

import sqlite3
from datetime import datetime, timedelta

from scheduler_service.reference_api.seed import (DEMO_CAMPAIGN_WALL_CLOCK,
                                                  DEMO_CAMPAIGN_WITH_CLOCK)

WORLD = """
query($c: ID!) {
  settlementsByCampaign(campaignId: $c, first: 500) {
    nodes { id name level variables }
  }
  structuresByCampaign(campaignId: $c, first: 500) {
    nodes { id settlementId type level variables }
  }
  getOverdueEvents(campaignId: $c) { nodes { name scheduledAt } }
}"""

SETTLEMENT_VARIABLES = {"population", "populationCap", "populationGrowthRate", "resources",
                        "resourceTypes", "generationRates", "maxLevel",
                        "requiredStructuresForLevelUp"}


def test_demo_seed_contents_and_idempotence(spawn_reference_api, tmp_path):
    # Given a server started on an empty database with the demo seed
    api = spawn_reference_api("--seed", "demo", folder=tmp_path / "demo")
    campaigns = api.data("{ campaigns { id name currentWorldTime isActive } }")["campaigns"]

    # Then there are two campaigns, one with a world clock and one without
    by_name = {c["name"]: c for c in campaigns}
    assert set(by_name) == {DEMO_CAMPAIGN_WITH_CLOCK, DEMO_CAMPAIGN_WALL_CLOCK}
    clock = by_name[DEMO_CAMPAIGN_WITH_CLOCK]
    assert clock["currentWorldTime"] == "2026-03-01T12:00:00.000Z"
    assert by_name[DEMO_CAMPAIGN_WALL_CLOCK]["currentWorldTime"] is None

    world = api.data(WORLD, {"c": clock["id"]})
    settlements = world["settlementsByCampaign"]["nodes"]
    structures = world["structuresByCampaign"]["nodes"]
    # Settlements carry the typed variables of the rules
    assert len(settlements) >= 3
    for settlement in settlements:
        assert SETTLEMENT_VARIABLES <= set(settlement["variables"]), settlement["name"]
        assert isinstance(settlement["variables"]["population"], int)
    # At least one structure is under construction, with what the construction rule reads
    building = [s for s in structures if s["variables"].get("isOperational") is False]
    assert building
    for s in building:
        assert s["variables"]["constructionDurationMinutes"] > 0
        started = datetime.fromisoformat(s["variables"]["constructionStartedAt"])
        assert started <= datetime.fromisoformat(clock["currentWorldTime"])
    assert {"temple", "barracks", "market", "library"} <= {s["type"] for s in structures}
    # Some events are overdue relative to the campaign clock, oldest first
    overdue = world["getOverdueEvents"]["nodes"]
    assert len(overdue) >= 2
    assert [e["scheduledAt"] for e in overdue] == sorted(e["scheduledAt"] for e in overdue)
    now = datetime.fromisoformat(clock["currentWorldTime"])
    assert all(datetime.fromisoformat(e["scheduledAt"]) < now - timedelta(minutes=5)
               for e in overdue)

    # The wall-clock campaign has settlements too, and no overdue events (no world time)
    other = api.data(WORLD, {"c": by_name[DEMO_CAMPAIGN_WALL_CLOCK]["id"]})
    assert other["settlementsByCampaign"]["nodes"]
    assert other["getOverdueEvents"]["nodes"] == []

    # Effects carry JSON-Patch payloads that apply to their targets (the contract has no
    # query listing effects, so their ids are read from the server's database file)
    with sqlite3.connect(f"file:{api.db_path}?mode=ro", uri=True) as db:
        effect_ids = [row[0] for row in db.execute("SELECT id FROM effects")]
    db.close()
    assert len(effect_ids) >= 3
    targets = set()
    for effect_id in effect_ids:
        effect = api.data("query($id: ID!) { getEffect(id: $id) { payload entityType } }",
                          {"id": effect_id})["getEffect"]
        assert isinstance(effect["payload"], list) and effect["payload"]
        assert all(op["path"].startswith("/variables/") for op in effect["payload"])
        targets.add(effect["entityType"])
        dry = api.data("mutation($id: ID!) { executeEffect(input: {effectId: $id, dryRun: true}) "
                       "{ success error } }", {"id": effect_id})["executeEffect"]
        assert dry == {"success": True, "error": None}
    assert targets == {"Settlement", "Structure"}

    # When the same database is served again with the demo seed
    first_ids = sorted(c["id"] for c in campaigns)
    api.process.terminate()
    api.process.wait(20)
    again = spawn_reference_api("--seed", "demo", folder=tmp_path / "demo")
    # Then nothing was added
    assert sorted(c["id"] for c in again.data("{ campaigns { id } }")["campaigns"]) == first_ids
