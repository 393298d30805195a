"""Putting a job into its Dramatiq queue (validated first, so nothing bad is enqueued)."""

from __future__ import annotations

import uuid

from . import queueing
from .jobtypes import MAX_PRIORITY, MIN_PRIORITY
from .payloads import validate_payload


def new_job_id() -> str:
    """A new job id (a UUID4 string)."""
    return str(uuid.uuid4())


def build_job(registry, job_type: str, campaign_id: str, payload=None, priority=None, job_id=None) -> dict:
    """Validate and build the body a job's Dramatiq message carries.

    Raises:
        UnknownJobType: no plugin registered ``job_type``.
        InvalidPayload: the payload fails the job type's model.
        ValueError: the priority is outside 0-10.
    """
    jt = registry.job_type(job_type)
    model = validate_payload(jt, payload)
    priority = jt.priority if priority is None else priority
    if not (isinstance(priority, int) and MIN_PRIORITY <= priority <= MAX_PRIORITY):
        raise ValueError(f"priority must be an integer from 0 to 10, got {priority!r}")
    return {
        "id": job_id or new_job_id(),
        "type": jt.name,
        "campaignId": campaign_id,
        "payload": model.model_dump(mode="json"),
        "priority": priority,
    }


def send(services, job: dict):
    """Enqueue an already built job on its type's band queue; returns the Dramatiq message."""
    actor = services.actors[queueing.actor_name(job["type"], queueing.band_for(job["priority"]))]
    return actor.send_with_options(args=(job,), job_id=job["id"])


def send_job(services, job_type: str, campaign_id: str, payload=None, priority=None, job_id=None):
    """Validate and enqueue a job to run now; returns the job body."""
    job = build_job(services.registry, job_type, campaign_id, payload, priority, job_id)
    send(services, job)
    return job
