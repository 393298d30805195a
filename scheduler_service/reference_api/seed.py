"""Seed data: the ``demo`` world, or nothing.

The demo has two campaigns: one with a world clock (its events partly overdue, its
structures partly under construction) and one that runs on the wall clock. Settlements and
structures carry the typed variables the settlement and structure rules read, and the effects
carry JSON-Patch payloads. Seeding is idempotent: a database that already has campaigns is
left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from .scalars import format_datetime, now_ms, to_ms
from .storage import Store

logger = logging.getLogger(__name__)

SEEDS = ("demo", "none")

#: World time of the demo campaign that has a world clock.
DEMO_WORLD_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
#: Names of the demo campaigns.
DEMO_CAMPAIGN_WITH_CLOCK = "Demo: The Northern Reaches"
DEMO_CAMPAIGN_WALL_CLOCK = "Demo: Border Skirmishes"


def _at(clock: datetime, **delta) -> str:
    return format_datetime(clock + timedelta(**delta))


def _ms(clock: datetime, **delta) -> int:
    return to_ms(clock + timedelta(**delta))


def _settlement_variables(clock: datetime, population: int, *, bookkeeping: bool, **extra) -> dict:
    variables = {
        "population": population,
        "populationCap": 2000,
        "populationGrowthRate": 0.05,
        "resources": {"food": 120, "gold": 40, "materials": 25},
        "resourceTypes": ["food", "gold", "materials"],
        "generationRates": {"food": 10, "gold": 5, "materials": 3},
        "maxLevel": 5,
        "requiredStructuresForLevelUp": ["temple"],
    }
    if bookkeeping:
        # Seen by the scheduler three hours ago: growth is due at once.
        for name in ("lastResourceGenerationAt", "lastPopulationGrowthAt", "lastLevelUpCheckAt"):
            variables[name] = _at(clock, hours=-3)
    variables.update(extra)
    return variables


def _operational(clock: datetime, **extra) -> dict:
    variables = {
        "isOperational": True,
        "health": 100,
        "maintenanceCost": {"gold": 2},
        "maintenanceIntervalMinutes": 120,
        "lastMaintenanceAt": _at(clock, hours=-3),
        "lastUpgradeCheckAt": _at(clock, hours=-3),
        "maxLevel": 3,
        "requiredResourcesForUpgrade": {"gold": 100, "materials": 50},
    }
    variables.update(extra)
    return variables


def _under_construction(clock: datetime, started_hours_ago: int, duration_minutes: int) -> dict:
    return {
        "isOperational": False,
        "constructionStartedAt": _at(clock, hours=-started_hours_ago),
        "constructionDurationMinutes": duration_minutes,
        "maintenanceCost": {"gold": 1},
        "maxLevel": 3,
    }


def _seed_campaign(store: Store, name: str, clock: datetime, *, world_clock: bool,
                   kingdoms: dict[str, list[str]]) -> dict:
    camp = store.create_campaign(name, to_ms(clock) if world_clock else None,
                                 {"demo": True, "timezone": "UTC"})
    settlements = []
    for k, (kingdom_name, settlement_names) in enumerate(kingdoms.items()):
        kingdom = store.create_kingdom(camp["id"], kingdom_name, 1 + k, {"treasury": 500 * (k + 1)})
        for s, settlement_name in enumerate(settlement_names):
            settlements.append(store.create_settlement(
                kingdom["id"], settlement_name, 1 + (s % 2),
                _settlement_variables(clock, 300 + 150 * s, bookkeeping=(s % 2 == 0))))
    first, second = settlements[0], settlements[1]
    temple = store.create_structure(first["id"], "temple", f"Temple of {first['name']}", 1,
                                    _operational(clock))
    store.create_structure(first["id"], "market", f"{first['name']} Market", 2,
                           _operational(clock, maintenanceCost={"gold": 1, "food": 5}))
    store.create_structure(first["id"], "barracks", f"{first['name']} Barracks", 1,
                           _under_construction(clock, started_hours_ago=1, duration_minutes=240))
    store.create_structure(second["id"], "library", f"Library of {second['name']}", 1,
                           _under_construction(clock, started_hours_ago=6, duration_minutes=180))
    store.create_structure(second["id"], "temple", f"Shrine of {second['name']}", 1,
                           _operational(clock, health=60))

    events = [
        ("Bandit raid on the trade road", "kingdom", {"days": -1}),
        ("Harvest festival", "story", {"hours": -2}),
        ("Comet sighting", "world", {"minutes": -3}),  # within the 5-minute grace
        ("Council of lords", "kingdom", {"hours": 3}),
        ("The party reaches the pass", "party", {"days": 2}),
    ]
    for event_name, event_type, delta in events:
        store.create_event(camp["id"], event_name, event_type, _ms(clock, **delta),
                           {"description": event_name})
    done = store.create_event(camp["id"], "Founding day", "story", _ms(clock, days=-10), None)
    store.expire_event(done["id"], now_ms())

    store.create_effect(
        "Festival feast", "patch",
        [{"op": "replace", "path": "/variables/resources/food", "value": 60},
         {"op": "add", "path": "/variables/morale", "value": 10}],
        "Settlement", first["id"], "ON_RESOLVE", 5, True)
    store.create_effect(
        "Raiders burn the granary", "patch",
        [{"op": "replace", "path": "/variables/resources/food", "value": 0},
         {"op": "add", "path": "/variables/raided", "value": True}],
        "Settlement", second["id"], "POST", 8, True)
    store.create_effect(
        "Blessing of the temple", "patch",
        [{"op": "replace", "path": "/variables/health", "value": 100}],
        "Structure", temple["id"], "PRE", 0, True)
    return camp


def seed(store: Store, name: str) -> bool:
    """Fill an empty database with the named seed.

    Args:
        store: the database.
        name: ``demo`` or ``none``.

    Returns:
        True when data was written; False for ``none`` or a database that has campaigns.

    Raises:
        ValueError: for an unknown seed name.
    """
    if name not in SEEDS:
        raise ValueError(f"seed must be one of {', '.join(SEEDS)}, got {name!r}")
    if name == "none":
        return False
    if store.count_campaigns():
        logger.info("database already has campaigns; demo seed skipped")
        return False
    wall = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    _seed_campaign(store, DEMO_CAMPAIGN_WITH_CLOCK, DEMO_WORLD_TIME, world_clock=True, kingdoms={
        "Kingdom of Valdris": ["Eastwatch", "Millbrook", "Stonehaven"],
        "Free Marches": ["Rivermouth"],
    })
    _seed_campaign(store, DEMO_CAMPAIGN_WALL_CLOCK, wall, world_clock=False, kingdoms={
        "Duchy of Ashford": ["Ashford", "Greyfen"],
    })
    logger.info("demo campaigns seeded")
    return True
