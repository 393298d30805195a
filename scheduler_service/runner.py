"""What a worker does with a job message: validate, run the handler, log with context.

The handler's result is returned to Dramatiq, and the job records
(:mod:`scheduler_service.lifecycle`) turn it, or the exception raised, into the record's
next state.
"""

from __future__ import annotations

import logging
import time

from dramatiq.middleware import CurrentMessage

from .jobtypes import JobContext
from .logs import job_context
from .payloads import validate_payload

logger = logging.getLogger(__name__)


def make_runner(services):
    """Return ``run(job) -> result``: the body of every job actor of this process."""
    registry = services.registry

    def run(job: dict):
        message = CurrentMessage.get_current_message()
        attempt = getattr(message, "attempt", 0) or 1
        with job_context(job_id=job.get("id"), job_type=job.get("type"),
                         campaign_id=job.get("campaignId")):
            job_type = registry.job_type(job["type"])
            payload = validate_payload(job_type, job.get("payload"))
            ctx = JobContext(
                job_id=job["id"], job_type=job_type.name, campaign_id=job.get("campaignId"),
                payload=payload, attempt=attempt, services=services,
            )
            started = time.perf_counter()
            logger.info("job started", extra={"attempt": attempt})
            try:
                result = job_type.handler(ctx)
            except Exception as e:
                logger.warning("job attempt failed: %s: %s", type(e).__name__, e,
                               extra={"attempt": attempt})
                raise
            logger.info("job succeeded", extra={
                "attempt": attempt, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            return result

    return run
