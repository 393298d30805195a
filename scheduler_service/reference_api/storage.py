"""SQLite storage of the reference API: one file, one connection per thread.

Every write runs in a ``BEGIN IMMEDIATE`` transaction, so a read-check-write (the optimistic
lock, "already completed") is atomic across the server's threads. Rows come back as the
dicts of :mod:`.tables`.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import uuid
from pathlib import Path

from .errors import conflict, not_found
from .tables import DDL, campaign_row, dumps, event_row, execution_row, row_mapper, structure_row

logger = logging.getLogger(__name__)

#: The entity types an effect may target, and their tables.
EFFECT_TARGETS = {"Settlement": "settlements", "Structure": "structures",
                  "Kingdom": "kingdoms", "Event": "events"}


def new_id() -> str:
    """A fresh entity id."""
    return str(uuid.uuid4())


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
        self._connection().executescript(DDL)

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
        return None if row is None else row_mapper(table)(row)

    def _require(self, db, table: str, entity_type: str, entity_id, field: str) -> dict:
        found = self._get(db, table, entity_id)
        if found is None:
            raise not_found(entity_type, entity_id, field)
        return found

    # -- campaigns and kingdoms ----------------------------------------------------------

    def count_campaigns(self) -> int:
        return self.read().execute("SELECT COUNT(*) FROM campaigns").fetchone()[0]

    def campaigns(self) -> list[dict]:
        return [campaign_row(r) for r in self.read().execute("SELECT * FROM campaigns ORDER BY seq")]

    def campaign(self, campaign_id) -> dict | None:
        return self._get(self.read(), "campaigns", campaign_id)

    def require_campaign(self, campaign_id, field: str = "campaignId") -> dict:
        return self._require(self.read(), "campaigns", "Campaign", campaign_id, field)

    def create_campaign(self, name: str, world_time_ms: int | None, settings) -> dict:
        with self.write() as db:
            cid = new_id()
            db.execute("INSERT INTO campaigns (id, name, world_time_ms, is_active, settings) "
                       "VALUES (?, ?, ?, 1, ?)", (cid, name, world_time_ms, dumps(settings)))
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
                       "VALUES (?, ?, ?, ?, ?, 1)", (kid, camp["id"], name, level, dumps(variables)))
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
                (sid, kingdom["id"], kingdom["campaignId"], name, level, dumps(variables)))
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
                (sid, stl["id"], stl["campaignId"], type_, name, level, dumps(variables)))
            return self._get(db, "structures", sid)

    def structures_by_settlement(self, settlement_id) -> list[dict]:
        db = self.read()
        self._require(db, "settlements", "Settlement", settlement_id, "settlementId")
        rows = db.execute("SELECT * FROM structures WHERE settlement_id = ? ORDER BY seq",
                          (str(settlement_id),))
        return [structure_row(r) for r in rows]

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
        return [row_mapper(table)(r) for r in rows[:first]], len(rows) > first

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
                       (current["level"] if level is None else level, dumps(merged), current["id"]))
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
                (eid, camp["id"], name, event_type, scheduled_ms, dumps(variables)))
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
        return [event_row(r) for r in rows[:first]], len(rows) > first

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
                (fid, name, effect_type, dumps(payload), entity_type, str(entity_id), timing,
                 priority, int(is_active)))
            return self._get(db, "effects", fid)

    def executions(self, effect_id) -> list[dict]:
        rows = self.read().execute(
            "SELECT * FROM effect_executions WHERE effect_id = ? ORDER BY seq", (str(effect_id),))
        return [execution_row(r) for r in rows]

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
                params = [dumps(changes["variables"])]
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
                (xid, effect["id"], now_ms, executed_by, dumps(context),
                 dumps(result) if outcome["success"] else None, outcome.get("error")))
            return {**outcome, "executionId": xid}, modified
