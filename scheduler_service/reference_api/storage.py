"""SQLite storage of the reference API: one file, one connection per thread.

Times are epoch milliseconds, JSON values are JSON text. Every write runs in a
``BEGIN IMMEDIATE`` transaction, so a read-check-write (the optimistic lock, "already
completed") is atomic across the server's threads. Rows come back as dicts keyed by the
GraphQL field names, plus private ``_seq`` (insertion order) used by the cursors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import uuid
from pathlib import Path

from .errors import conflict, not_found
from .scalars import from_ms

logger = logging.getLogger(__name__)

_SCHEMA = """
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

#: The entity types an effect may target, and their tables.
EFFECT_TARGETS = {"Settlement": "settlements", "Structure": "structures",
                  "Kingdom": "kingdoms", "Event": "events"}


def _dumps(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text):
    return None if text is None else json.loads(text)


def new_id() -> str:
    """A fresh entity id."""
    return str(uuid.uuid4())


def _campaign(row) -> dict:
    return {"id": row["id"], "name": row["name"], "currentWorldTime": from_ms(row["world_time_ms"]),
            "isActive": bool(row["is_active"]), "settings": _loads(row["settings"]),
            "_seq": row["seq"], "_world_time_ms": row["world_time_ms"]}


def _kingdom(row) -> dict:
    return {"id": row["id"], "campaignId": row["campaign_id"], "name": row["name"],
            "level": row["level"], "variables": _loads(row["variables"]),
            "version": row["version"], "_seq": row["seq"]}


def _settlement(row) -> dict:
    return {"id": row["id"], "kingdomId": row["kingdom_id"], "campaignId": row["campaign_id"],
            "name": row["name"], "level": row["level"], "variables": _loads(row["variables"]),
            "version": row["version"], "_seq": row["seq"]}


def _structure(row) -> dict:
    return {"id": row["id"], "settlementId": row["settlement_id"], "campaignId": row["campaign_id"],
            "type": row["type"], "name": row["name"], "level": row["level"],
            "variables": _loads(row["variables"]), "version": row["version"], "_seq": row["seq"]}


def _event(row) -> dict:
    return {"id": row["id"], "campaignId": row["campaign_id"], "name": row["name"],
            "eventType": row["event_type"], "scheduledAt": from_ms(row["scheduled_ms"]),
            "occurredAt": from_ms(row["occurred_ms"]), "isCompleted": bool(row["is_completed"]),
            "variables": _loads(row["variables"]), "version": row["version"],
            "_seq": row["seq"], "_scheduled_ms": row["scheduled_ms"]}


def _effect(row) -> dict:
    return {"id": row["id"], "name": row["name"], "effectType": row["effect_type"],
            "payload": _loads(row["payload"]), "entityType": row["entity_type"],
            "entityId": row["entity_id"], "timing": row["timing"], "priority": row["priority"],
            "isActive": bool(row["is_active"]), "version": row["version"], "_seq": row["seq"]}


def _execution(row) -> dict:
    return {"id": row["id"], "effectId": row["effect_id"], "executedAt": from_ms(row["executed_ms"]),
            "executedBy": row["executed_by"], "context": _loads(row["context"]),
            "result": _loads(row["result"]), "error": row["error"], "_seq": row["seq"]}


_ROW_MAPPERS = {"campaigns": _campaign, "kingdoms": _kingdom, "settlements": _settlement,
                "structures": _structure, "events": _event, "effects": _effect}


