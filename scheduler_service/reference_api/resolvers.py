"""Resolvers of every query and mutation in ``schema.graphql``.

They validate what the schema's types cannot (empty names, objects, page sizes), call the
store, and publish the contract's Redis messages after a write has committed. Errors are
:class:`~.errors.ApiError` with the contract's codes; messages name the offending field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import jsonpatch
from .errors import bad_input
from .paging import connection, decode_cursor, encode_cursor, page_size
from .publisher import Publisher
from .scalars import format_datetime, from_ms, now_ms, to_ms
from .storage import EFFECT_TARGETS, Store

logger = logging.getLogger(__name__)

#: Grace period of getOverdueEvents when the caller gives none (5 minutes).
DEFAULT_GRACE_MS = 5 * 60 * 1000
#: ``executedBy`` of executions recorded for the service account.
SERVICE_ACCOUNT = "service-account"


@dataclass
class Context:
    """What every resolver reaches through ``info.context``."""

    store: Store
    publisher: Publisher
    principal: str = SERVICE_ACCOUNT


def _ctx(info) -> Context:
    return info.context


# -- input checks ---------------------------------------------------------------------------

def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_input(f"{field} must not be empty")
    return value.strip()


def _level(value, field: str, default: int | None = 1) -> int | None:
    if value is None:
        return default
    if value < 0:
        raise bad_input(f"{field} must be >= 0, got {value}")
    return value


def _object(value, field: str, default=None):
    if value is None:
        return {} if default is None else default
    if not isinstance(value, dict):
        raise bad_input(f"{field} must be a JSON object, got {type(value).__name__}")
    return value


def _optional_object(value, field: str):
    if value is not None and not isinstance(value, dict):
        raise bad_input(f"{field} must be a JSON object or null, got {type(value).__name__}")
    return value


# -- queries --------------------------------------------------------------------------------

def campaigns(_root, info):
    return _ctx(info).store.campaigns()


def campaign(_root, info, id):
    return _ctx(info).store.campaign(id)


def get_current_world_time(_root, info, campaignId):
    return _ctx(info).store.require_campaign(campaignId)["currentWorldTime"]


def get_overdue_events(_root, info, campaignId, gracePeriodMs=None, first=None, after=None):
    grace = DEFAULT_GRACE_MS if gracePeriodMs is None else gracePeriodMs
    if grace < 0:
        raise bad_input(f"gracePeriodMs must be >= 0, got {grace}")
    size = page_size(first)
    rows, more = _ctx(info).store.overdue_events(
        campaignId, grace, size, decode_cursor("overdueEvents", after, 2))
    return connection(rows, more,
                      lambda e: encode_cursor("overdueEvents", e["_scheduled_ms"], e["_seq"]))


def get_effect(_root, info, id):
    return _ctx(info).store.effect(id)


def _by_campaign(table: str, kind: str):
    def resolve(_root, info, campaignId, first=None, after=None):
        size = page_size(first)
        after_key = decode_cursor(kind, after, 1)
        rows, more = _ctx(info).store.page_by_campaign(
            table, campaignId, size, after_key[0] if after_key else None)
        return connection(rows, more, lambda row: encode_cursor(kind, row["_seq"]))

    return resolve


def structures_by_settlement(_root, info, settlementId):
    return _ctx(info).store.structures_by_settlement(settlementId)


def settlement(_root, info, id):
    return _ctx(info).store.settlement(id)


def structure(_root, info, id):
    return _ctx(info).store.structure(id)


def event(_root, info, id):
    return _ctx(info).store.event(id)


def effect_executions(effect, info):
    return _ctx(info).store.executions(effect["id"])


# -- mutations ------------------------------------------------------------------------------

def expire_event(_root, info, eventId):
    ctx = _ctx(info)
    updated = ctx.store.expire_event(eventId, now_ms())
    ctx.publisher.entity_modified(updated["campaignId"], "Event", updated["id"], "UPDATE")
    return updated


def _run_effect(effect, target):
    """Apply an effect's JSON-Patch payload to its target; see ``Store.execute_effect``."""

    def failed(message):
        return {"success": False, "patchApplied": None, "affectedFields": [], "error": message}, None

    if not effect["isActive"]:
        return failed(f"Effect {effect['id']!r} is inactive")
    payload = effect["payload"]
    if not isinstance(payload, list):
        # Not a patch effect: nothing for the reference API to apply.
        return {"success": True, "patchApplied": None, "affectedFields": [], "error": None}, None
    if target is None:
        return failed(f"{effect['entityType']} {effect['entityId']!r}, the effect's target, "
                      "does not exist")
    document = {"variables": target["variables"] or {}}
    if "level" in target:
        document["level"] = target["level"]
    try:
        changed = jsonpatch.apply_patch(document, payload)
    except jsonpatch.PatchError as e:
        return failed(f"payload does not apply: {e}")
    if (not isinstance(changed, dict) or changed.keys() != document.keys()
            or not isinstance(changed["variables"], dict)
            or not isinstance(changed.get("level", 0), int)):
        return failed("payload may only change /variables/... (an object) and /level (an integer)")
    return {"success": True, "patchApplied": payload,
            "affectedFields": jsonpatch.changed_paths(payload), "error": None}, changed


