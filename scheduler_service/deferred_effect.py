"""``DEFERRED_EFFECT``: execute one effect of the main API at a wall or world time.

Exactly once in effect: before executing, the job reads the effect's executions and
skips when one already carries this job's id in ``context.schedulerJobId`` (a message
redelivered after a worker died mid-job finds its own execution and stops there).

An effect acts on the campaign of its entity: a job of one campaign that names the effect
of another campaign's entity fails permanently, naming both, rather than change the other
campaign at a time of this one's clock.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from .api import get_api_client
from .errors import PermanentJobError

#: The campaign that stands for every campaign; its jobs are not tied to one.
SYSTEM = "SYSTEM"

logger = logging.getLogger(__name__)


class DeferredEffectPayload(BaseModel):
    """The effect to execute."""

    model_config = ConfigDict(extra="forbid")
    effectId: str = Field(min_length=1, max_length=128, description="Id of the effect in the main API.")


def run_deferred_effect(ctx) -> dict:
    """Execute the effect unless it is missing, inactive or already executed by this job.

    Raises:
        PermanentJobError: the API answered ``success: false`` (not retried).
    """
    api = get_api_client(ctx.services)
    effect_id = ctx.payload.effectId
    effect = api.get_effect(effect_id, use_cache=False)
    if effect is None:
        return {"outcome": "skipped", "reason": f"effect {effect_id} does not exist"}
    if not effect.is_active:
        return {"outcome": "skipped", "reason": f"effect {effect_id} is inactive"}
    done = effect.execution_for_job(ctx.job_id)
    if done is not None:
        logger.info("effect %s already executed by this job (execution %s)", effect_id, done.id)
        return {"outcome": "skipped", "reason": "already executed by this job",
                "executionId": done.id}
    owner = entity_campaign(api, effect.entity_type, effect.entity_id)
    if owner is not None and ctx.campaign_id != SYSTEM and owner != ctx.campaign_id:
        raise PermanentJobError(
            f"effect {effect_id} acts on {effect.entity_type} {effect.entity_id} of campaign "
            f"{owner}, not of this job's campaign {ctx.campaign_id}")
    result = api.execute_effect(effect_id, context={
        "schedulerJobId": ctx.job_id, "campaignId": ctx.campaign_id, "attempt": ctx.attempt})
    if not result.success:
        raise PermanentJobError(f"effect {effect_id} failed in the main API: {result.error}")
    return {"outcome": "executed", "executionId": result.execution_id,
            "affectedFields": list(result.affected_fields or [])}


def entity_campaign(api, entity_type: str, entity_id: str) -> str | None:
    """The campaign of an effect's target, or None when it cannot be told (gone, or a type
    the contract gives no campaign for, such as ``Kingdom``)."""
    read = {"Settlement": api.settlement, "Structure": api.structure, "Event": api.event}.get(entity_type)
    entity = read(entity_id) if read is not None else None
    return entity.campaign_id if entity is not None else None