class Store:
    """The reference API's data in one SQLite file.

    Args:
        path: the database file; created (with its folder) when missing.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._connection().executescript(_SCHEMA)

    # -- connections and transactions ---------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                 check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def write(self):
        """A write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        """This thread's connection, for single-statement reads."""
        return self._connection()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    def _get(self, db, table: str, entity_id) -> dict | None:
        row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (str(entity_id),)).fetchone()
        return None if row is None else _ROW_MAPPERS[table](row)

    def _require(self, db, table: str, entity_type: str, entity_id, field: str) -> dict:
        found = self._get(db, table, entity_id)
        if found is None:
            raise not_found(entity_type, entity_id, field)
        return found

    # -- campaigns and kingdoms ----------------------------------------------------------

    def count_campaigns(self) -> int:
        return self.read().execute("SELECT COUNT(*) FROM campaigns").fetchone()[0]

    def campaigns(self) -> list[dict]:
        return [_campaign(r) for r in self.read().execute("SELECT * FROM campaigns ORDER BY seq")]

    def campaign(self, campaign_id) -> dict | None:
        return self._get(self.read(), "campaigns", campaign_id)

    def require_campaign(self, campaign_id, field: str = "campaignId") -> dict:
        return self._require(self.read(), "campaigns", "Campaign", campaign_id, field)

    def create_campaign(self, name: str, world_time_ms: int | None, settings) -> dict:
        with self.write() as db:
            cid = new_id()
            db.execute("INSERT INTO campaigns (id, name, world_time_ms, is_active, settings) "
                       "VALUES (?, ?, ?, 1, ?)", (cid, name, world_time_ms, _dumps(settings)))
            return self._get(db, "campaigns", cid)

    def advance_world_time(self, campaign_id, to_ms: int, check) -> tuple[dict, int | None, int]:
        """Move a campaign's clock to ``to_ms``.

        Args:
            campaign_id: the campaign.
            to_ms: the new world time.
            check: ``check(previous_ms, to_ms)`` raises when the move is not allowed.

        Returns:
            The updated campaign, the previous world time and the number of open events the
            move made due.
        """
        with self.write() as db:
            camp = self._require(db, "campaigns", "Campaign", campaign_id, "input.campaignId")
            previous = camp["_world_time_ms"]
            check(previous, to_ms)
            db.execute("UPDATE campaigns SET world_time_ms = ? WHERE id = ?", (to_ms, camp["id"]))
            affected = db.execute(
                "SELECT COUNT(*) FROM events WHERE campaign_id = ? AND is_completed = 0 "
                "AND scheduled_ms <= ? AND (? IS NULL OR scheduled_ms > ?)",
                (camp["id"], to_ms, previous, previous)).fetchone()[0]
            return self._get(db, "campaigns", camp["id"]), previous, affected

    def kingdom(self, kingdom_id) -> dict | None:
        return self._get(self.read(), "kingdoms", kingdom_id)

    def create_kingdom(self, campaign_id, name: str, level: int, variables: dict) -> dict:
        with self.write() as db:
            camp = self._require(db, "campaigns", "Campaign", campaign_id, "input.campaignId")
            kid = new_id()
            db.execute("INSERT INTO kingdoms (id, campaign_id, name, level, variables, version) "
                       "VALUES (?, ?, ?, ?, ?, 1)", (kid, camp["id"], name, level, _dumps(variables)))
            return self._get(db, "kingdoms", kid)

    # -- settlements and structures ------------------------------------------------------

    def settlement(self, settlement_id) -> dict | None:
        return self._get(self.read(), "settlements", settlement_id)

    def create_settlement(self, kingdom_id, name: str, level: int, variables: dict) -> dict:
        with self.write() as db:
            kingdom = self._require(db, "kingdoms", "Kingdom", kingdom_id, "input.kingdomId")
            sid = new_id()
            db.execute(
                "INSERT INTO settlements (id, kingdom_id, campaign_id, name, level, variables, version) "
                "VALUES (?, ?, ?, ?, ?, ?, 1)",
                (sid, kingdom["id"], kingdom["campaignId"], name, level, _dumps(variables)))
            return self._get(db, "settlements", sid)

    def structure(self, structure_id) -> dict | None:
        return self._get(self.read(), "structures", structure_id)

    def create_structure(self, settlement_id, type_: str, name: str, level: int,
                         variables: dict) -> dict:
        with self.write() as db:
            stl = self._require(db, "settlements", "Settlement", settlement_id, "input.settlementId")
            sid = new_id()
            db.execute(
                "INSERT INTO structures (id, settlement_id, campaign_id, type, name, level, "
                "variables, version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (sid, stl["id"], stl["campaignId"], type_, name, level, _dumps(variables)))
            return self._get(db, "structures", sid)

    def structures_by_settlement(self, settlement_id) -> list[dict]:
        db = self.read()
        self._require(db, "settlements", "Settlement", settlement_id, "settlementId")
        rows = db.execute("SELECT * FROM structures WHERE settlement_id = ? ORDER BY seq",
                          (str(settlement_id),))
        return [_structure(r) for r in rows]

    def page_by_campaign(self, table: str, campaign_id, first: int, after_seq: int | None):
        """One page of ``settlements`` or ``structures`` of a campaign, in creation order.

        Returns:
            ``(rows, has_next_page)``.
        """
        db = self.read()
        self._require(db, "campaigns", "Campaign", campaign_id, "campaignId")
        rows = db.execute(
            f"SELECT * FROM {table} WHERE campaign_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (str(campaign_id), after_seq if after_seq is not None else -1, first + 1)).fetchall()
        return [_ROW_MAPPERS[table](r) for r in rows[:first]], len(rows) > first

    def update_versioned(self, table: str, entity_type: str, entity_id, expected_version: int,
                         level: int | None, variables: dict | None) -> dict:
        """Optimistic-lock update of a settlement or structure.

        ``variables`` are merged key by key into the stored ones; the version is bumped by one.

        Raises:
            ApiError: ``NOT_FOUND``, or ``CONFLICT`` when ``expected_version`` is stale.
        """
        with self.write() as db:
            current = self._require(db, table, entity_type, entity_id, "id")
            if current["version"] != expected_version:
                raise conflict(
                    f"{entity_type} {current['id']!r} is at version {current['version']}, "
                    f"not the expectedVersion {expected_version}")
            merged = {**current["variables"], **(variables or {})}
            db.execute(f"UPDATE {table} SET level = ?, variables = ?, version = version + 1 "
                       "WHERE id = ?",
                       (current["level"] if level is None else level, _dumps(merged), current["id"]))
            return self._get(db, table, current["id"])

    # -- events --------------------------------------------------------------------------

    def event(self, event_id) -> dict | None:
        return self._get(self.read(), "events", event_id)

    def create_event(self, campaign_id, name: str, event_type: str, scheduled_ms: int | None,
                     variables) -> dict:
        with self.write() as db:
            camp = self._require(db, "campaigns", "Campaign", campaign_id, "input.campaignId")
            eid = new_id()
            db.execute(
                "INSERT INTO events (id, campaign_id, name, event_type, scheduled_ms, variables, "
                "version) VALUES (?, ?, ?, ?, ?, ?, 1)",
                (eid, camp["id"], name, event_type, scheduled_ms, _dumps(variables)))
            return self._get(db, "events", eid)

    def overdue_events(self, campaign_id, grace_ms: int, first: int, after: tuple | None):
        """Open events scheduled before the campaign's world time minus ``grace_ms``.

        Oldest first (ties by creation order); none when the campaign has no world clock.

        Returns:
            ``(rows, has_next_page)``.
        """
        db = self.read()
        camp = self._require(db, "campaigns", "Campaign", campaign_id, "campaignId")
        if camp["_world_time_ms"] is None:
            return [], False
        cutoff = camp["_world_time_ms"] - grace_ms
        after_ms, after_seq = after if after is not None else (None, None)
        rows = db.execute(
            "SELECT * FROM events WHERE campaign_id = ? AND is_completed = 0 "
            "AND scheduled_ms IS NOT NULL AND scheduled_ms < ? "
            "AND (? IS NULL OR scheduled_ms > ? OR (scheduled_ms = ? AND seq > ?)) "
            "ORDER BY scheduled_ms, seq LIMIT ?",
            (camp["id"], cutoff, after_ms, after_ms, after_ms, after_seq, first + 1)).fetchall()
        return [_event(r) for r in rows[:first]], len(rows) > first

    def expire_event(self, event_id, now_ms: int) -> dict:
        """Complete an event at its campaign's world time (``now_ms`` without a world clock).

        Raises:
            ApiError: ``NOT_FOUND``, or ``CONFLICT`` when it is already completed.
        """
        with self.write() as db:
            event = self._require(db, "events", "Event", event_id, "eventId")
            if event["isCompleted"]:
                raise conflict(f"Event {event['id']!r} is already completed")
            camp = self._get(db, "campaigns", event["campaignId"])
            world = camp["_world_time_ms"] if camp else None
            db.execute("UPDATE events SET is_completed = 1, occurred_ms = ?, version = version + 1 "
                       "WHERE id = ?", (now_ms if world is None else world, event["id"]))
            return self._get(db, "events", event["id"])

    # -- effects -------------------------------------------------------------------------

    def effect(self, effect_id) -> dict | None:
        return self._get(self.read(), "effects", effect_id)

    def create_effect(self, name, effect_type, payload, entity_type, entity_id, timing,
                      priority, is_active) -> dict:
        with self.write() as db:
            self._require(db, EFFECT_TARGETS[entity_type], entity_type, entity_id, "input.entityId")
            fid = new_id()
            db.execute(
                "INSERT INTO effects (id, name, effect_type, payload, entity_type, entity_id, "
                "timing, priority, is_active, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (fid, name, effect_type, _dumps(payload), entity_type, str(entity_id), timing,
                 priority, int(is_active)))
            return self._get(db, "effects", fid)

    def executions(self, effect_id) -> list[dict]:
        rows = self.read().execute(
            "SELECT * FROM effect_executions WHERE effect_id = ? ORDER BY seq", (str(effect_id),))
        return [_execution(r) for r in rows]

    def execute_effect(self, effect_id, run, *, record: bool, executed_by: str, context,
                       now_ms: int) -> tuple[dict, dict | None]:
        """Run an effect against its target in one transaction, and record the execution.

        Args:
            effect_id: the effect.
            run: ``run(effect, target) -> (outcome, changes)``: ``outcome`` is the
                ``EffectExecutionResult`` fields (without ``executionId``), ``changes`` the
                target's new ``{"level", "variables"}`` or None to leave it alone.
            record: False for a dry run: nothing is written.
            executed_by: who executes it.
            context: the caller's context, recorded unchanged.
            now_ms: the wall clock.

        Returns:
            ``(outcome, modified)``: ``modified`` is the target after the change, or None.

        Raises:
            ApiError: ``NOT_FOUND`` when the effect does not exist.
        """
        with self.write() as db:
            effect = self._require(db, "effects", "Effect", effect_id, "input.effectId")
            table = EFFECT_TARGETS.get(effect["entityType"])
            target = self._get(db, table, effect["entityId"]) if table else None
            outcome, changes = run(effect, target)
            outcome = {**outcome, "executionId": None}
            if not record:
                return outcome, None
            modified = None
            if changes is not None:
                sets = ["variables = ?", "version = version + 1"]
                params = [_dumps(changes["variables"])]
                if "level" in changes:
                    sets.insert(0, "level = ?")
                    params.insert(0, changes["level"])
                db.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE id = ?",
                           (*params, target["id"]))
                modified = self._get(db, table, target["id"])
                modified["_entity_type"] = effect["entityType"]
            xid = new_id()
            result = {"patchApplied": outcome.get("patchApplied"),
                      "affectedFields": outcome.get("affectedFields"),
                      "entityType": effect["entityType"], "entityId": effect["entityId"],
                      "entityVersion": modified["version"] if modified else None}
            db.execute(
                "INSERT INTO effect_executions (id, effect_id, executed_ms, executed_by, context, "
                "result, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (xid, effect["id"], now_ms, executed_by, _dumps(context),
                 _dumps(result) if outcome["success"] else None, outcome.get("error")))
            return {**outcome, "executionId": xid}, modified
