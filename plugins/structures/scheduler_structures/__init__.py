"""The structures plugin: construction, maintenance and upgrade availability (RULES.md).

It contributes the structure rules to the core's simulation engine, the job types that run
a structure's unit, i.e. its settlement with all its structures (``STRUCTURE_MAINTENANCE``),
and place every unit's timer of a campaign (``RECALCULATE_STRUCTURE_SCHEDULES``), the
hourly sweep that enqueues the latter, and the reaction to edited structures.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scheduler_service.hookspecs import hookimpl
from scheduler_service.jobtypes import EmptyPayload, JobType, Reaction, Rule, Sweep
from scheduler_service.simulation import iso, minutes_ms
from scheduler_service.units import bring_edited_unit_up_to_date, recalculate_campaign, run_unit

DEFAULT_MAINTENANCE_COST = {"gold": 1}


def covers(resources: dict, cost: dict) -> bool:
    """Whether ``resources`` hold at least ``cost`` of every name (a missing one counts 0)."""
    return all(resources.get(name, 0) >= amount for name, amount in cost.items())


# -- 3. CONSTRUCTION_COMPLETE ---------------------------------------------------------------

def under_construction(structure, unit) -> bool:
    return (structure.number("constructionDurationMinutes", 0) > 0
            and structure.variables.get("constructionStartedAt") is not None
            and not structure.flag("isOperational", True)
            and structure.variables.get("constructionCompletedAt") is None)


def construction_due(structure, unit) -> int:
    started = structure.time("constructionStartedAt")
    return started + minutes_ms(structure.number("constructionDurationMinutes", 0))


def complete_construction(structure, unit, due_ms):
    at = iso(due_ms)
    structure.variables.update({"isOperational": True, "health": 100,
                                "constructionCompletedAt": at, "lastMaintenanceAt": at,
                                "lastUpgradeCheckAt": at})


# -- 4. MAINTENANCE_DUE ---------------------------------------------------------------------

def operational(structure, unit) -> bool:
    return structure.flag("isOperational", True)


def maintain(structure, unit, due_ms):
    settlement = unit.settlement
    cost = structure.amounts("maintenanceCost", DEFAULT_MAINTENANCE_COST)
    resources = settlement.amounts("resources")
    health = structure.number("health", 100)
    if covers(resources, cost):
        for name, amount in cost.items():
            resources[name] = resources.get(name, 0) - amount
        settlement.variables["resources"] = resources
        structure.variables["health"] = min(100, health + 10)
    else:
        structure.variables["health"] = max(0, health - 20)
        if structure.variables["health"] == 0:
            structure.variables["isOperational"] = False


# -- 5. UPGRADE_AVAILABLE -------------------------------------------------------------------

def upgradable(structure, unit) -> bool:
    return structure.flag("isOperational", True) and structure.level < structure.number("maxLevel", 5)


def check_upgrade(structure, unit, due_ms):
    needed = structure.amounts("requiredResourcesForUpgrade")
    structure.variables["upgradeAvailable"] = covers(unit.settlement.amounts("resources"), needed)


RULES = [
    Rule("CONSTRUCTION_COMPLETE", "structure", 3, "constructionCompletedAt",
         applies=under_construction, step=complete_construction, due=construction_due,
         description="Completes a structure constructionDurationMinutes after it was started."),
    Rule("MAINTENANCE_DUE", "structure", 4, "lastMaintenanceAt",
         applies=operational, step=maintain,
         interval=lambda s, u: s.number("maintenanceIntervalMinutes", 120, positive=True),
         description="Pays maintenanceCost from the settlement (health +10) or decays (health -20)."),
    Rule("UPGRADE_AVAILABLE", "structure", 5, "lastUpgradeCheckAt",
         applies=upgradable, step=check_upgrade, interval=lambda s, u: 360,
         description="Flags upgradeAvailable when the settlement holds requiredResourcesForUpgrade."),
]


class StructurePayload(BaseModel):
    """The structure whose unit (its settlement with all its structures) is brought up to date."""

    model_config = ConfigDict(extra="forbid")
    structureId: str = Field(min_length=1, max_length=128, description="Id in the main API.")


def structure_maintenance(ctx) -> dict:
    structure = ctx.api.structure(ctx.payload.structureId)
    if structure is None:
        return {"outcome": "skipped", "reason": f"structure {ctx.payload.structureId} does not exist"}
    return run_unit(ctx, structure.settlement_id)


def on_structure_modified(message: dict, ctx) -> None:
    """Someone edited a structure: bring its unit up to date. (A deleted structure's unit
    is corrected when its timer next fires, or by the hourly recalculation.)"""
    if message["entityType"] != "Structure" or message["operation"] == "DELETE":
        return
    bring_edited_unit_up_to_date(ctx, message["entityId"], "STRUCTURE_MAINTENANCE",
                                 {"structureId": message["entityId"]})


@hookimpl
def register_rules():
    return RULES


@hookimpl
def register_job_types():
    return [
        JobType("STRUCTURE_MAINTENANCE", structure_maintenance, StructurePayload,
                "Brings a structure's settlement with all its structures up to the campaign clock, "
                "writes them back and places the unit's next timer.", priority=5,
                time_limit_ms=120_000),
        JobType("RECALCULATE_STRUCTURE_SCHEDULES", recalculate_campaign, EmptyPayload,
                "Places the next timer of every unit of a campaign (SYSTEM: of every campaign); "
                "units with something due run at once.", priority=3, time_limit_ms=1_800_000),
    ]


@hookimpl
def register_sweeps():
    return [Sweep("structure-maintenance", "RECALCULATE_STRUCTURE_SCHEDULES", "0 * * * *",
                  "CRON_STRUCTURE_MAINTENANCE",
                  "Re-places every unit's timer for the structure rules (the slow path).",
                  run_on_first_start=True)]


@hookimpl
def register_reactions():
    return [Reaction("structure-modified", "entityModified", on_structure_modified,
                     "Brings an edited structure's unit up to date.")]
