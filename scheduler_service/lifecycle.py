"""The worker's side of a job's state machine, in one place.

:class:`JobRecords` is the Dramatiq middleware that alone decides and writes what happens
to a job record while a worker has it:

* **claim**: the worker's fetch marks each fetched job ``running`` (``queued``, ``failed``
  or ``running`` again after a worker died) and counts the attempt, in the same Lua call
  as Dramatiq's fetch; a job found ``cancelled`` or finished is skipped, so a cancelled
  job never runs even if its message was already queued;
* **outcome**, decided from the handler's return value or exception once it ends:
  ``succeeded`` with the result; ``failed`` with the error and a wall timer at the next
  attempt's backoff (the timer pump enqueues it again, so a retry survives any restart);
  ``dead`` once the attempts are spent or the error is permanent (the message goes to
  Dramatiq's dead letters with its last error); back to ``scheduled`` without spending the
  attempt when the API's circuit breaker is open (the handler met it, or its own failed call
  left it open), until the breaker lets a trial through plus a random spread
  (:meth:`JobRecords.circuit_delay_ms`);
* **write**: the outcome is written in the same Lua call as Dramatiq's acknowledgement
  (or rejection) of the message, so a record can never say ``running`` for a message that
  is gone, nor an acknowledged message lack its outcome. Each consumer hands its
  acknowledgements to a writer thread that writes as many per call as came in since its
  last one (:class:`scheduler_service.broker._Settler`); the call is retried through a
  Redis outage, and if the worker dies before it succeeds, Dramatiq redelivers the message
  and the job runs again (handlers are idempotent);
* **requeue**: messages a stopping worker fetched but never ran, and those still running
  when its ``SHUTDOWN_GRACE_S`` ran out (see :mod:`scheduler_service.worker`), go back to
  their queue and their records back to ``queued``, the attempt not spent.

The record's ``attempts`` is the one attempt counter: Dramatiq's ``Retries`` middleware is
not used. Which errors are permanent is told by the error tree
(:class:`~scheduler_service.errors.PermanentError`).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware, SkipMessage

from . import wire
from .errors import CircuitOpen, PermanentError
from .jobscripts import FETCH, OUTCOMES, REQUEUE
from .jobstore import flat_fields
from .metrics import Attempt, job_deltas
from .redis_client import UNREACHABLE, outage

logger = logging.getLogger(__name__)

#: History entry of a job given back by a stopping worker.
REQUEUED_AT_STOP = "returned to the queue: its worker stopped before the job ran or finished"
#: History entry of a job whose acknowledgement was lost (the worker's audit found it).
REQUEUED_ORPHAN = ("returned to the queue: its worker no longer held it, its acknowledgement "
                   "lost (a Redis failover?)")

#: How long a write of an attempt's outcome is retried here while Redis is unreachable,
#: before the worker's own retry loop (every few seconds, until Redis is back) takes over.
OUTCOME_RETRY_S = 30.0
#: Longest wait between two tries of that write.
OUTCOME_RETRY_MAX_DELAY_S = 2.0
#: Redis errors worth another try: the server is gone, restarting, loading, or failing over.
REDIS_OUTAGE = UNREACHABLE
#: Shortest wait before a job meets an open circuit again.
MIN_CIRCUIT_WAIT_MS = 1000


@dataclass
class Outcome:
    """What an attempt's end does to its record (written with the acknowledgement)."""

    to: str
    detail: str
    fields: dict = field(default_factory=dict)
    #: A wall timer for the record (epoch ms): the next attempt of a ``failed`` job.
    wall_due: int | None = None
    #: The encoded message kept in the dead letters (``dead`` only).
    dead_copy: str = ""


