"""Value objects that plugins return from their hooks, and the context a handler gets.

All of them are frozen dataclasses: a plugin describes what it contributes, and the core
decides how to run it (which Dramatiq actor, which queue, which timer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict

from .context import JobHelpers

#: Priority of a job whose type names none (the upstream NORMAL).
DEFAULT_PRIORITY = 5
#: Lowest and highest priorities; higher runs first.
MIN_PRIORITY, MAX_PRIORITY = 0, 10

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_SWEEP_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_CRON_VAR_RE = re.compile(r"^CRON_[A-Z0-9_]+$")


class EmptyPayload(BaseModel):
    """The payload of job types that take none: ``{}`` and nothing else."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class JobType:
    """A kind of job a plugin knows how to run.

    Attributes:
        name: upper-case identifier (``DEFERRED_EFFECT``), unique across all plugins.
        handler: ``handler(ctx: JobContext) -> dict | None``; what it returns is the job's result.
        payload_model: a pydantic model; payloads are validated against it on the REST API
            and again before each run.
        description: one or two sentences for ``GET /job-types`` and the docs.
        priority: default priority, 0-10, higher first.
        max_retries: retries before the job is dead-lettered; ``None`` takes ``QUEUE_MAX_RETRIES``.
        time_limit_ms: limit of one attempt; ``None`` takes ``JOB_TIME_LIMIT_MS``.
        campaign_scoped: the job works on its campaign's data in the main API, so the REST
            API refuses a ``campaignId`` the API does not know (``SYSTEM`` stays allowed).
            False for jobs that only carry a campaign id as a label (``PING``).
        plugin: filled in by the registry with the name of the plugin that registered it.
    """

    name: str
    handler: Callable[["JobContext"], Any]
    payload_model: type[BaseModel] = EmptyPayload
    description: str = ""
    priority: int = DEFAULT_PRIORITY
    max_retries: int | None = None
    time_limit_ms: int | None = None
    campaign_scoped: bool = True
    plugin: str = ""

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f"job type name {self.name!r} must be UPPER_SNAKE_CASE")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"job type {self.name}: priority must be 0-10, got {self.priority}")
        if not isinstance(self.payload_model, type) or not issubclass(self.payload_model, BaseModel):
            raise ValueError(f"job type {self.name}: payload_model must be a pydantic model class")


@dataclass(frozen=True)
class Sweep:
    """A periodic sweep: on each cron tick the cron leader enqueues one job.

    Attributes:
        name: kebab-case name (``event-expiration``), unique across plugins.
        job_type: the job type enqueued on each tick.
        cron: default cron expression, in UTC (five fields, or six with seconds first).
        env_var: environment variable that overrides ``cron`` (``CRON_EVENT_EXPIRATION``).
        description: one sentence for the docs and ``GET /schedules``.
        campaign_id: campaign of the enqueued job; ``SYSTEM`` means every campaign.
        payload: payload of the enqueued job.
        run_on_first_start: when no leader has ever run the sweep, the first leader runs its
            latest tick at once instead of waiting for the next (a new deployment places
            every unit's timer without waiting for the top of the hour).
    """

    name: str
    job_type: str
    cron: str
    env_var: str
    description: str = ""
    campaign_id: str = "SYSTEM"
    payload: Mapping[str, Any] = field(default_factory=dict)
    run_on_first_start: bool = False
    plugin: str = ""

    def __post_init__(self):
        from .cron.expr import cron_error

        if not _SWEEP_NAME_RE.match(self.name) or len(self.name) > 64:
            raise ValueError(f"sweep name {self.name!r} must be kebab-case (event-expiration)")
        if not _CRON_VAR_RE.match(self.env_var):
            raise ValueError(f"sweep {self.name}: env_var {self.env_var!r} must look like CRON_NAME")
        error = cron_error(self.cron)
        if error:
            raise ValueError(f"sweep {self.name}: default cron {self.cron!r} {error}")


