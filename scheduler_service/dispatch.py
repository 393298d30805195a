"""Creating jobs: validated first, so nothing invalid is ever stored or enqueued."""

from __future__ import annotations

from .ids import new_uuid
from .jobtypes import MAX_PRIORITY, MIN_PRIORITY
from .payloads import validate_payload


def new_job_id() -> str:
    """A new job id (a UUID4 string)."""
    return new_uuid()


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


def send_job(services, job_type: str, campaign_id: str, payload=None, priority=None, job_id=None,
             *, run_at_ms=None, run_at_world_ms=None, idempotency_key=None):
    """Validate a job, store its record and schedule or enqueue it; returns ``(record, created)``.

    Nothing is stored or enqueued when validation fails.
    """
    job = build_job(services.registry, job_type, campaign_id, payload, priority, job_id)
    return services.jobs.create(job, run_at_ms=run_at_ms, run_at_world_ms=run_at_world_ms,
                                idempotency_key=idempotency_key)
