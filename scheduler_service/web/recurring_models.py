"""Request and response models of the recurring-job API, declared once.

They validate requests and feed the OpenAPI document, as :mod:`.models` does for jobs.
Times of a world-clock recurring job (``startAt``, ``endAt``, occurrences) are world
times of its campaign, written like any other time (ISO-8601, UTC).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, StrictBool, StrictInt, field_validator, model_validator

from ..cron.expr import cron_error
from ..recurring.pattern import duration_error
from ..times import parse_iso_ms
from .models import CAMPAIGN_ID, CURSOR, JOB_TYPE, _check_timestamp, _Query, _Strict, omittable

Clock = Literal["wall", "world"]
CatchUp = Literal["all", "latest", "skip"]
RecurringState = Literal["active", "paused", "ended", "cancelled"]

_CLOCK = ("wall: real UTC time; world: the campaign's world clock (its times are world "
          "times, read as UTC)")
_CATCH_UP = ("When several occurrences are due at once (a world-clock jump, a wall-clock "
             "outage): all creates each, oldest first; latest only the newest; skip none. "
             "A single due occurrence is always created.")
_WINDOW = ("ISO-8601 duration on the recurrence's clock: occurrences older than this when "
           "their timer fires are skipped under every policy (like Temporal's catch-up "
           "window). Unset keeps them all.")


def _valid_cron(value):
    if value is not None:
        error = cron_error(value)
        if error:
            raise ValueError(f"not a valid cron expression: {error}")
    return value


def _valid_duration(value):
    if value is not None:
        error = duration_error(value)
        if error:
            raise ValueError(f"not a valid ISO-8601 duration: {error}")
    return value


class CreateRecurring(_Strict):
    """A recurring job: a job of ``type`` created at each occurrence of ``cron`` or ``every``
    on its ``clock``."""

    type: str = Field(min_length=1, max_length=64, description="A registered job type name.")
    campaignId: str = Field(min_length=1, max_length=128, pattern=CAMPAIGN_ID,
                            description='The campaign, or "SYSTEM" (wall clock only).')
    payload: dict[str, Any] = Field(default_factory=dict,
                                    description="Validated against the job type's payload schema.")
    priority: Optional[StrictInt] = Field(default=None, ge=0, le=10,
                                          description="0-10, higher first; the job type's default "
                                                      "when omitted.")
    clock: Clock = Field(description=_CLOCK)
    cron: Optional[str] = Field(default=None, max_length=200,
                                description="Five fields, or six with seconds first, on its clock in UTC.")
    every: Optional[str] = Field(default=None, max_length=64,
                                 description="An ISO-8601 duration on its clock (P7D, PT1H, P1M); "
                                             "the first occurrence is at startAt, else one "
                                             "interval after the creation.")
    startAt: Optional[str] = Field(default=None,
                                   description="No occurrence before this time of its clock.")
    endAt: Optional[str] = Field(default=None, description="No occurrence after this time of its clock.")
    maxOccurrences: Optional[StrictInt] = Field(default=None, ge=1, le=1_000_000_000,
                                                description="Ends after creating this many "
                                                            "occurrences.")
    catchUp: CatchUp = Field(default="all", description=_CATCH_UP)
    catchUpWindow: Optional[str] = Field(default=None, max_length=64, description=_WINDOW)
    idempotencyKey: Optional[str] = Field(default=None, min_length=1, max_length=200,
                                          description="A second create with this key returns the "
                                                      "first recurring job.")

    _times = field_validator("startAt", "endAt")(_check_timestamp)
    _cron = field_validator("cron")(_valid_cron)
    _every = field_validator("every", "catchUpWindow")(_valid_duration)

    @model_validator(mode="after")
    def _coherent(self):
        if (self.cron is None) == (self.every is None):
            raise ValueError("give cron or every (one of them)")
        if self.clock == "world" and self.campaignId == "SYSTEM":
            raise ValueError("a world-clock recurring job needs a campaign with a world clock, "
                             "not SYSTEM")
        if self.startAt and self.endAt and parse_iso_ms(self.endAt) < parse_iso_ms(self.startAt):
            raise ValueError("endAt is before startAt")
        return self


class PatchRecurring(_Strict):
    """Changes to a recurring job. A new cron or every starts afresh from now. A field left
    out stays as it is; ``{}`` changes nothing."""

    paused: StrictBool = omittable(description="true pauses it (its pending occurrence is "
                                               "cancelled); false resumes it from now: "
                                               "occurrences that fell while paused are skipped.")
    cron: str = omittable(max_length=200, description="Replaces the pattern.")
    every: str = omittable(max_length=64, description="Replaces the pattern.")
    payload: dict[str, Any] = omittable(description="For the occurrences to come; validated.")
    priority: StrictInt = omittable(ge=0, le=10)
    endAt: Optional[str] = Field(default=None, description="A new end; null removes it.")
    maxOccurrences: Optional[StrictInt] = Field(default=None, ge=1, le=1_000_000_000,
                                                description="A new limit; null removes it.")
    catchUp: CatchUp = omittable()
    catchUpWindow: Optional[str] = Field(default=None, max_length=64,
                                         description="A new window; null removes it.")

    _times = field_validator("endAt")(_check_timestamp)
    _cron = field_validator("cron")(_valid_cron)
    _every = field_validator("every", "catchUpWindow")(_valid_duration)

    @model_validator(mode="after")
    def _one_pattern(self):
        if "cron" in self.model_fields_set and "every" in self.model_fields_set:
            raise ValueError("give cron or every, not both")
        return self


class ListRecurringQuery(_Query):
    """Filters and paging of ``GET /recurring``."""

    state: Optional[RecurringState] = None
    clock: Optional[Clock] = None
    campaignId: Optional[str] = Field(default=None, pattern=CAMPAIGN_ID)
    type: Optional[str] = Field(default=None, pattern=JOB_TYPE)
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Optional[str] = Field(default=None, pattern=CURSOR)


class LastOccurrence(BaseModel):
    """The newest occurrence created."""

    occurrence: str = Field(description="Its time on the recurrence's clock.")
    jobId: str


class Recurring(BaseModel):
    """A recurring job."""

    id: str
    type: str
    campaignId: str
    payload: dict[str, Any]
    priority: int
    clock: Clock
    cron: Optional[str]
    every: Optional[str]
    startAt: Optional[str]
    endAt: Optional[str]
    maxOccurrences: Optional[int]
    catchUp: CatchUp
    catchUpWindow: Optional[str]
    state: RecurringState
    nextOccurrence: Optional[str] = Field(description="When its timer fires, on its clock; null "
                                                      "unless active.")
    occurrences: int = Field(description="Occurrences created so far (each one job).")
    skipped: int = Field(description="Occurrences skipped (catch-up policy, window, pause).")
    lastOccurrence: Optional[LastOccurrence]
    endedReason: Optional[Literal["endAt", "maxOccurrences", "cancelled"]]
    createdAt: str
    updatedAt: str
    idempotencyKey: Optional[str] = None


class RecurringDetail(Recurring):
    """A recurring job with its next five occurrences on its clock (world times for a
    world-clock one; while paused, those a resume now would give)."""

    nextOccurrences: list[str]


class RecurringList(BaseModel):
    """A page of recurring jobs, newest first; pass ``nextCursor`` as ``cursor`` for the next."""

    items: list[Recurring]
    nextCursor: Optional[str]


class OccurrenceEntry(BaseModel):
    """One entry of a recurring job's history: an occurrence created, or occurrences skipped."""

    kind: Literal["created", "skipped"]
    occurrence: Optional[str] = Field(default=None, description="The created occurrence's time.")
    jobId: Optional[str] = Field(default=None, description="The job it created.")
    reason: Optional[Literal["catchUp", "paused"]] = None
    skippedFrom: Optional[str] = None
    skippedTo: Optional[str] = None
    skippedCount: Optional[int] = Field(default=None, description="null: more than 10,000 cron "
                                                                  "times, not counted.")
    recordedAt: str = Field(description="Wall-clock time of the pass.")


class OccurrenceHistory(BaseModel):
    """What a recurring job created and skipped, oldest first (the last 1,000 entries)."""

    id: str
    clock: Clock
    items: list[OccurrenceEntry]