@dataclass(frozen=True)
class Reaction:
    """What a plugin does when the main API publishes a campaign message.

    Attributes:
        name: unique name, for logs and metrics.
        event: ``worldTimeAdvanced`` or ``entityModified``.
        handler: ``handler(message: dict, ctx: ReactionContext) -> None``; it must be idempotent
            and should only enqueue jobs.
    """

    name: str
    event: str
    handler: Callable[..., Any]
    description: str = ""
    plugin: str = ""

    def __post_init__(self):
        if self.event not in ("worldTimeAdvanced", "entityModified"):
            raise ValueError(f"reaction {self.name}: unknown event {self.event!r}")


@dataclass(frozen=True)
class Rule:
    """A simulation rule of a settlement unit (see :mod:`scheduler_service.simulation`).

    A rule works on one kind of entity of the unit (the settlement, or each structure). It is
    *recurring* when it has ``interval`` (due at its bookkeeping time plus the interval) or
    *one-shot* when it has ``due`` (due when that says). Every callable takes the entity and
    the whole unit (a :class:`~scheduler_service.simulation.Entity` and
    :class:`~scheduler_service.simulation.Unit`), reads variables through the entity's
    checked getters, and raises :class:`~scheduler_service.simulation.BadVariable` for a
    variable of the wrong type (the rule is then skipped for that entity, with a warning).
    ``applies``, ``interval`` and ``due`` read only the entity itself (its variables and
    level); ``step`` may change the entity and the unit's settlement, nothing else. The engine
    relies on both to recompute only what a step can have moved.

    Attributes:
        name: upper-case identifier (``POPULATION_GROWTH``), unique across plugins.
        entity: ``settlement`` or ``structure``.
        order: tie-break order when occurrences fall due at the same time (lower first).
        bookkeeping: the variable holding the due time of the last occurrence applied.
        applies: ``applies(entity, unit) -> bool``: whether the rule runs for the entity now.
        step: ``step(entity, unit, due_ms)``: apply one occurrence (changing the unit's
            entities in place); the engine then sets ``bookkeeping`` to the due time.
        interval: ``interval(entity, unit) -> minutes`` of a recurring rule.
        due: ``due(entity, unit) -> epoch ms or None`` of a one-shot rule.
        description: one sentence for the docs.
    """

    name: str
    entity: str
    order: int
    bookkeeping: str
    applies: Callable[..., bool]
    step: Callable[..., Any]
    interval: Callable[..., float] | None = None
    due: Callable[..., int | None] | None = None
    description: str = ""
    plugin: str = ""

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f"rule name {self.name!r} must be UPPER_SNAKE_CASE")
        if self.entity not in ("settlement", "structure"):
            raise ValueError(f"rule {self.name}: entity must be settlement or structure")
        if (self.interval is None) == (self.due is None):
            raise ValueError(f"rule {self.name}: give interval (recurring) or due (one-shot)")


@dataclass(frozen=True)
class HealthStatus:
    """Result of one health check: ``up``, ``degraded`` or ``down`` with a message."""

    status: str
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    """A component of ``/health``.

    Attributes:
        name: the key under ``components``.
        check: ``check(services) -> HealthStatus``; an exception counts as ``down``.
        critical: when down, a critical component makes the service ``unhealthy`` (503);
            a non-critical one only ``degraded``.
    """

    name: str
    check: Callable[..., HealthStatus]
    critical: bool = True
    plugin: str = ""


@dataclass(frozen=True)
class JobContext(JobHelpers):
    """What a handler is given to do its work (plugins: see
    :class:`~scheduler_service.context.JobContextProtocol` for what to rely on).

    Attributes:
        job_id: the job's id (stable across retries and redeliveries).
        job_type: the job type's name.
        campaign_id: the campaign, or ``SYSTEM``.
        payload: the validated payload (an instance of the job type's model).
        attempt: 1 on the first run, 2 on the first retry, and so on.
        services: the process's shared services; the core's own handlers use them, a
            plugin uses the helpers instead (``api``, ``send_job``, ``campaign_time``...).
    """

    job_id: str
    job_type: str
    campaign_id: str
    payload: BaseModel
    attempt: int
    services: Any
