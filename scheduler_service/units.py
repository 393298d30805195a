"""Bringing a settlement unit up to its campaign clock: read, simulate, write, place its timer.

The engine (:mod:`scheduler_service.simulation`) is pure; this is the shell around it that
the unit job types of the settlement and structure plugins share (``SETTLEMENT_GROWTH``,
``STRUCTURE_MAINTENANCE``), and the schedule recalculation of a whole campaign
(``RECALCULATE_*_SCHEDULES``).

Never double-apply, never lose a step:

* One job at a time works on a unit (a Redis lock per settlement, held for the job's time
  limit); a job that finds the unit busy leaves it to the holder, whose timer covers it.
* The whole target state is computed first and kept in Redis as the unit's *plan* before
  anything is written; the writes carry absolute values (``variables`` are merged key by
  key) with ``expectedVersion``. Whoever takes the unit next (the same job retried, or any
  other) first finishes a plan left behind by a crash, then simulates afresh.
* ``CONFLICT`` before the plan's first write means someone edited the unit: it is read and
  simulated again (at most :data:`CONFLICT_ATTEMPTS` times). After a first write, the rest
  of the plan is applied over the newer version (our keys win; the other writer's stay).
* A job stops after ``SIMULATION_MAX_STEPS`` occurrences and continues in a new job.
* Our own writes are marked for a few seconds, so the ``entityModified`` messages they cause
  do not start another round (an edit by someone else in that window is met by the hourly
  recalculation sweep).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable

from .errors import Conflict, PermanentJobError
from .simulation import Entity, Unit, iso, simulate

logger = logging.getLogger(__name__)

#: Times a unit is read and simulated again after CONFLICT before the job gives up (retried).
CONFLICT_ATTEMPTS = 5
#: How long our own write of an entity is remembered (its entityModified is then ignored).
OWN_WRITE_TTL_MS = 10_000
#: The job types that run a unit, in the order the unit timer prefers them.
UNIT_JOB_TYPES = ("SETTLEMENT_GROWTH", "STRUCTURE_MAINTENANCE")


def unit_key(settlement_id: str) -> str:
    """The timer key of a unit (see ``replace_timer``)."""
    return f"unit:{settlement_id}"


def settlement_entity(s) -> Entity:
    return Entity("settlement", s.id, s.level, dict(s.variables or {}), s.version)


def structure_entity(s) -> Entity:
    return Entity("structure", s.id, s.level, dict(s.variables or {}), s.version, s.type)


def read_unit(api, settlement_id: str) -> tuple[object, Unit] | None:
    """``(settlement, unit)`` as the API has them now (one request), or None when gone."""
    found = api.unit(settlement_id)
    if found is None:
        return None
    settlement, structures = found
    return settlement, Unit(settlement_entity(settlement), [structure_entity(s) for s in structures])


class UnitStore:
    """The Redis side of units: the per-unit lock, the pending plan, own-write marks."""

    _UNLOCK = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
               "return redis.call('del', KEYS[1]) end return 0")

    def __init__(self, services):
        self.redis = services.redis
        self.prefix = f"{services.settings.redis_namespace}:unit:"
        self._unlock = self.redis.register_script(self._UNLOCK)

    def lock(self, settlement_id: str, owner: str, ttl_ms: int) -> bool:
        return bool(self.redis.set(f"{self.prefix}lock:{settlement_id}", owner, nx=True, px=ttl_ms))

    def unlock(self, settlement_id: str, owner: str) -> None:
        self._unlock(keys=[f"{self.prefix}lock:{settlement_id}"], args=[owner])

    def plan(self, settlement_id: str) -> dict | None:
        raw = self.redis.get(f"{self.prefix}plan:{settlement_id}")
        return json.loads(raw) if raw else None

    def save_plan(self, settlement_id: str, plan: dict | None) -> None:
        key = f"{self.prefix}plan:{settlement_id}"
        if plan is None:
            self.redis.delete(key)
        else:
            self.redis.set(key, json.dumps(plan))

    def mark_written(self, entity_ids) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.set(f"{self.prefix}own:{entity_id}", 1, px=OWN_WRITE_TTL_MS)
        pipe.execute()

    def written_by_us(self, entity_id: str) -> bool:
        return bool(self.redis.exists(f"{self.prefix}own:{entity_id}"))


def plan_of(outcome) -> list[dict]:
    """The writes of an outcome: the settlement first, then structures by id."""
    writes = []
    entities = [outcome.unit.settlement, *outcome.unit.structures]
    versions = {e.id: e.version for e in entities}
    for entity in entities:
        change = outcome.changes.get(entity.id)
        if change is None:
            continue
        write = {"id": entity.id, "kind": change["kind"], "expectedVersion": versions[entity.id],
                 "variables": change["variables"]}
        if "level" in change:
            write["level"] = change["level"]
        writes.append(write)
    return writes


def _matches(entity, write) -> bool:
    return ((write.get("level") is None or entity.level == write["level"])
            and all((entity.variables or {}).get(k) == v for k, v in write["variables"].items()))


def apply_plan(api, store: UnitStore, writes: list[dict], resumed: bool) -> bool:
    """Write a plan, the settlement first; False when its first write met CONFLICT (read
    and simulate again: nothing was written).

    An entity that meets CONFLICT after a first write is read again and written over its
    newer version (the plan's keys win, the other writer's stay).

    Raises:
        Conflict: an entity kept changing under us (the job is retried).
    """
    store.mark_written(w["id"] for w in writes)
    for position, write in enumerate(writes):
        update = api.update_settlement if write["kind"] == "settlement" else api.update_structure
        try:
            update(write["id"], expected_version=write["expectedVersion"],
                   level=write.get("level"), variables=write["variables"])
        except Conflict:
            if position == 0 and not resumed:
                return False
            _write_over(api, write)
    return True


def _write_over(api, write: dict) -> None:
    """Write a plan's entity over whatever version it now has (already there: nothing)."""
    update = api.update_settlement if write["kind"] == "settlement" else api.update_structure
    read = api.settlement if write["kind"] == "settlement" else api.structure
    for _ in range(CONFLICT_ATTEMPTS):
        current = read(write["id"])
        if current is None or _matches(current, write):
            return  # gone, or already written (a plan resumed after a crash)
        try:
            update(write["id"], expected_version=current.version, level=write.get("level"),
                   variables=write["variables"])
            return
        except Conflict:
            continue
    raise Conflict(f"{write['kind']} {write['id']} kept changing while its plan was written",
                   code="CONFLICT")


