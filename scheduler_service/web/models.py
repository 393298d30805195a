"""Request and response models of the REST API, declared once.

The same classes validate requests and generate the OpenAPI document
(:mod:`scheduler_service.web.openapi`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from ..jobstore import STATES, parse_iso_ms

JobState = Literal["scheduled", "queued", "running", "succeeded", "failed", "dead", "cancelled"]
assert set(JobState.__args__) == set(STATES)  # noqa: S101 - keep the two lists in step


#: Formats of the ids the API takes, in paths, bodies and filters (the OpenAPI document
#: gives them as the patterns of its parameters). A job or recurring job id is a UUID (as
#: the service writes it, lower case); a campaign id is the main API's id, without ``:``,
#: ``/``, spaces or control characters, so that it can never reach into another key.
JOB_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CAMPAIGN_ID = r"^[A-Za-z0-9][A-Za-z0-9._~=-]{0,127}$"
JOB_TYPE = r"^[A-Z][A-Z0-9_]{0,63}$"
SWEEP_NAME = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
CURSOR = r"^\d{1,16}:[0-9a-f-]{36}$"


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def omittable(**kwargs):
    """A field a change may leave out but not set to null: absent from the document's
    ``required`` list, with no ``null`` in its type (and no ``default: null`` shown)."""
    return Field(default=None, json_schema_extra=_no_default, **kwargs)


def _check_timestamp(value):
    if value is None:
        return value
    try:
        parse_iso_ms(value)
    except (ValueError, TypeError) as e:
        raise ValueError("must be an ISO-8601 timestamp with an offset, e.g. 2026-03-01T12:00:00Z, "
                         "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC "
                         f"({e})") from None
    return value


class _Strict(BaseModel):
    """A request body: no unknown fields, and JSON types taken as they are (``"5"`` or
    ``true`` is not a number, ``1`` is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Query(BaseModel):
    """A query string: every value arrives as text, so numbers are parsed from it."""

    model_config = ConfigDict(extra="forbid")


class CreateJob(_Strict):
    """A job to create. With neither ``runAt`` nor ``runAtWorldTime`` it is due now."""

    type: str = Field(min_length=1, max_length=64, description="A registered job type name.")
    campaignId: str = Field(min_length=1, max_length=128, pattern=CAMPAIGN_ID,
                            description='The campaign, or "SYSTEM" for every campaign.')
    payload: dict[str, Any] = Field(default_factory=dict,
                                    description="Validated against the job type's payload schema.")
    priority: Optional[StrictInt] = Field(default=None, ge=0, le=10,
                                          description="0-10, higher first; the job type's default "
                                                      "when omitted.")
    runAt: Optional[str] = Field(default=None, description="Wall-clock due time (ISO-8601 with offset).")
    runAtWorldTime: Optional[str] = Field(default=None,
                                          description="Due time on the campaign's world clock (ISO-8601).")
    idempotencyKey: Optional[str] = Field(default=None, min_length=1, max_length=200,
                                          description="A second create with this key returns the first job.")

    _times = field_validator("runAt", "runAtWorldTime")(_check_timestamp)

    @model_validator(mode="after")
    def _one_clock(self):
        if self.runAt is not None and self.runAtWorldTime is not None:
            raise ValueError("give runAt or runAtWorldTime, not both")
        if self.runAtWorldTime is not None and self.campaignId == "SYSTEM":
            raise ValueError("runAtWorldTime needs a campaign with a world clock, not SYSTEM")
        return self


class PatchJob(_Strict):
    """Changes to a scheduled job: its due time and/or priority. A field left out (or
    null) stays as it is; ``{}`` changes nothing and answers the job as it is."""

    runAt: Optional[str] = Field(default=None, description="New wall-clock due time.")
    runAtWorldTime: Optional[str] = Field(default=None, description="New world-clock due time.")
    priority: Optional[StrictInt] = Field(default=None, ge=0, le=10, description="New priority.")

    _times = field_validator("runAt", "runAtWorldTime")(_check_timestamp)

    @model_validator(mode="after")
    def _one_clock(self):
        if self.runAt is not None and self.runAtWorldTime is not None:
            raise ValueError("give runAt or runAtWorldTime, not both")
        return self

    def changes_nothing(self) -> bool:
        return self.runAt is None and self.runAtWorldTime is None and self.priority is None


class RequeueDeadLetter(_Strict):
    """Optional corrected payload for a dead-letter replay."""

    payload: Optional[dict[str, Any]] = Field(default=None,
                                              description="Replaces the payload; validated like a create.")


class ListJobsQuery(_Query):
    """Filters and paging of ``GET /jobs``."""

    state: Optional[JobState] = None
    type: Optional[str] = Field(default=None, pattern=JOB_TYPE)
    campaignId: Optional[str] = Field(default=None, pattern=CAMPAIGN_ID)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Optional[str] = Field(default=None, pattern=CURSOR)


class Job(BaseModel):
    """A job record."""

    id: str
    type: str
    campaignId: str
    payload: dict[str, Any]
    priority: int
    state: JobState
    runAt: Optional[str]
    runAtWorldTime: Optional[str]
    attempts: int
    lastError: Optional[str]
    result: Optional[Any]
    createdAt: str
    updatedAt: str
    idempotencyKey: Optional[str] = None


class JobList(BaseModel):
    """A page of jobs; pass ``nextCursor`` as ``cursor`` for the next page."""

    items: list[Job]
    nextCursor: Optional[str]


class Transition(BaseModel):
    """One entry of a job's history."""

    at: str
    from_: Optional[str] = Field(alias="from")
    to: str
    detail: str


class JobHistory(BaseModel):
    """Every transition of a job, oldest first."""

    id: str
    items: list[Transition]


class JobTypeInfo(BaseModel):
    """A registered job type."""

    name: str
    plugin: str
    description: str
    payloadSchema: dict[str, Any]
    defaultPriority: int
    maxRetries: int
    timeLimitMs: int
    campaignScoped: bool = Field(description="Whether a create checks that the campaign exists "
                                             "in the main API.")


class JobTypeList(BaseModel):
    items: list[JobTypeInfo]


class ErrorDetail(BaseModel):
    field: Optional[str]
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class Error(BaseModel):
    """Every error response."""

    error: ErrorBody


# -- schedules ------------------------------------------------------------------------

class LastRun(BaseModel):
    """The last run of a sweep: a tick, a skipped tick, a missed tick or a manual run."""

    start: str = Field(description="When the run started (ISO-8601 UTC).")
    durationMs: float
    outcome: Literal["enqueued", "duplicate", "skipped", "failed", "missed"]
    error: Optional[str] = Field(description="Why it failed, when it did.")
    tick: Optional[str] = Field(description="The cron tick it stood for; null for a manual run.")
    jobId: Optional[str] = Field(description="The job it enqueued, if any.")
    trigger: Optional[Literal["cron", "catch-up", "manual"]]
    detail: Optional[str] = Field(description="Why a tick was skipped or missed.")


class Schedule(BaseModel):
    """A periodic sweep and its live state."""

    name: str
    plugin: str
    description: str
    jobType: str = Field(description="The job type each tick enqueues.")
    campaignId: str
    cron: str = Field(description="The expression in force (UTC).")
    cronSource: Literal["api", "env", "default"] = Field(
        description="Where it comes from: changed over this API, the environment variable, "
                    "or the sweep's default.")
    defaultCron: str
    envVar: str = Field(description="The environment variable that overrides the default.")
    enabled: bool
    overlap: Literal["skip", "allow"] = Field(
        description="skip: a tick is skipped while the previous tick's job is unfinished.")
    nextRun: Optional[str] = Field(description="Next tick; null while disabled.")
    lastRun: Optional[LastRun]


class ScheduleDetail(Schedule):
    """A sweep with its next five ticks."""

    nextRuns: list[str]


class ScheduleList(BaseModel):
    """Every registered sweep."""

    items: list[Schedule]


class PatchSchedule(_Strict):
    """Changes to a sweep; each is recorded in its history with the ``X-Actor`` header.
    A field left out stays as it is; ``{}`` changes nothing."""

    enabled: StrictBool = omittable(description="Turn its ticks on or off (not null).")
    cron: Optional[str] = Field(default=None, max_length=200,
                                description="A new expression (five fields, or six with seconds "
                                            "first, UTC); null goes back to the configured one.")
    overlap: Literal["skip", "allow"] = omittable(description="skip or allow (not null).")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value):
        from ..cron.expr import cron_error

        if value is not None:
            error = cron_error(value)
            if error:
                raise ValueError(f"not a valid cron expression: {error}")
        return value



