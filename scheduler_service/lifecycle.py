"""Dramatiq middleware that keeps job records in step with what the worker really does.

``queued``/``failed``/``running`` → ``running`` when an attempt starts (``running`` again
when a message is redelivered after a worker died); → ``succeeded`` with the handler's
result; → ``failed`` with the error while retries remain; → ``dead`` once Dramatiq gives
up and dead-letters the message. A message whose job was cancelled (or already finished)
is skipped, so a cancelled job never runs even if its message was already queued.
"""

from __future__ import annotations

import logging

from dramatiq.middleware import Middleware, SkipMessage

logger = logging.getLogger(__name__)

#: Option under which the runner hands the handler's result to this middleware.
RESULT_OPTION = "_scheduler_result"


def _job_id(message):
    if message.args and isinstance(message.args[0], dict):
        return message.args[0].get("id")
    return None


class JobRecords(Middleware):
    """Writes each attempt's start and outcome to the job store."""

    def __init__(self, store_getter):
        self._store_getter = store_getter

    @property
    def store(self):
        return self._store_getter()

    def before_process_message(self, broker, message):
        job_id = _job_id(message)
        if job_id is None:
            return
        result = self.store.transition(
            job_id, ("queued", "failed", "running"), "running",
            f"attempt {message.options.get('retries', 0) + 1} started",
            rid=message.options.get("redis_message_id", ""),
        )
        if result.missing:
            logger.warning("no record for job %s; running it anyway", job_id,
                           extra={"job_id": job_id})
        elif not result.ok:
            logger.info("skipping job %s: it is %s", job_id, result.previous,
                        extra={"job_id": job_id})
            raise SkipMessage(f"job is {result.previous}")

    def after_process_message(self, broker, message, *, result=None, exception=None):
        job_id = _job_id(message)
        if job_id is None:
            return
        if exception is None:
            outcome = message.options.pop(RESULT_OPTION, None)
            self.store.transition(job_id, ("running",), "succeeded", "succeeded",
                                  result=outcome if outcome is not None else {}, lastError=None)
            return
        error = f"{type(exception).__name__}: {exception}"[:2000]
        if message.failed:
            self.store.transition(job_id, ("running",), "dead",
                                  f"dead-lettered after {message.options.get('retries', 1)} attempt(s): {error}",
                                  lastError=error, deadLetter=1)
        else:
            self.store.transition(job_id, ("running",), "failed", f"will retry: {error}",
                                  lastError=error)