def execute_effect(_root, info, input):
    ctx = _ctx(info)
    dry_run = bool(input.get("dryRun"))
    outcome, modified = ctx.store.execute_effect(
        input["effectId"], _run_effect, record=not dry_run, executed_by=ctx.principal,
        context=input.get("context"), now_ms=now_ms())
    if modified is not None:
        ctx.publisher.entity_modified(modified["campaignId"], modified["_entity_type"],
                                      modified["id"], "UPDATE")
    return outcome


def _update(table: str, entity_type: str):
    def resolve(_root, info, id, input):
        ctx = _ctx(info)
        updated = ctx.store.update_versioned(
            table, entity_type, id, input["expectedVersion"],
            _level(input.get("level"), "input.level", default=None),
            _optional_object(input.get("variables"), "input.variables"))
        ctx.publisher.entity_modified(updated["campaignId"], entity_type, updated["id"], "UPDATE")
        return updated

    return resolve


def advance_world_time(_root, info, input):
    ctx = _ctx(info)
    to = to_ms(input["to"])

    def check(previous, new):
        if previous is not None and new < previous:
            raise bad_input(
                f"input.to ({format_datetime(input['to'])}) is before the campaign's world time; "
                "world time cannot move backwards")

    camp, previous_ms, affected = ctx.store.advance_world_time(input["campaignId"], to, check)
    previous = from_ms(previous_ms)
    previous_text = None if previous is None else format_datetime(previous)
    new_text = format_datetime(camp["currentWorldTime"])
    ctx.publisher.world_time_advanced(camp["id"], previous_text, new_text)
    return {
        "campaignId": camp["id"],
        "previousWorldTime": previous,
        "currentWorldTime": camp["currentWorldTime"],
        "affectedEntities": affected,
        "message": f"world time of campaign {camp['id']} advanced from "
                   f"{previous_text or 'no world clock'} to {new_text}",
    }


def create_campaign(_root, info, input):
    world = input.get("currentWorldTime")
    return _ctx(info).store.create_campaign(
        _text(input["name"], "input.name"), None if world is None else to_ms(world),
        input.get("settings"))


def create_kingdom(_root, info, input):
    return _ctx(info).store.create_kingdom(
        input["campaignId"], _text(input["name"], "input.name"),
        _level(input.get("level"), "input.level"),
        _object(input.get("variables"), "input.variables"))


def create_settlement(_root, info, input):
    ctx = _ctx(info)
    created = ctx.store.create_settlement(
        input["kingdomId"], _text(input["name"], "input.name"),
        _level(input.get("level"), "input.level"),
        _object(input.get("variables"), "input.variables"))
    ctx.publisher.entity_modified(created["campaignId"], "Settlement", created["id"], "CREATE")
    return created


def create_structure(_root, info, input):
    ctx = _ctx(info)
    created = ctx.store.create_structure(
        input["settlementId"], _text(input["type"], "input.type"),
        _text(input["name"], "input.name"), _level(input.get("level"), "input.level"),
        _object(input.get("variables"), "input.variables"))
    ctx.publisher.entity_modified(created["campaignId"], "Structure", created["id"], "CREATE")
    return created


def create_event(_root, info, input):
    ctx = _ctx(info)
    scheduled = input.get("scheduledAt")
    created = ctx.store.create_event(
        input["campaignId"], _text(input["name"], "input.name"),
        _text(input["eventType"], "input.eventType"),
        None if scheduled is None else to_ms(scheduled),
        _optional_object(input.get("variables"), "input.variables"))
    ctx.publisher.entity_modified(created["campaignId"], "Event", created["id"], "CREATE")
    return created


def create_effect(_root, info, input):
    entity_type = input["entityType"]
    if entity_type not in EFFECT_TARGETS:
        raise bad_input(f"input.entityType must be one of {', '.join(EFFECT_TARGETS)}, "
                        f"got {entity_type!r}")
    payload = input["payload"]
    if payload is None:
        raise bad_input("input.payload must not be null")
    if isinstance(payload, list):
        try:
            jsonpatch.validate(payload)
        except jsonpatch.PatchError as e:
            raise bad_input(f"input.payload is not a valid JSON Patch: {e}") from None
    return _ctx(info).store.create_effect(
        _text(input["name"], "input.name"), _text(input["effectType"], "input.effectType"),
        payload, entity_type, input["entityId"], input.get("timing") or "ON_RESOLVE",
        0 if input.get("priority") is None else input["priority"],
        True if input.get("isActive") is None else input["isActive"])


#: ``{type name: {field name: resolver}}``; every Query and Mutation field must be here.
RESOLVERS = {
    "Query": {
        "campaigns": campaigns,
        "campaign": campaign,
        "getCurrentWorldTime": get_current_world_time,
        "getOverdueEvents": get_overdue_events,
        "getEffect": get_effect,
        "settlementsByCampaign": _by_campaign("settlements", "settlementsByCampaign"),
        "structuresByCampaign": _by_campaign("structures", "structuresByCampaign"),
        "structuresBySettlement": structures_by_settlement,
        "settlement": settlement,
        "structure": structure,
        "event": event,
    },
    "Mutation": {
        "expireEvent": expire_event,
        "executeEffect": execute_effect,
        "updateSettlement": _update("settlements", "Settlement"),
        "updateStructure": _update("structures", "Structure"),
        "advanceWorldTime": advance_world_time,
        "createCampaign": create_campaign,
        "createKingdom": create_kingdom,
        "createSettlement": create_settlement,
        "createStructure": create_structure,
        "createEvent": create_event,
        "createEffect": create_effect,
    },
    "Effect": {"executions": effect_executions},
}
