"""The one place that builds the Dramatiq broker and declares the job actors.

:class:`JobBroker` is Dramatiq's Redis broker whose consumers go through the job records
(:class:`~scheduler_service.lifecycle.JobRecords`): a fetch claims the fetched jobs, an
acknowledgement writes the attempt's outcome, a rejection writes ``dead``, each in the
same Lua call as Dramatiq's own command. Delay queues (unused by the service, which keeps
its own durable timers) are left to Dramatiq's consumer.

The middleware list is explicit: Dramatiq 1.x would otherwise add its Prometheus
middleware, which starts an HTTP server inside every worker (metrics are exported through
the web app's ``/metrics``), and its ``Retries``, whose counter and delay queue the job
records replace. Actors are declared after the broker exists, one per (job type, priority
band), with the job type's retry and time-limit options (see :mod:`scheduler_service.queueing`).
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import CurrentMessage, ShutdownNotifications, TimeLimit

from . import queueing, wire
from .errors import CircuitOpen, PermanentError
from .lifecycle import REQUEUED_ORPHAN, JobRecords, job_id_of
from .redis_client import UNREACHABLE, connect, outage
from .wire import DELAY_SUFFIX

logger = logging.getLogger(__name__)

#: Seconds between the heartbeats of a draining consumer (well inside any heartbeat timeout).
DRAINING_HEARTBEAT_S = 1.0
#: Seconds between two audits of a consumer's acknowledgement set (see ``_JobConsumer.audit``).
AUDIT_INTERVAL_S = 30.0
#: Seconds a consumer pauses after a fetch met an unreachable Redis, before the next one.
OUTAGE_POLL_S = 1.0


class _JobConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, its fetch, ack, nack and requeue paired with the records.

    Through a Redis outage the consumer stays as it is (what it holds, its settler) and
    tries a fetch every :data:`OUTAGE_POLL_S`, reporting to the process's
    :func:`~scheduler_service.redis_client.outage` (one log line when Redis is lost, one
    when it is back) instead of letting Dramatiq log and rebuild it on every failure.

    It also refills differently: Dramatiq's consumer backs off (up to the poll interval)
    whenever it fetched nothing *or had no room* for more, so a worker whose prefetched
    messages are all in hand sleeps on while its threads drain them and then idle. Here
    the backoff is for an empty queue only; with its hands full the consumer waits for an
    acknowledgement to make room for half a prefetch, and fetches at once.
    """

    def __init__(self, broker, queue_name, prefetch, timeout):
        super().__init__(broker, queue_name, prefetch, timeout)
        self.records = None if queue_name.endswith(DELAY_SUFFIX) else broker.records
        self._room = threading.Event()
        self._refill_at = max(1, prefetch // 2)
        self._settler: _Settler | None = None
        self._beat_at = 0.0
        #: Redis message id of each message handed to a worker thread, by Dramatiq id.
        self._in_hand: dict[str, str] = {}
        self._audit_at = time.monotonic() + AUDIT_INTERVAL_S
        self._suspects: set[str] = set()

    def __next__(self):
        try:
            if self.records is None:  # a delay queue: Dramatiq's own
                return super().__next__()
            if self.broker.draining:
                return self._idle_while_draining()
            while True:
                if self.message_cache:
                    self.misses = 0
                    message = self.message_cache.pop(0)
                    self.queued_message_ids.add(message.message_id)
                    self._in_hand[message.message_id] = message.options.get("redis_message_id")
                    return message
                self._room.clear()
                room = self.prefetch - self.outstanding_message_count
                if room >= self._refill_at or (room > 0 and not self.queued_message_ids):
                    self.broker.maybe_maintain(self.queue_name)
                    self.audit(time.monotonic())
                    self.message_cache = self.records.fetch(self.broker, self.queue_name, room)
                    outage().reached()
                    if self.message_cache:
                        continue
                    # The queue is empty: poll again after a growing pause.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None
                # Hands full: wait for room (returning now and then, so the worker can stop).
                self._room.wait(self.timeout / 1000)
                return None
        except (ConnectionClosed, *UNREACHABLE) as e:
            outage().failed(e, f"consumer of {self.queue_name}")
            time.sleep(OUTAGE_POLL_S)
            return None

    def _idle_while_draining(self):
        """A stopping worker fetches nothing more, but keeps its heartbeat fresh (a fetch of
        no message), so that no other worker takes its jobs in progress for abandoned."""
        now = time.monotonic()
        if now >= self._beat_at:
            self.records.fetch(self.broker, self.queue_name, 0)
            self._beat_at = now + DRAINING_HEARTBEAT_S
        self._room.wait(self.timeout / 1000)
        return None

    def ack(self, message):
        self._settle(message, reject=False)

    def nack(self, message):
        self._settle(message, reject=True)

    def _settle(self, message, *, reject):
        if self.records is None:
            return super().nack(message) if reject else super().ack(message)
        try:
            if message.options.get("redis_message_id") in self.broker.handed_back:
                # Given back to the queue at shutdown while it still ran: another worker
                # runs it, so this attempt's end must not be written.
                logger.warning("job %s ended after it was handed back; this outcome is dropped",
                               job_id_of(message), extra={"job_id": job_id_of(message)})
                return
            if self._settler is None:
                self._settler = _Settler(self.broker, self.queue_name)
            self._settler.add(self.records.settlement(message, reject=reject))
        finally:
            self.queued_message_ids.discard(message.message_id)
            self._in_hand.pop(message.message_id, None)
            self._room.set()

    def audit(self, now: float) -> int:
        """Give back what this worker's acknowledgement set in Redis lists but the worker
        no longer holds; returns how many went back.

        A message leaves the set only with its acknowledgement. If that write is lost, as
        when Redis fails over just after the old master answered, the message stays listed
        under a live worker, whose heartbeat keeps every other worker from taking it, and
        its record stays ``running`` for good. Every ``AUDIT_INTERVAL_S`` the consumer
        compares the set with what it holds (prefetched, in a thread's hands, waiting for
        its acknowledgement to be written); an id missing from its hands at two audits in a
        row goes back to its queue, its record to ``queued``, and runs again (at least once,
        as any redelivery; the API client's checks keep its effects single).
        """
        if now < self._audit_at or self.records is None:
            return 0
        self._audit_at = now + AUDIT_INTERVAL_S
        held = {m.options.get("redis_message_id") for m in self.message_cache}
        held.update(self._in_hand.values())
        if self._settler is not None:
            held.update(self._settler.pending())
        key = wire.acks_key(f"{self.broker.namespace}:", self.broker.broker_id, self.queue_name)
        listed = {r.decode() for r in self.broker.client.smembers(key)}
        orphans = (listed - held) & self._suspects
        self._suspects = listed - held - orphans
        if not orphans:
            return 0
        returned = self.records.requeue(self.broker, self.queue_name, sorted(orphans),
                                        detail=REQUEUED_ORPHAN, spent=True)
        logger.warning("%s message(s) of %s were still listed as this worker's though it no "
                       "longer held them (an acknowledgement lost?); %s went back to the queue",
                       len(orphans), self.queue_name, returned)
        return returned

    def unsettled(self) -> set[str]:
        """Jobs (ids) whose outcome this consumer holds but has not written to Redis."""
        return self._settler.pending_jobs() if self._settler is not None else set()

    def close(self):
        if getattr(self, "_settler", None) is not None:
            self._settler.stop()
        super().close()

    def requeue(self, messages):
        if self.records is None:
            return super().requeue(messages)
        rids = [m.options["redis_message_id"] for m in messages]
        if rids:
            self.records.requeue(self.broker, self.queue_name, rids)


class _Settler:
    """Writes a consumer's acknowledgements and their outcomes, as many per call as have
    come in since the last one (group commit: one at a time under light load, dozens under
    heavy load, never a wait for a batch to fill).

    A message stays unacknowledged in Redis until its call succeeds, so one that dies with
    the process is redelivered, as Dramatiq does for any message not yet acknowledged. The
    call is retried through a Redis outage without end; :meth:`stop` writes what is left.
    """

    #: Most acknowledgements in one call.
    BATCH = 256
    #: Pause before trying again once the records' own retries gave up (Redis still down).
    OUTAGE_PAUSE_S = 2.0

    def __init__(self, broker, queue_name):
        self.broker = broker
        self.records = broker.records
        self.queue_name = queue_name
        self._items: list = []
        #: The batch being written (its acknowledgements not yet in Redis).
        self._writing: list = []
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"acknowledgements({queue_name})")
        self._thread.start()

    def add(self, settlement) -> None:
        with self._cond:
            if not self._closed:
                self._items.append(settlement)
                self._cond.notify()
                return
        # A job that ended after the writer stopped (a stopping worker): write it here.
        self.records.settle_many(self.broker, self.queue_name, [settlement])

    def pending(self) -> set[str]:
        """Redis message ids whose acknowledgement is waiting here or being written."""
        with self._cond:
            return {items[0] for _, _, items, _ in (*self._items, *self._writing)}

    def pending_jobs(self) -> set[str]:
        """Job ids (else Redis message ids) of the outcomes not yet written."""
        with self._cond:
            return {job_id or items[0] for job_id, _, items, _ in (*self._items, *self._writing)}

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    self._closed = True
                    return
                batch, self._items = self._items[:self.BATCH], self._items[self.BATCH:]
                self._writing = batch
            while True:
                try:
                    self.records.settle_many(self.broker, self.queue_name, batch)
                    with self._cond:
                        self._writing = []
                    break
                except (ConnectionClosed, *UNREACHABLE) as e:  # Redis still away: try again
                    outage().failed(e, f"acknowledgements of {self.queue_name}")
                    time.sleep(self.OUTAGE_PAUSE_S)
                except Exception:
                    logger.exception("could not acknowledge %s message(s) of %s; trying again",
                                     len(batch), self.queue_name)
                    time.sleep(self.OUTAGE_PAUSE_S)