class ScheduleChange(BaseModel):
    """One entry of a sweep's history."""

    at: str
    field: str = Field(description="enabled, cron, overlap, or run (a manual run).")
    from_: Any = Field(alias="from")
    to: Any
    actor: str = Field(description="The X-Actor header of the request, else api (or the "
                                   "console's user).")


class ScheduleHistory(BaseModel):
    """Every change of a sweep, oldest first."""

    name: str
    items: list[ScheduleChange]


class ScheduleRun(BaseModel):
    """The job a manual run enqueued."""

    schedule: str
    job: Job


# -- world clocks ---------------------------------------------------------------------

class WorldClock(BaseModel):
    """A campaign's world clock as the scheduler remembers it, beside the API's."""

    campaignId: str
    rememberedWorldTime: Optional[str] = Field(
        description="The world time the timer pumps last reached; a job created for an earlier "
                    "world time is due at once.")
    pendingTimers: int = Field(description="Jobs waiting on this campaign's world clock.")
    nextDue: Optional[str] = Field(description="World time of the earliest waiting job.")
    apiWorldTime: Optional[str] = Field(
        default=None, description="The API's getCurrentWorldTime (one campaign only; null "
                                  "without a world clock).")
    apiStatus: Optional[Literal["ok", "unknown_campaign", "unreachable"]] = Field(
        default=None, description="Whether the API could be asked (one campaign only).")


