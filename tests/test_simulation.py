"""The simulation engine with the settlement and structure rules, cases computed by hand.

Pure: no Redis, no API. The rules are the plugins' own (``plugins/settlements``,
``plugins/structures``), imported as installed distributions.
"""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from scheduler_service.simulation import Entity, Unit, iso, minutes_ms, simulate
from scheduler_settlements import RULES as SETTLEMENT_RULES, m
from scheduler_structures import RULES as STRUCTURE_RULES

RULES = SETTLEMENT_RULES + STRUCTURE_RULES
T = int(datetime(2026, 3, 1, 12, tzinfo=timezone.utc).timestamp() * 1000)
MIN = 60_000


def at(minutes: float) -> str:
    return iso(T + minutes_ms(minutes))


def settlement(level=1, **variables) -> Entity:
    return Entity("settlement", "s1", level, variables, version=1)


def structure(sid="t1", type="temple", level=1, **variables) -> Entity:
    return Entity("structure", sid, level, variables, version=1, type=type)


def seen_at(minutes=0, **variables):
    """Settlement variables as first seen at T + minutes (every bookkeeping set)."""
    stamp = at(minutes)
    return {"lastResourceGenerationAt": stamp, "lastPopulationGrowthAt": stamp,
            "lastLevelUpCheckAt": stamp, **variables}


def run(unit, minutes, **kw):
    return simulate(unit, RULES, T + minutes_ms(minutes), **kw)


def test_the_worked_example_of_rules_md():
    # A level-1 settlement, population 100, first seen at T; the clock moves to T + 180
    unit = Unit(settlement(population=100))
    first = run(unit, 0)
    assert first.steps == 0 and first.unit.settlement.variables["lastResourceGenerationAt"] == at(0)
    outcome = run(first.unit, 180)
    s = outcome.unit.settlement.variables
    assert s["population"] == 115                      # 100 -> 105 -> 110 -> 115
    assert s["resources"] == {"food": 30, "gold": 15, "materials": 9}
    assert outcome.occurrences == {"RESOURCE_GENERATION": 3, "POPULATION_GROWTH": 3}
    assert s["lastResourceGenerationAt"] == at(180) and s["lastLevelUpCheckAt"] == at(0)
    assert outcome.next_due_ms == T + 240 * MIN
    # the same in three advances of 60 minutes
    stepwise = first.unit
    for minutes in (60, 120, 180):
        stepwise = run(stepwise, minutes).unit
    assert stepwise.settlement.variables == s


def test_first_sight_applies_nothing_retroactively():
    outcome = run(Unit(settlement(population=100, resources={"gold": 1})), 10_000)
    assert outcome.steps == 0
    assert outcome.unit.settlement.variables["population"] == 100
    assert set(outcome.changes["s1"]["variables"]) == {
        "lastResourceGenerationAt", "lastPopulationGrowthAt", "lastLevelUpCheckAt"}


def test_level_multipliers_shorten_the_intervals():
    assert [m(level) for level in (1, 2, 3, 4, 5, 6, 0)] == [1.0, 0.9, 0.8, 0.7, 0.6, 1.0, 1.0]
    # level 4: resources every 42 minutes, population every 42, level check every 252
    unit = Unit(settlement(level=4, population=100, **seen_at()))
    outcome = run(unit, 126)
    assert outcome.occurrences == {"RESOURCE_GENERATION": 3, "POPULATION_GROWTH": 3}
    assert outcome.next_due_ms == T + 168 * MIN
    # 360 x 0.7 minutes is exactly 15,120,000 ms
    assert minutes_ms(360 * 0.7) == 15_120_000


def test_population_stops_at_its_cap():
    unit = Unit(settlement(population=990, populationCap=1000, **seen_at()))
    outcome = run(unit, 120)
    # 990 -> floor(1039.5) capped 1000 -> 1000
    assert outcome.unit.settlement.variables["population"] == 1000


def test_level_up_waits_for_its_required_structure_then_happens():
    variables = seen_at(population=1000, requiredStructuresForLevelUp=["temple"],
                        populationGrowthRate=0)
    # Given a temple still being built, done at T + 400
    temple = structure(constructionDurationMinutes=400, constructionStartedAt=at(0),
                       isOperational=False, maintenanceCost={})
    unit = Unit(settlement(**variables), [temple])
    # At T + 360 the level check finds no operational temple: level stays 1
    before = run(unit, 360)
    assert before.unit.settlement.level == 1
    assert before.unit.settlement.variables["lastLevelUpCheckAt"] == at(360)
    # The temple completes at T + 400; the next check at T + 720 levels up
    after = run(before.unit, 720)
    assert after.unit.structures[0].variables["constructionCompletedAt"] == at(400)
    assert after.unit.settlement.level == 2
    assert after.changes["s1"]["level"] == 2
    assert after.unit.settlement.variables["lastLevelUpCheckAt"] == at(720)
    # and level 2 shortens the next check to 360 x 0.9 = 324 minutes
    not_yet = run(after.unit, 720 + 323)
    assert not_yet.unit.settlement.variables["lastLevelUpCheckAt"] == at(720)
    assert run(after.unit, 720 + 324).unit.settlement.variables["lastLevelUpCheckAt"] == at(1044)


