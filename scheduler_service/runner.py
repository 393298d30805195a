"""What a worker does with a job message: validate, run the handler, log with context."""

from __future__ import annotations

import logging
import time

from dramatiq.middleware import CurrentMessage

from .errors import CircuitOpen
from .jobstore import now_ms
from .jobtypes import JobContext
from .lifecycle import RESULT_OPTION
from .logs import job_context
from .payloads import validate_payload

logger = logging.getLogger(__name__)


def make_runner(services):
    """Return ``run(job)``: the body of every job actor of this process."""

    def run(job: dict):
        message = CurrentMessage.get_current_message()
        attempt = (message.options.get("retries", 0) + 1) if message is not None else 1
        with job_context(job_id=job.get("id"), job_type=job.get("type"),
                         campaign_id=job.get("campaignId")):
            job_type = services.registry.job_type(job["type"])
            payload = validate_payload(job_type, job.get("payload"))
            ctx = JobContext(
                job_id=job["id"], job_type=job_type.name, campaign_id=job.get("campaignId"),
                payload=payload, attempt=attempt, services=services,
            )
            started = time.perf_counter()
            logger.info("job started", extra={"attempt": attempt})
            try:
                result = job_type.handler(ctx)
            except CircuitOpen as e:
                _wait_for_circuit(services, job, e)
                return None
            except Exception as e:
                logger.warning("job attempt failed: %s: %s", type(e).__name__, e,
                               extra={"attempt": attempt})
                raise
            logger.info("job succeeded", extra={
                "attempt": attempt, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            if message is not None:
                message.options[RESULT_OPTION] = result
            return result

    return run


def _wait_for_circuit(services, job, error):
    """Put the job back on its timer for when the breaker may close; no attempt is spent."""
    store = services.jobs
    delay_ms = max(1000, int(error.retry_after_s * 1000))
    (attempts,) = store.get_internal(job["id"], "attempts")
    store.reschedule(
        job["id"], now_ms() + delay_ms, detail=f"API circuit open; retry in {delay_ms} ms",
        attempts=max(0, int(attempts or 1) - 1), lastError=f"CircuitOpen: {error}",
    )
    logger.warning("API circuit open; job rescheduled in %s ms without spending an attempt", delay_ms)