class JobMessage(MessageProxy):
    """A fetched message, with what the fetch found of its job's record.

    Attributes:
        job_id: the job the message runs (from its Redis message id), or None.
        claim: ``"run"`` (the fetch marked the record running), ``"skip"`` (the record is
            ``previous`` and must not run) or ``""`` (no record was changed).
        attempt: the attempt this delivery is, counted by the record.
        outcome: the :class:`Outcome` to write with the acknowledgement, once decided.
    """

    def __init__(self, message, *, job_id=None, claim="", attempt=0, previous=""):
        super().__init__(message)
        self.job_id = job_id
        self.claim = claim
        self.attempt = attempt
        self.previous = previous
        self.outcome: Outcome | None = None
        #: ``perf_counter()`` when the attempt started (for the duration metric).
        self.started: float | None = None


def job_id_of(message) -> str | None:
    job_id = getattr(message, "job_id", None)
    if job_id:
        return job_id
    if message.args and isinstance(message.args[0], dict):
        return message.args[0].get("id")
    return None


class JobRecords(Middleware):
    """The worker's job state machine: claims, outcomes and their writes.

    Args:
        store: the :class:`~scheduler_service.jobstore.JobStore` (its Redis and prefix).
        max_retries: retries of a job type that sets none (``QUEUE_MAX_RETRIES``).
        min_backoff_ms, max_backoff_ms: the exponential backoff between attempts.
        retry_s: how long an outcome write is retried through a Redis outage.
        sleep: how to wait between tries (injected by tests).
    """

    def __init__(self, store, *, max_retries: int = 3, min_backoff_ms: int = 5000,
                 max_backoff_ms: int = 3_600_000, retry_s: float = OUTCOME_RETRY_S,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.max_retries = max_retries
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.retry_s = retry_s
        self._sleep = sleep
        #: The random source of the parked jobs' spread (seeded by tests).
        self.rng = random.Random()
        self._fetch = store.redis.register_script(FETCH)
        self._outcome = store.redis.register_script(OUTCOMES)
        self._requeue = store.redis.register_script(REQUEUE)
        #: The process's :class:`~scheduler_service.alerts.Alerter` (dead letters), or None.
        self.alerts = None

    @property
    def actor_options(self):
        # ``throws``: exceptions Dramatiq's worker logs as expected (no traceback).
        return {"max_retries", "throws"}

    # -- the consumer's calls (fetch, acknowledge, reject, requeue) ------------------
    def fetch(self, broker, queue: str, count: int) -> list[JobMessage]:
        """Dramatiq's fetch of up to ``count`` messages, each job claimed in the same call."""
        flat = self._fetch(args=[self.store.prefix, self.store.clock(), queue, broker.broker_id,
                                 count])
        out = []
        for i in range(0, len(flat), 4):
            data, claim, attempt, previous = flat[i:i + 4]
            message = Message.decode(data)
            job_id = wire.job_id_of_rid(message.options.get("redis_message_id", "")) if claim else None
            out.append(JobMessage(message, job_id=job_id, claim=claim.decode(),
                                  attempt=int(attempt), previous=previous.decode()))
        return out

    def settle(self, broker, queue: str, message, *, reject: bool) -> None:
        """Acknowledge (or reject into the dead letters) ``message`` and write its outcome,
        in one call; tried again through a Redis outage of up to ``retry_s``."""
        self.settle_many(broker, queue, [self.settlement(message, reject=reject)])

    def settlement(self, message, *, reject: bool) -> tuple[str | None, str, list, Attempt | None]:
        """What :meth:`settle_many` writes for one message: ``(job id, to, script items,
        the attempt as the metrics see it)``."""
        outcome = getattr(message, "outcome", None)
        job_id = job_id_of(message) if outcome is not None else None
        if outcome is None:
            outcome = Outcome("dead" if reject else "", "")
        elif reject and outcome.to != "dead":
            outcome = Outcome("dead", outcome.detail, outcome.fields, dead_copy=outcome.dead_copy)
        fields = flat_fields(outcome.fields)
        return job_id, outcome.to, [
            message.options["redis_message_id"], job_id or "", outcome.to, outcome.detail,
            "" if outcome.wall_due is None else outcome.wall_due, outcome.dead_copy,
            len(fields), *fields], self._observed(message, job_id, outcome)

    @staticmethod
    def _observed(message, job_id, outcome) -> Attempt | None:
        if job_id is None or not outcome.to:
            return None
        started = getattr(message, "started", None)
        body = message.args[0] if message.args and isinstance(message.args[0], dict) else {}
        return Attempt(job_id, str(body.get("type") or message.actor_name.rpartition(".")[0]),
                       str(body.get("campaignId") or ""), outcome.to,
                       0.0 if started is None else max(0.0, time.perf_counter() - started),
                       outcome.fields.get("lastError"))

    def settle_many(self, broker, queue: str, settlements) -> None:
        """Acknowledge many messages of ``queue`` with their outcomes in one call (see
        :meth:`settlement`); tried again through a Redis outage of up to ``retry_s``."""
        args = [self.store.prefix, self.store.clock(), queue, broker.broker_id,
                self.store.retention_s, len(settlements)]
        for _, _, items, _ in settlements:
            args += items
        # The batch's metrics, added up here and written by the same call.
        args += job_deltas(attempt for *_, attempt in settlements if attempt is not None)
        answers = self._write(args, settlements)
        for (job_id, to, _, attempt), i in zip(settlements, range(0, len(answers), 3)):
            ok, previous = answers[i + 1], answers[i + 2]
            if job_id and ok != 1:
                logger.warning("job %s ended %s but its record is %s; left as it is", job_id,
                               to, previous.decode() if previous else "missing",
                               extra={"job_id": job_id})
            elif to == "dead" and attempt is not None and self.alerts is not None:
                self.alerts.job_dead(attempt)

    def _write(self, args, settlements):
        deadline = time.monotonic() + self.retry_s
        delay, tries = 0.1, 0
        what = ", ".join(f"{job_id} is {to or 'done'}" for job_id, to, *_ in settlements[:3])
        while True:
            tries += 1
            try:
                answers = self._outcome(args=args)
                if tries > 1:  # an earlier try may have been applied, its answer lost
                    outage().reached()
                    for (_, to, *_), i in zip(settlements, range(0, len(answers), 3)):
                        if answers[i + 1] == 0 and answers[i + 2] == to.encode():
                            answers[i + 1] = 1
                return answers
            except REDIS_OUTAGE as e:
                if time.monotonic() + delay > deadline:
                    logger.error("could not record that job %s after %s tries (%s); "
                                 "trying on until Redis is back", what, tries, e,
                                 extra={"alert": "job_outcome_delayed"})
                    raise ConnectionClosed(e) from None
                outage().failed(e, "recording job outcomes")
                logger.debug("Redis unavailable while recording that job %s (%s); "
                             "trying again in %.1fs", what, e, delay)
                self._sleep(delay)
                delay = min(delay * 2, OUTCOME_RETRY_MAX_DELAY_S)

    def requeue(self, broker, queue: str, rids, *, detail: str = REQUEUED_AT_STOP,
                spent: bool = False) -> int:
        """Put messages this worker's acknowledgement set lists back on their queue, their
        records to ``queued``: those fetched and not run or handed back at shutdown (the
        attempt not spent), or with ``spent`` those the worker no longer holds (their
        acknowledgement was lost: the attempt ran). Returns how many went back."""
        rids = list(rids)
        if not rids:
            return 0
        return self._requeue(args=[self.store.prefix, self.store.clock(), queue,
                                   broker.broker_id, detail, "1" if spent else "0", *rids])

    # -- middleware hooks ------------------------------------------------------------
    def before_process_message(self, broker, message):
        claim = getattr(message, "claim", "")
        if claim == "run":
            message.started = time.perf_counter()
            return
        job_id = job_id_of(message)
        if claim == "skip":
            logger.info("skipping job %s: it is %s", job_id, message.previous,
                        extra={"job_id": job_id})
            raise SkipMessage(f"job is {message.previous}")
        if job_id is None:
            return
        # A message the fetch could not claim (sent by an older version): claim it here.
        result = self.store.transition(
            job_id, ("queued", "failed", "running"), "running", "attempt started",
            rid=message.options.get("redis_message_id", ""))
        if result.missing:
            logger.warning("no record for job %s; running it anyway", job_id,
                           extra={"job_id": job_id})
            return
        if not result.ok:
            logger.info("skipping job %s: it is %s", job_id, result.previous,
                        extra={"job_id": job_id})
            raise SkipMessage(f"job is {result.previous}")
        if isinstance(message, JobMessage):
            (attempts,) = self.store.get_internal(job_id, "attempts")
            message.job_id, message.claim, message.attempt = job_id, "run", int(attempts or 1)
            message.started = time.perf_counter()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if not isinstance(message, JobMessage) or message.claim != "run":
            return
        message.outcome = self.decide(broker, message, result, exception)
        if message.outcome.to == "dead":
            message.fail()

    def decide(self, broker, message, result, exception) -> Outcome:
        """The outcome of an attempt that returned ``result`` or raised ``exception``."""
        if exception is None:
            return Outcome("succeeded", "succeeded",
                           {"result": result if result is not None else {}, "lastError": None})
        error = f"{type(exception).__name__}: {exception}"[:2000]
        now = self.store.clock()
        circuit = exception if isinstance(exception, CircuitOpen) else \
            getattr(exception, "circuit_open", None)
        if circuit is not None:
            delay = self.circuit_delay_ms(circuit)
            logger.warning("API circuit open; job rescheduled in %s ms without spending an "
                           "attempt", delay, extra={"job_id": message.job_id})
            return Outcome("scheduled", f"API circuit open; retry in {delay} ms",
                           {"runAt": now + delay, "runAtWorldTime": "", "lastError": error})
        actor = broker.get_actor(message.actor_name) if message.actor_name in broker.actors else None
        max_retries = (actor.options.get("max_retries") if actor else None)
        max_retries = self.max_retries if max_retries is None else max_retries
        attempt = message.attempt or 1
        if isinstance(exception, PermanentError) or attempt > max_retries:
            why = "permanent error" if isinstance(exception, PermanentError) else \
                f"{attempt} attempt(s)"
            return Outcome("dead", f"dead-lettered after {why}: {error}",
                           {"lastError": error, "deadLetter": 1},
                           dead_copy=self._dead_copy(message, exception, error, attempt, now))
        _, backoff = compute_backoff(attempt, factor=self.min_backoff_ms,
                                     max_backoff=self.max_backoff_ms)
        return Outcome("failed", f"will retry in {backoff} ms: {error}", {"lastError": error},
                       wall_due=now + backoff)

    def circuit_delay_ms(self, circuit: CircuitOpen) -> int:
        """How long a job parked on an open breaker waits: until the breaker lets a trial
        through, plus a random share of ``spread_s``, so that the parked jobs come back one
        by one (the first is the trial; the others, finding the breaker open again after a
        failed trial, wait for the next one) rather than all at once."""
        wait_ms = max(MIN_CIRCUIT_WAIT_MS, int(circuit.retry_after_s * 1000))
        return wait_ms + int(self.rng.uniform(0, max(0.0, circuit.spread_s)) * 1000)

    @staticmethod
    def _dead_copy(message, exception, error, attempt, now) -> str:
        """The message as kept in the dead letters: with what killed it, for operators."""
        trace = "".join(traceback.format_exception(type(exception), exception,
                                                   exception.__traceback__))[-4000:]
        return message.copy(options={"last_error": error, "attempts": attempt,
                                     "failed_at": now, "traceback": trace}).encode().decode()
