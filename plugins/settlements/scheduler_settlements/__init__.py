"""The settlements plugin: resource generation, population growth and level-ups (RULES.md).

It contributes the settlement rules to the core's simulation engine, the job types that
run a settlement's unit (``SETTLEMENT_GROWTH``) and place every unit's timer of a campaign
(``RECALCULATE_SETTLEMENT_SCHEDULES``), the hourly sweep that enqueues the latter, and the
reaction that brings a settlement up to date when someone edits it.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from scheduler_service.hookspecs import hookimpl
from scheduler_service.jobtypes import EmptyPayload, JobType, Reaction, Rule, Sweep
from scheduler_service.simulation import BadVariable
from scheduler_service.units import (
    bring_edited_unit_up_to_date,
    recalculate_campaign,
    run_unit,
    unit_key,
)

#: Level multiplier m(level) of the intervals.
MULTIPLIERS = {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.7, 5: 0.6}
DEFAULT_RESOURCE_TYPES = ("food", "gold", "materials")
DEFAULT_RATES = {"food": 10, "gold": 5, "materials": 3}


def m(level) -> float:
    """The level multiplier: 1 -> 1.0 ... 5 -> 0.6, any other level 1.0."""
    return MULTIPLIERS.get(level, 1.0)


def _interval(variable: str, base: float):
    def interval(settlement, unit):
        override = settlement.number(variable, None, positive=True)
        return override if override is not None else base * m(settlement.level)

    return interval


# -- 1. RESOURCE_GENERATION -----------------------------------------------------------------

def generate_resources(settlement, unit, due_ms):
    types = settlement.names("resourceTypes", DEFAULT_RESOURCE_TYPES)
    rates = settlement.amounts("generationRates", DEFAULT_RATES)
    for name, rate in rates.items():
        if rate != int(rate):
            raise BadVariable("generationRates", rates, "must be whole numbers per name", settlement)
    resources = settlement.amounts("resources")
    for name in types:
        resources[name] = resources.get(name, 0) + int(rates.get(name, 0))
    settlement.variables["resources"] = resources


# -- 2. POPULATION_GROWTH -------------------------------------------------------------------

def grow_population(settlement, unit, due_ms):
    population = settlement.integer("population", 100, minimum=0)
    cap = settlement.number("populationCap", 1000, minimum=0)
    rate = settlement.number("populationGrowthRate", 0.05, minimum=-1)
    settlement.variables["population"] = int(min(cap, math.floor(population * (1 + rate))))


# -- 6. LEVEL_UP_CHECK ----------------------------------------------------------------------

def below_max_level(settlement, unit) -> bool:
    return settlement.level < settlement.number("maxLevel", 5)


def check_level_up(settlement, unit, due_ms):
    population = settlement.integer("population", 100, minimum=0)
    required = settlement.names("requiredStructuresForLevelUp", ())
    operational = {s.type for s in unit.structures if s.flag("isOperational", True)}
    if population >= (settlement.level + 1) * 500 and all(t in operational for t in required):
        settlement.level += 1


RULES = [
    Rule("RESOURCE_GENERATION", "settlement", 1, "lastResourceGenerationAt",
         applies=lambda s, u: True, step=generate_resources,
         interval=_interval("resourceGenerationIntervalMinutes", 60),
         description="Adds generationRates to resources for each of resourceTypes."),
    Rule("POPULATION_GROWTH", "settlement", 2, "lastPopulationGrowthAt",
         applies=lambda s, u: True, step=grow_population,
         interval=_interval("populationGrowthIntervalMinutes", 60),
         description="population = min(populationCap, floor(population * (1 + rate)))."),
    Rule("LEVEL_UP_CHECK", "settlement", 6, "lastLevelUpCheckAt",
         applies=below_max_level, step=check_level_up,
         interval=lambda s, u: 360 * m(s.level),
         description="Levels up at (level + 1) * 500 population with the required structures."),
]


class SettlementPayload(BaseModel):
    """The settlement whose unit (it and its structures) is brought up to its clock."""

    model_config = ConfigDict(extra="forbid")
    settlementId: str = Field(min_length=1, max_length=128, description="Id in the main API.")


def settlement_growth(ctx) -> dict:
    return run_unit(ctx, ctx.payload.settlementId)


def on_settlement_modified(message: dict, ctx) -> None:
    """Someone edited a settlement: bring its unit up to date and re-place its timer;
    a deleted one loses its timer. Our own writes are ignored."""
    if message["entityType"] != "Settlement":
        return
    settlement_id = message["entityId"]
    if message["operation"] == "DELETE":
        ctx.clear_timer(unit_key(settlement_id))
        return
    bring_edited_unit_up_to_date(ctx, settlement_id, "SETTLEMENT_GROWTH",
                                 {"settlementId": settlement_id})


@hookimpl
def register_rules():
    return RULES


@hookimpl
def register_job_types():
    return [
        JobType("SETTLEMENT_GROWTH", settlement_growth, SettlementPayload,
                "Brings a settlement and its structures up to the campaign clock (every settlement "
                "and structure rule), writes them back and places the unit's next timer.",
                priority=5, time_limit_ms=120_000),
        JobType("RECALCULATE_SETTLEMENT_SCHEDULES", recalculate_campaign, EmptyPayload,
                "Places the next timer of every settlement unit of a campaign (SYSTEM: of every "
                "campaign); units with something due run at once.", priority=3,
                time_limit_ms=1_800_000),
    ]


@hookimpl
def register_sweeps():
    return [Sweep("settlement-growth", "RECALCULATE_SETTLEMENT_SCHEDULES", "0 * * * *",
                  "CRON_SETTLEMENT_GROWTH",
                  "Re-places every settlement unit's timer (the slow path behind the timers "
                  "and the entityModified reaction).",
                  run_on_first_start=True)]


@hookimpl
def register_reactions():
    return [Reaction("settlement-modified", "entityModified", on_settlement_modified,
                     "Brings an edited settlement's unit up to date; a deleted one loses its timer.")]
