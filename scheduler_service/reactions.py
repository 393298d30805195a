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

from .context import CampaignHelpers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReactionContext(CampaignHelpers):
    """The campaign a message is about, and the scheduler's helpers (``send_job``,
    ``cancel_job``, ``get_job``, ``clear_timer``, ``campaign_time``, ``api``, ``settings``;
    see :class:`~scheduler_service.context.ReactionContextProtocol`).

    Attributes:
        event: ``worldTimeAdvanced`` or ``entityModified``.
        campaign_id: the campaign of the message.
        world_time_ms: for ``worldTimeAdvanced``, the new world time in epoch milliseconds
            (no later than the API's clock).
    """

    event: str
    campaign_id: str
    world_time_ms: int | None = None
    services: Any = field(default=None, repr=False, compare=False)


def reactions_to(registry, event: str):
    """The registered reactions to ``event``, in registration order (the core's first)."""
    return [r for r in registry.reactions if r.event == event]
