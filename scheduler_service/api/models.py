"""What the API client returns: small frozen dataclasses, one per GraphQL type.

Field names are the snake_case names of the generated sgqlc types (``current_world_time``
for ``currentWorldTime``), and each operation selects exactly these fields, so a field added
here that the contract lacks fails at import time. ``DateTime`` values are timezone-aware
:class:`~datetime.datetime` objects in UTC; ``JSON`` values are plain dicts, lists and
scalars; lists are tuples. Callers never see sgqlc or ``requests`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Key of ``EffectExecution.context`` under which the scheduler records its job id.
SCHEDULER_JOB_ID_KEY = "schedulerJobId"


@dataclass(frozen=True)
class Campaign:
    """A campaign; ``current_world_time`` is None when it has no world clock yet."""

    id: str
    name: str
    current_world_time: datetime | None
    is_active: bool
    settings: Any


@dataclass(frozen=True)
class Settlement:
    """A settlement; ``version`` is the optimistic-lock version to pass back on update."""

    id: str
    kingdom_id: str
    campaign_id: str
    name: str
    level: int
    variables: dict
    version: int


@dataclass(frozen=True)
class Structure:
    """A structure of a settlement."""

    id: str
    settlement_id: str
    campaign_id: str
    type: str
    name: str
    level: int
    variables: dict
    version: int


@dataclass(frozen=True)
class Event:
    """A campaign event; ``scheduled_at`` and ``occurred_at`` are world times."""

    id: str
    campaign_id: str
    name: str
    event_type: str
    scheduled_at: datetime | None
    occurred_at: datetime | None
    is_completed: bool
    variables: Any
    version: int


@dataclass(frozen=True)
class EffectExecution:
    """One recorded execution of an effect; ``context`` is what was passed to executeEffect."""

    id: str
    effect_id: str
    executed_at: datetime
    executed_by: str | None
    context: Any
    result: Any
    error: str | None

    @property
    def scheduler_job_id(self) -> str | None:
        """The scheduler job that ran this execution, when it was one."""
        if isinstance(self.context, dict):
            value = self.context.get(SCHEDULER_JOB_ID_KEY)
            return str(value) if value is not None else None
        return None


@dataclass(frozen=True)
class Effect:
    """An effect with its executions, oldest first; ``timing`` is PRE, ON_RESOLVE or POST."""

    id: str
    name: str
    effect_type: str
    payload: Any
    entity_type: str
    entity_id: str
    timing: str
    priority: int
    is_active: bool
    version: int
    executions: tuple[EffectExecution, ...]

    def execution_for_job(self, job_id: str) -> EffectExecution | None:
        """The execution recorded by scheduler job ``job_id``, if any (the idempotency check)."""
        for execution in self.executions:
            if execution.scheduler_job_id == job_id:
                return execution
        return None


@dataclass(frozen=True)
class EffectExecutionResult:
    """The outcome of executeEffect; ``execution_id`` is None in a dry run."""

    success: bool
    patch_applied: Any
    error: str | None
    execution_id: str | None
    affected_fields: tuple[str, ...] | None

    @classmethod
    def of_execution(cls, execution: "EffectExecution") -> "EffectExecutionResult":
        """The result an executeEffect call gave, rebuilt from the execution it recorded."""
        result = execution.result if isinstance(execution.result, dict) else {}
        fields = result.get("affectedFields")
        return cls(success=execution.error is None, patch_applied=result.get("patchApplied"),
                   error=execution.error, execution_id=execution.id,
                   affected_fields=tuple(fields) if isinstance(fields, list) else None)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a connection query; pass ``end_cursor`` as ``after`` for the next one."""

    nodes: tuple[T, ...]
    has_next_page: bool
    end_cursor: str | None


def field_names(model: type) -> tuple[str, ...]:
    """The dataclass field names of ``model``, in declaration order."""
    return tuple(f.name for f in fields(model))


#: Fields of a model that hold nested models rather than scalars.
NESTED = {Effect: {"executions": EffectExecution}}
#: GraphQL list fields returned as tuples (JSON values stay as decoded).
TUPLES = {EffectExecutionResult: {"affected_fields"}}


def scalar_field_names(model: type) -> tuple[str, ...]:
    """The fields of ``model`` that are selected as plain values."""
    nested = NESTED.get(model, {})
    return tuple(name for name in field_names(model) if name not in nested)


def from_sgqlc(model: type[T], obj) -> T | None:
    """Build ``model`` from an interpreted sgqlc object (None stays None)."""
    if obj is None:
        return None
    values = {}
    nested = NESTED.get(model, {})
    tuples = TUPLES.get(model, ())
    for name in field_names(model):
        value = getattr(obj, name)
        if name in nested:
            value = tuple(from_sgqlc(nested[name], item) for item in value)
        elif name in tuples and value is not None:
            value = tuple(value)
        values[name] = value
    return model(**values)
