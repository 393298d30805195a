"""What a plugin's reaction to a campaign message is given, and how reactions are run.

A reaction (:class:`~scheduler_service.jobtypes.Reaction`) is called as
``handler(message, ctx)``: ``message`` is the message body exactly as the contract has it
(``{"campaignId", "previousTime", "newTime"}`` or ``{"campaignId", "entityType",
"entityId", "operation"}``), ``ctx`` a :class:`ReactionContext` whose helpers enqueue and
cancel jobs, so that a plugin never imports Redis or Dramatiq.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReactionContext:
    """The campaign a message is about, and the scheduler's helpers.

    Attributes:
        event: ``worldTimeAdvanced`` or ``entityModified``.
        campaign_id: the campaign of the message.
        world_time_ms: for ``worldTimeAdvanced``, the new world time in epoch milliseconds.
    """

    event: str
    campaign_id: str
    world_time_ms: int | None = None
    services: Any = field(default=None, repr=False, compare=False)

    @property
    def settings(self):
        """The service's validated settings."""
        return self.services.settings

    @property
    def api(self):
        """The process's client of the main campaign API."""
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

    def cancel_job(self, job_id: str, reason: str = "cancelled by a reaction") -> bool:
        """Cancel a job that has not started; returns whether it was cancelled."""
        result = self.services.jobs.transition(job_id, ("scheduled", "queued", "failed"),
                                               "cancelled", reason)
        return result.ok

    def get_job(self, job_id: str) -> dict | None:
        """A job's record, or None."""
        return self.services.jobs.get(job_id)


def reactions_to(registry, event: str):
    """The registered reactions to ``event``, in registration order (the core's first)."""
    return [r for r in registry.reactions if r.event == event]
