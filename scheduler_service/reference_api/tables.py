"""The reference API's SQLite tables, and how their rows become GraphQL values.

Times are epoch milliseconds, JSON values are JSON text. Each row maps to a dict keyed by
the GraphQL field names, plus private ``_seq`` (insertion order) that the cursors use.
"""

from __future__ import annotations

import json

from .scalars import from_ms

DDL = """
CREATE TABLE IF NOT EXISTS campaigns (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    world_time_ms INTEGER, is_active INTEGER NOT NULL DEFAULT 1, settings TEXT);
CREATE TABLE IF NOT EXISTS kingdoms (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, campaign_id TEXT NOT NULL,
    name TEXT NOT NULL, level INTEGER NOT NULL, variables TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settlements (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kingdom_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL, name TEXT NOT NULL, level INTEGER NOT NULL,
    variables TEXT NOT NULL, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_by_campaign ON settlements (campaign_id, seq);
CREATE TABLE IF NOT EXISTS structures (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, settlement_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL, level INTEGER NOT NULL,
    variables TEXT NOT NULL, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS structures_by_campaign ON structures (campaign_id, seq);
CREATE INDEX IF NOT EXISTS structures_by_settlement ON structures (settlement_id, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, campaign_id TEXT NOT NULL,
    name TEXT NOT NULL, event_type TEXT NOT NULL, scheduled_ms INTEGER, occurred_ms INTEGER,
    is_completed INTEGER NOT NULL DEFAULT 0, variables TEXT, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_overdue ON events (campaign_id, is_completed, scheduled_ms, seq);
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    effect_type TEXT NOT NULL, payload TEXT NOT NULL, entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL, timing TEXT NOT NULL, priority INTEGER NOT NULL,
    is_active INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS effect_executions (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, effect_id TEXT NOT NULL,
    executed_ms INTEGER NOT NULL, executed_by TEXT, context TEXT, result TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS executions_by_effect ON effect_executions (effect_id, seq);
"""

def dumps(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loads(text):
    return None if text is None else json.loads(text)


def campaign_row(row) -> dict:
    return {"id": row["id"], "name": row["name"], "currentWorldTime": from_ms(row["world_time_ms"]),
            "isActive": bool(row["is_active"]), "settings": loads(row["settings"]),
            "_seq": row["seq"], "_world_time_ms": row["world_time_ms"]}


def kingdom_row(row) -> dict:
    return {"id": row["id"], "campaignId": row["campaign_id"], "name": row["name"],
            "level": row["level"], "variables": loads(row["variables"]),
            "version": row["version"], "_seq": row["seq"]}


def settlement_row(row) -> dict:
    return {"id": row["id"], "kingdomId": row["kingdom_id"], "campaignId": row["campaign_id"],
            "name": row["name"], "level": row["level"], "variables": loads(row["variables"]),
            "version": row["version"], "_seq": row["seq"]}


def structure_row(row) -> dict:
    return {"id": row["id"], "settlementId": row["settlement_id"], "campaignId": row["campaign_id"],
            "type": row["type"], "name": row["name"], "level": row["level"],
            "variables": loads(row["variables"]), "version": row["version"], "_seq": row["seq"]}


def event_row(row) -> dict:
    return {"id": row["id"], "campaignId": row["campaign_id"], "name": row["name"],
            "eventType": row["event_type"], "scheduledAt": from_ms(row["scheduled_ms"]),
            "occurredAt": from_ms(row["occurred_ms"]), "isCompleted": bool(row["is_completed"]),
            "variables": loads(row["variables"]), "version": row["version"],
            "_seq": row["seq"], "_scheduled_ms": row["scheduled_ms"]}


def effect_row(row) -> dict:
    return {"id": row["id"], "name": row["name"], "effectType": row["effect_type"],
            "payload": loads(row["payload"]), "entityType": row["entity_type"],
            "entityId": row["entity_id"], "timing": row["timing"], "priority": row["priority"],
            "isActive": bool(row["is_active"]), "version": row["version"], "_seq": row["seq"]}


def execution_row(row) -> dict:
    return {"id": row["id"], "effectId": row["effect_id"], "executedAt": from_ms(row["executed_ms"]),
            "executedBy": row["executed_by"], "context": loads(row["context"]),
            "result": loads(row["result"]), "error": row["error"], "_seq": row["seq"]}


_ROW_MAPPERS = {"campaigns": campaign_row, "kingdoms": kingdom_row, "settlements": settlement_row,
                "structures": structure_row, "events": event_row, "effects": effect_row,
                "effect_executions": execution_row}


def row_mapper(table: str):
    """The function turning a row of ``table`` into its GraphQL value."""
    return _ROW_MAPPERS[table]