def bring_edited_unit_up_to_date(ctx, entity_id: str, job_type: str, payload: dict) -> bool:
    """A reaction's step for an edited settlement or structure: enqueue its unit job, unless
    the edit is one of our own writes. Returns whether a job was enqueued."""
    if UnitStore(ctx.services).written_by_us(entity_id):
        return False
    ctx.send_job(job_type, payload)
    return True


def timer_job(registry, settlement_id: str, structure_id: str | None):
    """``(job type, payload)`` that runs the unit when its timer falls due."""
    for name in UNIT_JOB_TYPES:
        if name in registry.job_types:
            if name == "SETTLEMENT_GROWTH":
                return name, {"settlementId": settlement_id}
            if structure_id is not None:
                return name, {"structureId": structure_id}
    return None, None


def run_unit(ctx, settlement_id: str) -> dict:
    """Bring one unit up to its campaign clock, write it back, and place its next timer.

    Returns:
        The job's result: ``outcome``, ``settlementId``, ``clock``, ``until``,
        ``occurrences`` per rule, ``written`` entity ids, ``nextDue``, ``warnings``,
        ``steps`` and ``continued``.
    """
    services = ctx.services
    api = ctx.api
    store = UnitStore(services)
    if not store.lock(settlement_id, ctx.job_id, _time_limit_ms(services, ctx.job_type)):
        return {"outcome": "skipped", "settlementId": settlement_id,
                "reason": "another job is bringing this unit up to date"}
    try:
        result, follow_up = _run_locked(ctx, api, store, settlement_id)
    finally:
        store.unlock(settlement_id, ctx.job_id)
    # The next job of the unit (its timer, or the continuation) is sent once the lock is
    # free: one already due (the clock moved on meanwhile) may start at once, and would
    # otherwise find the unit locked, skip, and leave it behind its clock with no timer.
    follow_up()
    return result


def _run_locked(ctx, api, store, settlement_id) -> tuple[dict, Callable[[], None]]:
    """Simulate and write back the unit; returns the job's result and what to send next."""
    pending = store.plan(settlement_id)
    if pending is not None:
        logger.info("finishing the plan a stopped job left for settlement %s", settlement_id)
        apply_plan(api, store, pending["writes"], resumed=True)
        store.save_plan(settlement_id, None)
    rules = ctx.services.registry.rules
    max_steps = ctx.settings.simulation_max_steps
    for _ in range(CONFLICT_ATTEMPTS):
        read = read_unit(api, settlement_id)
        if read is None:
            ctx.clear_timer(unit_key(settlement_id))
            return {"outcome": "skipped", "settlementId": settlement_id,
                    "reason": f"settlement {settlement_id} does not exist"}, _nothing
        settlement, unit = read
        campaign = settlement.campaign_id
        if ctx.campaign_id not in ("SYSTEM", campaign):
            raise PermanentJobError(f"settlement {settlement_id} belongs to campaign {campaign}, "
                                    f"not to this job's campaign {ctx.campaign_id}")
        clock = ctx.campaign_time(campaign, at_least_ms=_due_world_time(ctx))
        outcome = simulate(unit, rules, clock.now_ms, max_steps)
        writes = plan_of(outcome)
        if writes:
            store.save_plan(settlement_id, {"writes": writes, "job": ctx.job_id})
            done = apply_plan(api, store, writes, resumed=False)
            store.save_plan(settlement_id, None)
            if not done:
                continue  # edited meanwhile: read and simulate again
        break
    else:
        raise Conflict(f"settlement {settlement_id} kept changing; will try again", code="CONFLICT")
    continued = not outcome.complete
    first_structure = unit.structures[0].id if unit.structures else None
    job_type, payload = timer_job(ctx.services.registry, settlement_id, first_structure)
    if continued:
        def follow_up():
            ctx.send_job(ctx.job_type, ctx.payload.model_dump(), campaign_id=campaign,
                         idempotency_key=f"{ctx.job_id}:continue")
    elif outcome.next_due_ms is not None and job_type is not None:
        def follow_up():
            ctx.replace_timer(unit_key(settlement_id), job_type, payload,
                              due_ms=outcome.next_due_ms, clock=clock.clock, campaign_id=campaign)
    else:
        follow_up = _nothing
    return {"outcome": "simulated", "settlementId": settlement_id, "clock": clock.clock,
            "until": iso(clock.now_ms), "occurrences": outcome.occurrences,
            "written": [w["id"] for w in writes],
            "nextDue": iso(outcome.next_due_ms) if outcome.next_due_ms is not None else None,
            "warnings": [w["message"] for w in outcome.warnings], "steps": outcome.steps,
            "continued": continued}, follow_up


