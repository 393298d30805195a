"""What a plugin's handler and reaction are given: typed protocols and their one implementation.

A plugin never touches Redis, the broker or the service's internals. A job handler gets a
:class:`JobContextProtocol`, a reaction a :class:`ReactionContextProtocol`; both carry the
helpers of :class:`CampaignHelpers`: the typed API client, the settings, a logger with the
job's context, ``send_job`` / ``cancel_job`` / ``get_job``, the campaign clock, and (for
jobs) a checkpoint kept with the job, a keyed timer that replaces its previous one, and the
occurrence of a recurring job that the job was created for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

#: The campaign that stands for every campaign.
SYSTEM = "SYSTEM"


@dataclass(frozen=True)
class CampaignTime:
    """A campaign's clock now.

    Attributes:
        now_ms: its current time in epoch ms.
        clock: ``world`` (the campaign's world clock) or ``wall`` (it has none: real UTC).
    """

    now_ms: int
    clock: str


@dataclass(frozen=True)
class Occurrence:
    """The occurrence of a recurring job that a job was created for.

    Attributes:
        recurring_id: the recurring job (``/api/v1/recurring/{id}``).
        at_ms: the occurrence's time on its clock, in epoch ms.
        clock: ``wall`` or ``world`` (the campaign's world clock).
    """

    recurring_id: str
    at_ms: int
    clock: str


class CampaignHelpers:
    """The helpers shared by job and reaction contexts; they need ``services`` and
    ``campaign_id`` on the object."""

    services: Any
    campaign_id: str

    @property
    def settings(self):
        """The service's validated settings."""
        return self.services.settings

    @property
    def api(self):
        """The process's typed client of the main campaign API."""
        from .api import get_api_client

        return get_api_client(self.services)

    def send_job(self, job_type: str, payload: dict | None = None, *, campaign_id: str | None = None,
                 priority: int | None = None, run_at_ms: int | None = None,
                 run_at_world_ms: int | None = None, idempotency_key: str | None = None) -> dict:
        """Validate a job and schedule or enqueue it (for this campaign unless told otherwise).

        Returns:
            The job's record; with an ``idempotency_key`` already used, the earlier job's.

        Raises:
            UnknownJobType, InvalidPayload, ValueError: nothing was stored.
        """
        from .dispatch import send_job

        record, _ = send_job(self.services, job_type, campaign_id or self.campaign_id, payload,
                             priority, run_at_ms=run_at_ms, run_at_world_ms=run_at_world_ms,
                             idempotency_key=idempotency_key)
        return record

    def cancel_job(self, job_id: str, reason: str = "cancelled by a plugin") -> bool:
        """Cancel a job that has not started; returns whether it was cancelled."""
        result = self.services.jobs.transition(job_id, ("scheduled", "queued", "failed"),
                                               "cancelled", reason)
        return result.ok

    def get_job(self, job_id: str) -> dict | None:
        """A job's record, or None."""
        return self.services.jobs.get(job_id)

    def clear_timer(self, key: str, campaign_id: str | None = None,
                    reason: str = "its subject is gone") -> bool:
        """Cancel the job under ``key`` (see :meth:`JobHelpers.replace_timer`) and forget the
        key; returns whether a waiting job was cancelled."""
        campaign = campaign_id or self.campaign_id
        previous = self.services.jobs.swap_keyed_timer(campaign, key, None)
        return bool(previous) and self.cancel_job(previous, reason=reason)

    def campaign_time(self, campaign_id: str | None = None, *,
                      at_least_ms: int | None = None) -> CampaignTime:
        """The campaign's clock now: its world time from the API, or the wall clock without one.

        Args:
            campaign_id: the campaign (this one by default).
            at_least_ms: a world time known to have been reached (a world timer's due time):
                an answer of the last ``CAMPAIGN_CACHE_MS`` that is not behind it is reused.
                Without it the API is always asked.

        Raises:
            NotFound: the API does not know the campaign.
            Transient, CircuitOpen: the API could not be asked.
        """
        from .campaigns import get_campaign_directory
        from .errors import NotFound
        from .jobstore import now_ms

        campaign = campaign_id or self.campaign_id
        known = get_campaign_directory(self.services).lookup(
            campaign, use_cache=at_least_ms is not None, at_least_ms=at_least_ms)
        if not known.exists:
            raise NotFound(f"campaign {campaign} does not exist", code="NOT_FOUND")
        if known.world_time_ms is None:
            return CampaignTime(now_ms(), "wall")
        return CampaignTime(known.world_time_ms, "world")


class JobHelpers(CampaignHelpers):
    """Helpers that belong to one running job (``job_id`` on the object)."""

    job_id: str
    job_type: str

    @property
    def logger(self) -> logging.Logger:
        """A logger whose records carry the job's id, type and campaign (the runner sets them)."""
        return logging.getLogger(f"scheduler_service.jobs.{self.job_type}")

    @property
    def occurrence(self) -> Occurrence | None:
        """The recurring job's occurrence this job was created for, or None (read when asked)."""
        from .recurring.service import occurrence_of

        return occurrence_of(self.services, self.job_id)

    def load_checkpoint(self) -> Any:
        """What :meth:`save_checkpoint` kept for this job (across retries), or None."""
        (raw,) = self.services.jobs.get_internal(self.job_id, "checkpoint")
        return json.loads(raw) if raw else None

    def save_checkpoint(self, value: Any) -> None:
        """Keep a JSON value with this job: a retry or redelivery finds it with
        :meth:`load_checkpoint`. ``None`` clears it."""
        self.services.jobs.set_internal(
            self.job_id, checkpoint="" if value is None else json.dumps(value))

    def replace_timer(self, key: str, job_type: str, payload: dict, *, due_ms: int, clock: str,
                      campaign_id: str | None = None) -> dict:
        """Make ``job_type`` due at ``due_ms`` on ``clock`` the one timer under ``key``.

        The previous job under the key is cancelled if it is still waiting, so a unit never
        piles up timers; the same due time again keeps the same job.

        Args:
            key: what the timer is for (``unit:{settlementId}``), unique per campaign.
            job_type: the job to run when it falls due.
            payload: its payload.
            due_ms: when, in epoch ms of ``clock``.
            clock: ``world`` or ``wall``.
            campaign_id: the campaign (this job's by default).
        """
        campaign = campaign_id or self.campaign_id
        when = {"run_at_world_ms": due_ms} if clock == "world" else {"run_at_ms": due_ms}
        record = self.send_job(job_type, payload, campaign_id=campaign,
                               idempotency_key=f"timer:{campaign}:{key}:{clock}:{due_ms}", **when)
        previous = self.services.jobs.swap_keyed_timer(campaign, key, record["id"])
        if previous and previous not in (record["id"], self.job_id):
            self.cancel_job(previous, reason=f"replaced by job {record['id']} for {key}")
        return record


@runtime_checkable
class ReactionContextProtocol(Protocol):
    """What a reaction's ``ctx`` offers (see :class:`~scheduler_service.reactions.ReactionContext`)."""

    event: str
    campaign_id: str
    world_time_ms: int | None
    settings: Any
    api: Any

    def send_job(self, job_type: str, payload: dict | None = None, **options) -> dict: ...
    def cancel_job(self, job_id: str, reason: str = ...) -> bool: ...
    def get_job(self, job_id: str) -> dict | None: ...
    def campaign_time(self, campaign_id: str | None = None, *,
                      at_least_ms: int | None = None) -> CampaignTime: ...


@runtime_checkable
class JobContextProtocol(Protocol):
    """What a job handler's ``ctx`` offers (see :class:`~scheduler_service.jobtypes.JobContext`)."""

    job_id: str
    job_type: str
    campaign_id: str
    payload: Any
    attempt: int
    settings: Any
    api: Any
    logger: logging.Logger
    occurrence: Occurrence | None

    def send_job(self, job_type: str, payload: dict | None = None, **options) -> dict: ...
    def cancel_job(self, job_id: str, reason: str = ...) -> bool: ...
    def get_job(self, job_id: str) -> dict | None: ...
    def campaign_time(self, campaign_id: str | None = None, *,
                      at_least_ms: int | None = None) -> CampaignTime: ...
    def load_checkpoint(self) -> Any: ...
    def save_checkpoint(self, value: Any) -> None: ...
    def replace_timer(self, key: str, job_type: str, payload: dict, *, due_ms: int, clock: str,
                      campaign_id: str | None = None) -> dict: ...