class WorldClockList(BaseModel):
    """Every campaign with a remembered world time or waiting world timers."""

    items: list[WorldClock]


class WorldClockReset(BaseModel):
    """The clock after a reset, and what it was before."""

    previousWorldTime: Optional[str]
    clock: WorldClock


# -- campaign preview -----------------------------------------------------------------

class PreviewRequest(_Strict):
    """How far to run the campaign's clock in the preview."""

    until: str = Field(description="A time on the campaign's clock (ISO-8601 with offset), "
                                   "not before its current time.")

    _time = field_validator("until")(_check_timestamp)


class Change(BaseModel):
    """One value before and after."""

    from_: Any = Field(alias="from")
    to: Any


class EntityPreview(BaseModel):
    """What would change on one settlement or structure (only what changes is given)."""

    model_config = ConfigDict(extra="allow")
    id: str
    type: Optional[str] = None
    level: Optional[Change] = None


class UnitPreview(BaseModel):
    """One settlement with its structures."""

    settlementId: str
    settlement: EntityPreview
    structures: list[EntityPreview]
    occurrences: dict[str, int] = Field(description="Rule occurrences that would apply, by rule.")
    warnings: list[str] = Field(description="Rules that would be skipped for a bad variable.")
    complete: bool = Field(description="False when SIMULATION_MAX_STEPS would stop the unit's job "
                                       "before until (a follow-up job would finish it).")


class CampaignPreview(BaseModel):
    """What advancing the campaign's clock to ``until`` would change; nothing was written."""

    campaignId: str
    clock: Literal["world", "wall"]
    now: str = Field(description="The campaign's clock when the preview ran.")
    until: str
    unitsTotal: int
    unitsChanged: int
    truncated: bool = Field(description="More units would change than are listed.")
    units: list[UnitPreview] = Field(description="The units that would change, at most 1000.")
