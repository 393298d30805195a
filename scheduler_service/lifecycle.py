"""Dramatiq middleware that keeps job records in step with what the worker really does.

``queued``/``failed``/``running`` → ``running`` when an attempt starts (``running`` again
when a message is redelivered after a worker died); → ``succeeded`` with the handler's
result; → ``failed`` with the error while retries remain; → ``dead`` once Dramatiq gives
up and dead-letters the message. A message whose job was cancelled (or already finished)
is skipped, so a cancelled job never runs even if its message was already queued.

An attempt's outcome is written before Dramatiq acknowledges its message, and that write
is retried through a Redis outage for up to :data:`OUTCOME_RETRY_S`: a record must not
stay ``running`` for an attempt that ended. Should the outage last longer, the periodic
repair (:mod:`scheduler_service.repair`) finds the record and enqueues the job again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import redis
from dramatiq.middleware import Middleware, SkipMessage

logger = logging.getLogger(__name__)

#: How long the write of an attempt's outcome is retried while Redis is unreachable.
OUTCOME_RETRY_S = 30.0
#: Longest wait between two tries of that write.
OUTCOME_RETRY_MAX_DELAY_S = 2.0
#: Redis errors worth another try: the server is gone, restarting, loading, or failing over.
REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)

#: Option under which the runner hands the handler's result to this middleware.
RESULT_OPTION = "_scheduler_result"


def _job_id(message):
    if message.args and isinstance(message.args[0], dict):
        return message.args[0].get("id")
    return None


class JobRecords(Middleware):
    """Writes each attempt's start and outcome to the job store.

    Args:
        store_getter: returns the job store.
        retry_s: how long an outcome write is retried through a Redis outage.
        sleep: how to wait between tries (injected by tests).
    """

    def __init__(self, store_getter, retry_s: float = OUTCOME_RETRY_S,
                 sleep: Callable[[float], None] = time.sleep):
        self._store_getter = store_getter
        self.retry_s = retry_s
        self._sleep = sleep

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
            self._outcome(job_id, "succeeded", "succeeded",
                          result=outcome if outcome is not None else {}, lastError=None)
            return
        error = f"{type(exception).__name__}: {exception}"[:2000]
        if message.failed:
            self._outcome(job_id, "dead",
                          f"dead-lettered after {message.options.get('retries', 1)} attempt(s): {error}",
                          lastError=error, deadLetter=1)
        else:
            self._outcome(job_id, "failed", f"will retry: {error}", lastError=error)

    def _outcome(self, job_id, to, detail, **fields):
        """``running`` → ``to``, tried again through a Redis outage of up to ``retry_s``.

        A guarded transition is safe to repeat: if a try was applied but its answer lost,
        the next one finds the job already in ``to`` and changes nothing.
        """
        deadline = time.monotonic() + self.retry_s
        delay, tries = 0.1, 0
        while True:
            tries += 1
            try:
                result = self.store.transition(job_id, ("running",), to, detail, **fields)
                break
            except REDIS_OUTAGE as e:
                if time.monotonic() + delay > deadline:
                    logger.error("could not record that job %s is %s after %s tries (%s); the "
                                 "periodic repair will enqueue it again", job_id, to, tries, e,
                                 extra={"job_id": job_id, "alert": "job_outcome_lost"})
                    raise
                logger.warning("Redis unavailable while recording that job %s is %s (%s); "
                               "trying again in %.1fs", job_id, to, e, delay,
                               extra={"job_id": job_id})
                self._sleep(delay)
                delay = min(delay * 2, OUTCOME_RETRY_MAX_DELAY_S)
        if not result.ok and not (tries > 1 and result.previous == to):
            logger.warning("job %s ended %s but its record is %s; left as it is", job_id, to,
                           result.previous or "missing", extra={"job_id": job_id})
        return result