class JobBroker(RedisBroker):
    """Dramatiq's Redis broker whose consumers keep the job records (``records``)."""

    def __init__(self, *, records: JobRecords | None = None, **kwargs):
        super().__init__(**kwargs)
        self.records = records
        #: Set when the worker stops: its consumers fetch nothing more.
        self.draining = False
        #: Redis message ids given back to their queue while still running (at shutdown).
        self.handed_back: set[str] = set()

    @property
    def consumer_class(self):
        return _JobConsumer if self.records is not None else super().consumer_class

    def maybe_maintain(self, queue_name: str) -> None:
        """Dramatiq's maintenance of a queue (a dead worker's unacknowledged messages back on
        the queue, old dead letters dropped), with the chance Dramatiq gives each fetch."""
        if self._should_do_maintenance("fetch"):
            self.scripts["dispatch"](keys=[self.namespace], args=[
                "qsize", dramatiq.common.current_millis(), queue_name, self.broker_id,
                self.heartbeat_timeout, self.dead_message_ttl, 1, self._max_unpack_size()])


#: Dramatiq's worker-thread logger. Its warnings are about a returned value with no
#: ``Results`` middleware (here the job records keep every result: noise on each job) and
#: skipped messages (logged by the job records with the job's state); its errors stay.
WORKER_THREAD_LOGGER = "dramatiq.worker.WorkerThread"