def test_maintenance_runs_out_of_gold_and_decays_to_health_0():
    # One gold pays one maintenance; afterwards health falls 20 per 120 minutes
    unit = Unit(settlement(resources={"gold": 1}, resourceTypes=[], **seen_at()),
                [structure(health=70, lastMaintenanceAt=at(0), lastUpgradeCheckAt=at(0))])
    outcome = run(unit, 120 * 6)
    s, t = outcome.unit.settlement.variables, outcome.unit.structures[0].variables
    # T+120 pays (70 -> 80, gold 0); T+240..T+720 decays 80 -> 60 -> 40 -> 20 -> 0, then stops
    assert s["resources"] == {"gold": 0}
    assert t["health"] == 0 and t["isOperational"] is False
    assert outcome.occurrences["MAINTENANCE_DUE"] == 5
    assert t["lastMaintenanceAt"] == at(600)


def test_construction_completes_retroactively_and_starts_its_cadences_then():
    temple = structure(constructionDurationMinutes=90, constructionStartedAt=at(0),
                       isOperational=False)
    unit = Unit(settlement(resources={"gold": 5}, resourceTypes=[], **seen_at()), [temple])
    outcome = run(unit, 300)
    t = outcome.unit.structures[0].variables
    assert t["isOperational"] is True and t["constructionCompletedAt"] == at(90)
    # maintenance from T+90: at T+210 only (the next, T+330, is after the clock)
    assert t["lastMaintenanceAt"] == at(210) and t["health"] == 100
    assert outcome.unit.settlement.variables["resources"] == {"gold": 4}
    assert t["lastUpgradeCheckAt"] == at(90)   # upgrade checks from T+90, next at T+450


def test_upgrade_availability_follows_the_settlements_resources():
    rich = Unit(settlement(resources={"materials": 50}, resourceTypes=[], **seen_at()),
                [structure(requiredResourcesForUpgrade={"materials": 40}, maintenanceCost={},
                           lastMaintenanceAt=at(0), lastUpgradeCheckAt=at(0))])
    assert run(rich, 360).unit.structures[0].variables["upgradeAvailable"] is True
    poor = Unit(settlement(resources={"materials": 10}, resourceTypes=[], **seen_at()),
                [structure(requiredResourcesForUpgrade={"materials": 40}, maintenanceCost={},
                           lastMaintenanceAt=at(0), lastUpgradeCheckAt=at(0))])
    assert run(poor, 360).unit.structures[0].variables["upgradeAvailable"] is False
    top = Unit(settlement(**seen_at()), [structure(level=5, lastUpgradeCheckAt=at(0),
                                                   lastMaintenanceAt=at(0))])
    assert "upgradeAvailable" not in run(top, 720).unit.structures[0].variables


def test_ties_go_by_rule_order_then_structure_id():
    # Maintenance of t1 and t2 both due at T+120 with gold for one: t1 (lower id) pays
    unit = Unit(settlement(resources={"gold": 1}, resourceTypes=[], **seen_at()),
                [structure("t2", health=50, lastMaintenanceAt=at(0), lastUpgradeCheckAt=at(0)),
                 structure("t1", health=50, lastMaintenanceAt=at(0), lastUpgradeCheckAt=at(0))])
    outcome = run(unit, 120)
    healths = {t.id: t.variables["health"] for t in outcome.unit.structures}
    assert healths == {"t1": 60, "t2": 30}


@pytest.mark.parametrize("variables, variable", [
    ({"population": "many"}, "population"),
    ({"populationGrowthIntervalMinutes": -5}, "populationGrowthIntervalMinutes"),
    ({"resources": [1, 2]}, "resources"),
])
def test_a_bad_variable_skips_that_rule_with_a_warning_and_the_rest_goes_on(variables, variable):
    unit = Unit(settlement(**seen_at(), **variables))
    outcome = run(unit, 120)
    assert [w["variable"] for w in outcome.warnings] == [variable]
    warning = outcome.warnings[0]
    assert warning["id"] == "s1" and warning["value"] == variables[variable]
    assert "s1" in warning["message"] and variable in warning["message"]
    assert sum(outcome.occurrences.values()) >= 2  # the other rule still ran twice


def test_a_second_run_at_the_same_clock_changes_nothing():
    unit = Unit(settlement(population=100, **seen_at()), [structure(lastMaintenanceAt=at(0),
                                                                    lastUpgradeCheckAt=at(0))])
    once = run(unit, 1000)
    twice = run(once.unit, 1000)
    assert twice.steps == 0 and twice.changes == {}


def test_max_steps_stops_early_and_a_continuation_reaches_the_same_state():
    unit = Unit(settlement(population=100, **seen_at()))
    whole = run(unit, 600)
    part = run(unit, 600, max_steps=7)
    assert not part.complete and part.steps == 7 and part.next_due_ms <= T + 600 * MIN
    rest = run(part.unit, 600)
    assert rest.complete and rest.unit.settlement.variables == whole.unit.settlement.variables


def _demo_unit():
    return Unit(settlement(level=1, population=400, resources={"gold": 3},
                           requiredStructuresForLevelUp=["market"], **seen_at()),
                [structure("t1", "market", constructionDurationMinutes=500,
                           constructionStartedAt=at(0), isOperational=False),
                 structure("t2", "temple", health=40, lastMaintenanceAt=at(0),
                           lastUpgradeCheckAt=at(0), requiredResourcesForUpgrade={"gold": 20})])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3 * 24 * 60), min_size=1, max_size=6))
def test_any_split_of_an_advance_ends_in_the_same_state(cuts):
    # Given the same unit advanced once by 3 days, and in steps at arbitrary minutes
    end = 3 * 24 * 60
    whole = run(_demo_unit(), end).unit
    unit = _demo_unit()
    for minutes in sorted(set(cuts)) + [end]:
        unit = run(unit, minutes).unit
    assert unit.settlement.variables == whole.settlement.variables
    assert unit.settlement.level == whole.settlement.level
    assert [s.variables for s in unit.structures] == [s.variables for s in whole.structures]
