"""The simulation engine: one settlement with its structures, brought up to a clock.

Pure: ``simulate(unit, rules, now_ms)`` reads nothing but its arguments and returns the
new state, the occurrences applied, the warnings and the next due time. The rules come
from plugins (``register_rules``); the settlement and structure rules of RULES.md live in
``plugins/settlements`` and ``plugins/structures``.

It is a discrete-event simulation (RULES.md, "The unit of simulation"):

1. every applicable recurring rule whose bookkeeping variable is missing starts its cadence
   at the clock (first sight: nothing is applied retroactively);
2. the earliest due occurrence over all rules and entities is applied, each due time
   computed from the unit's *current* state; ties go by rule order, then structure id
   (the settlement first);
3. its bookkeeping variable is set to its due time (never to the clock, so the cadence
   does not drift), and so on until nothing is due at or before the clock, or
   ``max_steps`` occurrences were applied (the caller then continues in a new job).

Because each occurrence depends only on the state before it and its own due time, one
advance to T2 and two advances to T1 then T2 end in the same state (path independence), and
a second run at the same clock applies nothing (idempotence).
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from .times import iso_ms, parse_iso_ms

#: Occurrences one job applies at most before it writes back and continues in a new job.
DEFAULT_MAX_STEPS = 100_000


class BadVariable(Exception):
    """A variable of the wrong type or out of range; the rule is skipped for that entity.

    Attributes:
        variable: the variable's name.
        value: what it held.
        reason: what it should be.
        entity: the entity that holds it, when not the one the rule runs for (a structure's
            rule reading its settlement's resources).
    """

    def __init__(self, variable: str, value: Any, reason: str, entity: "Entity | None" = None):
        super().__init__(f"{variable} {reason}, got {value!r}")
        self.variable = variable
        self.value = value
        self.reason = reason
        self.entity = entity


#: Bookkeeping texts already parsed (text -> epoch ms): a unit's simulation reads each one
#: many times, and writes each due time once (see :func:`iso`).
_PARSED: dict[str, int] = {}


#: Due times already formatted (epoch ms -> text): units on the same cadence share them.
_FORMATTED: dict[int, str] = {}


def iso(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC with milliseconds (how bookkeeping times are written)."""
    text = _FORMATTED.get(ms)
    if text is not None:
        return text
    text = iso_ms(ms)
    if len(_FORMATTED) > 100_000:
        _FORMATTED.clear()
    _FORMATTED[ms] = text
    if len(_PARSED) <= 100_000:
        _PARSED[text] = ms
    return text


def parse_time(text: Any, variable: str) -> int:
    """An ISO-8601 time with an offset as epoch ms.

    Raises:
        BadVariable: it is not such a string.
    """
    try:
        return parse_iso_ms(text)
    except ValueError:
        raise BadVariable(variable, text, "must be an ISO-8601 time with an offset") from None


def minutes_ms(minutes: float) -> int:
    """Minutes of the campaign clock as whole milliseconds, rounded to the nearest."""
    return int(round(minutes * 60_000))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Entity:
    """A settlement or a structure of the unit, as the simulation changes it.

    Attributes:
        kind: ``settlement`` or ``structure``.
        id: its id in the main API.
        level: its ``level``.
        variables: its typed variables (a working copy).
        version: the optimistic-lock version it was read at.
        type: a structure's type (``temple``...); None for the settlement.
    """

    kind: str
    id: str
    level: int
    variables: dict
    version: int = 0
    type: str | None = None

    # -- checked getters: a wrong type raises BadVariable naming the variable ------------

    def number(self, name: str, default: float, *, minimum: float | None = None,
               positive: bool = False) -> float:
        """A JSON number (not a boolean), ``default`` when missing or null."""
        value = self.variables.get(name)
        if value is None:
            return default
        if not _is_number(value):
            raise BadVariable(name, value, "must be a number", self)
        if positive and value <= 0:
            raise BadVariable(name, value, "must be a number above 0", self)
        if minimum is not None and value < minimum:
            raise BadVariable(name, value, f"must be a number of at least {minimum}", self)
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        """A whole JSON number (``120`` or ``120.0``), ``default`` when missing or null."""
        value = self.number(name, default, minimum=minimum)
        if value != int(value):
            raise BadVariable(name, value, "must be a whole number", self)
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        """A JSON boolean, ``default`` when missing or null."""
        value = self.variables.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise BadVariable(name, value, "must be true or false", self)
        return value

    def amounts(self, name: str, default: dict | None = None) -> dict[str, float]:
        """A map of names to numbers (resources, costs), ``default`` (or ``{}``) when missing."""
        value = self.variables.get(name)
        if value is None:
            return dict(default or {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and _is_number(v)
                                                  for k, v in value.items()):
            raise BadVariable(name, value, "must be a map of names to numbers", self)
        return dict(value)

    def names(self, name: str, default: Iterable[str]) -> list[str]:
        """A list of strings, ``default`` when missing."""
        value = self.variables.get(name)
        if value is None:
            return list(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadVariable(name, value, "must be a list of names", self)
        return list(value)

    def time(self, name: str) -> int | None:
        """An ISO-8601 time as epoch ms, None when missing (parsed once per distinct text)."""
        value = self.variables.get(name)
        if value is None:
            return None
        parsed = _PARSED.get(value) if isinstance(value, str) else None
        if parsed is not None:
            return parsed
        try:
            parsed = parse_time(value, name)
        except BadVariable as e:
            raise BadVariable(name, value, e.reason, self) from None
        if len(_PARSED) > 100_000:
            _PARSED.clear()
        _PARSED[value] = parsed
        return parsed


@dataclass
class Unit:
    """A settlement and its structures (sorted by id), simulated together."""

    settlement: Entity
    structures: list[Entity] = field(default_factory=list)

    def __post_init__(self):
        self.structures.sort(key=lambda s: s.id)

    def entities(self, kind: str) -> list[Entity]:
        return [self.settlement] if kind == "settlement" else self.structures

    def copy(self) -> "Unit":
        return copy.deepcopy(self)


@dataclass
class Outcome:
    """What :func:`simulate` did.

    Attributes:
        unit: the new state.
        occurrences: occurrences applied, by rule name.
        warnings: one per (rule, entity) skipped for a bad variable:
            ``{"rule", "entity", "id", "variable", "value", "message"}``.
        next_due_ms: the earliest due time after the clock (None when no rule will fall due).
        steps: occurrences applied in all.
        complete: False when ``max_steps`` stopped it before the clock was reached.
        changes: per entity id, what to write back: ``{"kind", "level"?, "variables"}``
            holding only the keys whose values changed (absolute values).
    """

    unit: Unit
    occurrences: dict[str, int]
    warnings: list[dict]
    next_due_ms: int | None
    steps: int
    complete: bool
    changes: dict[str, dict]


def _due(rule, entity: Entity, unit: Unit) -> int | None:
    """When the rule is next due for the entity, from the current state (None: never)."""
    if not rule.applies(entity, unit):
        return None
    if rule.due is not None:
        return rule.due(entity, unit)
    last = entity.time(rule.bookkeeping)
    if last is None:
        return None  # first sight is handled by the engine
    minutes = rule.interval(entity, unit)
    if not _is_number(minutes) or minutes <= 0:
        raise BadVariable(f"{rule.name} interval", minutes, "must be a number of minutes above 0")
    return last + minutes_ms(minutes)


def simulate(unit: Unit, rules, now_ms: int, max_steps: int = DEFAULT_MAX_STEPS) -> Outcome:
    """Bring ``unit`` up to the clock ``now_ms``; see the module's description.

    Args:
        unit: the unit as read (it is not changed; the outcome holds a new one).
        rules: the registered rules (any order; they are sorted by ``order``).
        now_ms: the campaign clock in epoch ms.
        max_steps: occurrences applied at most.
    """
    original = unit
    unit = unit.copy()
    rules = sorted(rules, key=lambda r: r.order)
    skipped: dict[tuple[str, str], dict] = {}
    occurrences: Counter = Counter()

    def skip(rule, entity, error: BadVariable):
        holder = error.entity or entity
        skipped[(rule.name, entity.id)] = {
            "rule": rule.name, "entity": entity.kind, "id": entity.id,
            "variable": error.variable, "value": error.value,
            "message": f"{rule.name} skipped for {entity.kind} {entity.id}: "
                       f"{holder.kind} {holder.id}'s {error}"}

    pairs = [(rule, entity) for rule in rules for entity in unit.entities(rule.entity)]
    of_entity: dict[str, list[int]] = {}
    for index, (_, entity) in enumerate(pairs):
        of_entity.setdefault(entity.id, []).append(index)
    dues: list[tuple | None] = [None] * len(pairs)

    def refresh(indices) -> None:
        """Recompute the due keys of these (rule, entity) pairs from the current state."""
        for index in indices:
            rule, entity = pairs[index]
            dues[index] = None
            if (rule.name, entity.id) in skipped:
                continue
            try:
                due = _due(rule, entity, unit)
            except BadVariable as e:
                skip(rule, entity, e)
                continue
            if due is not None:
                dues[index] = (due, rule.order, entity.kind != "settlement", entity.id)

    def first_sight(at_ms: int) -> set[str]:
        """Start the cadence of applicable recurring rules that have none; returns the ids of
        the entities it changed."""
        changed = set()
        for rule, entity in pairs:
            if rule.interval is None or (rule.name, entity.id) in skipped \
                    or rule.bookkeeping in entity.variables:
                continue
            try:
                if rule.applies(entity, unit):
                    entity.variables[rule.bookkeeping] = iso(at_ms)
                    changed.add(entity.id)
            except BadVariable as e:
                skip(rule, entity, e)
        return changed

    def earliest(limit_ms: int | None):
        candidates = [(key, i) for i, key in enumerate(dues)
                      if key is not None and (limit_ms is None or key[0] <= limit_ms)]
        if not candidates:
            return None
        key, index = min(candidates)
        return key, pairs[index][0], pairs[index][1]

    first_sight(now_ms)
    refresh(range(len(pairs)))
    steps = 0
    complete = True
    while True:
        found = earliest(now_ms)
        if found is None:
            break
        if steps >= max_steps:
            complete = False
            break
        (due, *_), rule, entity = found
        try:
            rule.step(entity, unit, due)
        except BadVariable as e:
            skip(rule, entity, e)
            refresh(of_entity[entity.id])
            continue
        entity.variables[rule.bookkeeping] = iso(due)
        occurrences[rule.name] += 1
        steps += 1
        # A step changes its own entity and perhaps the settlement (a structure spends its
        # resources); dues are read from an entity's own state only (see Rule), so only
        # theirs can have moved.
        touched = {entity.id, unit.settlement.id} | first_sight(due)
        refresh(i for entity_id in touched for i in of_entity.get(entity_id, ()))
    upcoming = earliest(None) if complete else found
    next_due = None if upcoming is None else upcoming[0][0]
    return Outcome(unit=unit, occurrences=dict(occurrences), warnings=list(skipped.values()),
                   next_due_ms=next_due, steps=steps, complete=complete,
                   changes=changes_between(original, unit))


def changes_between(before: Unit, after: Unit) -> dict[str, dict]:
    """Per entity id, the level and the variables that differ (absolute new values)."""
    out = {}
    old = {e.id: e for e in [before.settlement, *before.structures]}
    for entity in [after.settlement, *after.structures]:
        previous = old.get(entity.id)
        if previous is None:
            continue
        variables = {k: v for k, v in entity.variables.items()
                     if k not in previous.variables or previous.variables[k] != v
                     or type(previous.variables[k]) is not type(v)}
        change = {"kind": entity.kind, "variables": variables}
        if entity.level != previous.level:
            change["level"] = entity.level
        if variables or "level" in change:
            out[entity.id] = change
    return out