def _nothing() -> None:
    pass


def _due_world_time(ctx) -> int | None:
    """The world time this job was due at (a unit timer), which the clock has reached."""
    (due,) = ctx.services.jobs.get_internal(ctx.job_id, "runAtWorldTime")
    try:
        return int(due) if due else None
    except ValueError:
        return None


def _time_limit_ms(services, job_type: str) -> int:
    jt = services.registry.job_types.get(job_type)
    return (jt.time_limit_ms if jt and jt.time_limit_ms else services.settings.job_time_limit_ms)


def campaign_units(api, campaign_id: str) -> list[Unit]:
    """Every unit of a campaign, from two paged listings (no call per unit)."""
    by_settlement = defaultdict(list)
    for structure in api.iter_structures(campaign_id):
        by_settlement[structure.settlement_id].append(structure_entity(structure))
    return [Unit(settlement_entity(s), by_settlement.get(s.id, []))
            for s in api.iter_settlements(campaign_id)]


def recalculate_campaign(ctx) -> dict:
    """Place every unit's timer of the job's campaign (``SYSTEM``: one job per campaign).

    Each unit is simulated in memory to find its next due time (nothing is written here):
    a unit with something already due gets a timer due now, so its unit job catches up.
    """
    if ctx.campaign_id == "SYSTEM":
        return _fan_out(ctx)
    clock = ctx.campaign_time()
    placed, due_now = 0, 0
    warnings = Counter()
    registry = ctx.services.registry
    for unit in campaign_units(ctx.api, ctx.campaign_id):
        outcome = simulate(unit, registry.rules, clock.now_ms, ctx.settings.simulation_max_steps)
        for w in outcome.warnings:
            warnings[w["rule"]] += 1
        first = unit.structures[0].id if unit.structures else None
        job_type, payload = timer_job(registry, unit.settlement.id, first)
        if job_type is None:
            continue
        if outcome.changes:  # something to apply already: its unit job runs now
            ctx.send_job(job_type, payload, idempotency_key=f"{ctx.job_id}:{unit.settlement.id}")
            due_now += 1
        elif outcome.next_due_ms is not None:
            ctx.replace_timer(unit_key(unit.settlement.id), job_type, payload,
                              due_ms=outcome.next_due_ms, clock=clock.clock)
            placed += 1
    return {"campaignId": ctx.campaign_id, "timersPlaced": placed, "dueNow": due_now,
            "clock": clock.clock, "warningsByRule": dict(warnings)}


def _fan_out(ctx) -> dict:
    campaigns = ctx.api.campaigns(use_cache=False)
    for campaign in campaigns:
        ctx.send_job(ctx.job_type, {}, campaign_id=campaign.id,
                     idempotency_key=f"{ctx.job_type}:{ctx.job_id}:{campaign.id}")
    return {"campaigns": len(campaigns)}


#: Variables a preview reports for each kind of entity (beside ``level``).
PREVIEWED = {"settlement": ("population", "resources"),
             "structure": ("health", "isOperational", "upgradeAvailable",
                           "constructionCompletedAt")}


def _entity_preview(before: Entity, after: Entity) -> dict:
    shown = {"id": after.id}
    if after.type is not None:
        shown["type"] = after.type
    if before.level != after.level:
        shown["level"] = {"from": before.level, "to": after.level}
    for name in PREVIEWED[after.kind]:
        old, new = before.variables.get(name), after.variables.get(name)
        if old != new:
            shown[name] = {"from": old, "to": new}
    return shown


def preview_unit(unit: Unit, rules, until_ms: int, max_steps: int) -> dict:
    """What bringing ``unit`` up to ``until_ms`` would change; nothing is written."""
    outcome = simulate(unit, rules, until_ms, max_steps)
    before = {e.id: e for e in [unit.settlement, *unit.structures]}
    structures = [_entity_preview(before[s.id], s) for s in outcome.unit.structures]
    return {"settlementId": unit.settlement.id,
            "settlement": _entity_preview(unit.settlement, outcome.unit.settlement),
            "structures": [s for s in structures if len(s) > 2 or "level" in s],
            "occurrences": outcome.occurrences,
            "warnings": [w["message"] for w in outcome.warnings],
            "complete": outcome.complete}