def build_broker(settings, *, client=None, records: JobRecords | None = None) -> JobBroker:
    """Build the Redis broker from the settings.

    Args:
        settings: the validated :class:`~scheduler_service.config.Settings`.
        client: an existing redis client to share; one is built from the settings otherwise
            (:func:`~scheduler_service.redis_client.connect`).
        records: the job state machine (see :mod:`scheduler_service.lifecycle`); without it
            the broker is a plain Dramatiq broker (processes that only read queues).

    Returns:
        The broker, also installed as Dramatiq's global broker.
    """
    middleware = [
        TimeLimit(time_limit=settings.job_time_limit_ms),
        ShutdownNotifications(),
        CurrentMessage(),
        *([records] if records is not None else []),
    ]
    kwargs = dict(
        namespace=settings.redis_namespace,
        middleware=middleware,
        heartbeat_timeout=settings.queue_heartbeat_timeout_ms,
        maintenance_chance=settings.queue_maintenance_chance,
        dead_message_ttl=settings.queue_dead_letter_ttl_ms,
    )
    if client is None:
        client = connect(settings)
    broker = JobBroker(records=records, client=client, **kwargs)
    dramatiq.set_broker(broker)
    return broker


def declare_actors(broker, registry, settings, run) -> dict:
    """Declare one actor per (job type, band) on ``broker``.

    Args:
        broker: the broker from :func:`build_broker`.
        registry: the loaded :class:`~scheduler_service.plugins.Registry`.
        settings: the settings (default retries and time limit).
        run: ``run(job: dict) -> result``, the function every actor calls; its result is
            what the job records keep.

    Returns:
        ``{actor name: actor}``.
    """
    logging.getLogger(WORKER_THREAD_LOGGER).setLevel(logging.ERROR)
    actors = {}
    for job_type in registry.job_types.values():
        for band, _, actor_priority in queueing.BANDS:
            name = queueing.actor_name(job_type.name, band)
            options = {}
            if "max_retries" in broker.actor_options:
                options["max_retries"] = (settings.queue_max_retries if job_type.max_retries is None
                                          else job_type.max_retries)
                options["throws"] = (PermanentError, CircuitOpen)
            actors[name] = dramatiq.actor(
                _named(run, name),
                actor_name=name,
                queue_name=queueing.queue_name(band),
                broker=broker,
                priority=actor_priority,
                time_limit=job_type.time_limit_ms or settings.job_time_limit_ms,
                **options,
            )
    return actors


def _named(run, name):
    def perform(job):
        return run(job)

    perform.__name__ = perform.__qualname__ = name.replace(".", "_")
    return perform
