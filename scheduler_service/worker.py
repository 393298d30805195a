"""The worker role: Dramatiq ``Worker`` threads in one or more processes.

One process runs ``QUEUE_CONCURRENCY`` worker threads over every queue of every job
type (or the ``--queues`` given). More processes are started as a supervised group of
single-process workers. Dramatiq's own CLI is not used because it offers no way to
set the consumers' idle poll interval, which bounds how late a due job starts.

Shutdown (SIGTERM or SIGINT), see :func:`shut_down`:

1. the consumers fetch nothing more (their heartbeat goes on), the worker threads take no
   further message, and the messages fetched but not started go back to their queue at
   once, so that other workers take them;
2. the jobs in progress get ``SHUTDOWN_GRACE_S`` to finish; each that does is recorded
   as usual;
3. what still runs then is handed back: its message returns to its queue and its record
   to ``queued`` (the attempt not spent), and whatever that thread does afterwards is not
   written, so another worker runs the job and its outcome is written once; a WARNING
   names each job handed back;
4. the connections are closed and the process exits 0, or :data:`EXIT_ABANDONED` when a
   job could not be handed back (Redis unreachable, or its message no longer this
   worker's) or an outcome could not be written: an ERROR names those jobs, which come
   back only once this worker's heartbeat is older than ``QUEUE_HEARTBEAT_TIMEOUT_MS``
   (their attempt counted, and a finished one runs again).

While it runs, a process writes a heartbeat into ``{REDIS_NAMESPACE}:workers`` every
:data:`HEARTBEAT_S` seconds, but only while all its worker and consumer threads are
alive; ``scheduler-service healthcheck --role worker`` reads it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict

from dramatiq import Worker
from dramatiq.common import iter_queue, join_all
from dramatiq.middleware import Middleware

from .lifecycle import job_id_of
from .redis_client import UNREACHABLE, outage
from .supervisor import stop_event_on_signals

logger = logging.getLogger(__name__)

#: Seconds between two heartbeats of a worker process.
HEARTBEAT_S = 5.0
#: Shortest time Dramatiq's own stop gets, after the hand-back, to stop the consumers (ms;
#: at least two of their poll intervals).
FINAL_STOP_MS = 1_000
#: Entries of workers not heard from for this long (killed ones) are removed.
PRUNE_MS = 3_600_000
#: Exit code of a worker that stopped leaving jobs it could not hand back (see step 4).
EXIT_ABANDONED = 4


def workers_key(namespace: str) -> str:
    """The hash of worker heartbeats: identity -> JSON ``{host, pid, seenAt, state, ...}``."""
    return f"{namespace}:workers"


class JobsInProgress(Middleware):
    """Which messages this process's worker threads are running, so that a stop can hand
    back those that did not finish (:meth:`hand_back`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, object] = {}  # Redis message id -> message

    def before_process_message(self, broker, message):
        rid = message.options.get("redis_message_id")
        if rid:
            with self._lock:
                self._running[rid] = message

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._done(message)

    def after_skip_message(self, broker, message):
        self._done(message)

    def _done(self, message):
        with self._lock:
            self._running.pop(message.options.get("redis_message_id"), None)

    def count(self) -> int:
        with self._lock:
            return len(self._running)

    def hand_back(self, broker) -> dict[str, dict[str, object]]:
        """Mark every message still running as handed back (its end will not be written)
        and return them by queue (``{queue: {Redis id: message}}``). A message whose job
        ends at the same moment is either here or written as usual, never both (one lock
        decides)."""
        with self._lock:
            running, self._running = self._running, {}
            broker.handed_back.update(running)
        by_queue = defaultdict(dict)
        for rid, message in running.items():
            by_queue[message.queue_name][rid] = message
        return dict(by_queue)


class WorkerHeartbeat:
    """Writes this process's entry in :func:`workers_key` while its threads are alive."""

    def __init__(self, redis, namespace: str, worker: Worker, threads: int, queues):
        self.redis = redis
        self.key = workers_key(namespace)
        self.worker = worker
        self.host = socket.gethostname()
        self.identity = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.info = {"host": self.host, "pid": os.getpid(), "threads": threads,
                     "queues": sorted(queues) if queues else None,
                     "startedAt": int(time.time() * 1000)}
        self.state = "running"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker-heartbeat", daemon=True)

    def alive(self) -> bool:
        """Every worker thread and consumer thread still runs."""
        threads = [*self.worker.workers, *self.worker.consumers.values()]
        return bool(threads) and all(t.is_alive() for t in threads)

    def beat(self) -> bool:
        """Write the entry if the threads are alive; True when written."""
        if not self.alive():
            return False
        now = int(time.time() * 1000)
        self.redis.hset(self.key, self.identity,
                        json.dumps({**self.info, "state": self.state, "seenAt": now}))
        for identity, raw in self.redis.hgetall(self.key).items():
            try:
                gone = now - int(json.loads(raw)["seenAt"]) > PRUNE_MS
            except (ValueError, KeyError, TypeError):
                gone = True
            if gone:
                self.redis.hdel(self.key, identity)
        return True

    def _loop(self):
        while not self._stop.is_set():
            try:
                if self.state == "stopping":
                    self.stopping()  # its threads end one by one now: not a failure
                elif not self.beat():
                    logger.error("a worker or consumer thread died; no heartbeat written")
                else:
                    outage().reached()
            except UNREACHABLE as e:  # one line per outage, for every thread of the process
                outage().failed(e, "the worker heartbeat")
            except Exception as e:
                logger.warning("could not write the worker heartbeat: %s", e)
            self._stop.wait(HEARTBEAT_S)

    def start(self) -> "WorkerHeartbeat":
        self._thread.start()
        return self

    def stopping(self) -> None:
        """Say so in the entry at once (health checks then report the worker as stopping)."""
        self.state = "stopping"
        try:
            self.redis.hset(self.key, self.identity, json.dumps(
                {**self.info, "state": "stopping", "seenAt": int(time.time() * 1000)}))
        except Exception as e:
            logger.debug("could not mark the worker as stopping: %s", e)

    def stop(self) -> None:
        """Stop beating and remove the entry (a clean stop is not a dead worker)."""
        self._stop.set()
        self._thread.join(5)
        try:
            self.redis.hdel(self.key, self.identity)
        except Exception as e:
            logger.debug("could not remove the worker heartbeat: %s", e)


def _requeue_unstarted(worker: Worker) -> tuple[int, list[str]]:
    """Give the messages fetched but not started back to their queues; returns how many
    went back and the job ids of those that could not (Redis unreachable)."""
    by_queue = defaultdict(list)
    for _, message in iter_queue(worker.work_queue):
        by_queue[message.queue_name].append(message)
    returned, stranded = 0, []
    for queue_name, messages in by_queue.items():
        try:
            worker.consumers[queue_name].requeue_messages(messages)
            returned += len(messages)
        except UNREACHABLE:
            stranded += [job_id_of(m) for m in messages]
    return returned, stranded


def _hand_back(broker, left: dict) -> tuple[list[str], list[str]]:
    """Requeue what still runs (see :meth:`JobsInProgress.hand_back`); returns the job ids
    handed back and those that could not be (Redis unreachable, or a message this worker
    no longer holds in Redis)."""
    handed, stranded = [], []
    for queue_name, messages in left.items():
        ids = [job_id_of(m) for m in messages.values()]
        try:
            returned = broker.records.requeue(broker, queue_name, list(messages))
        except UNREACHABLE:
            stranded += ids
            continue
        if returned == len(ids):
            handed += ids
        else:  # which ones is not told: none counts as cleanly handed back
            stranded += ids
    return handed, stranded


def _unwritten(worker: Worker) -> list[str]:
    """Redis ids of the outcomes the consumers still hold unwritten (after their stop)."""
    found = []
    for thread in worker.consumers.values():
        unsettled = getattr(thread.consumer, "unsettled", None)
        if unsettled is not None:
            found += sorted(unsettled())
    return found


def shut_down(worker: Worker, broker, in_progress: JobsInProgress, grace_s: float,
              poll_ms: int = 100) -> dict:
    """Stop ``worker`` gracefully (the steps in the module's docstring).

    Args:
        worker: the started Dramatiq worker.
        broker: its :class:`~scheduler_service.broker.JobBroker`.
        in_progress: the :class:`JobsInProgress` middleware added to ``broker``.
        grace_s: how long the jobs in progress may take to finish.
        poll_ms: the consumers' poll interval (``QUEUE_POLL_INTERVAL_MS``).

    Returns:
        ``{"returned": n, "finished": n, "handed_back": n, "abandoned": [...]}``: messages
        given back unstarted, jobs that finished within the grace, jobs handed back still
        running, and the jobs (ids; Redis message ids for unwritten outcomes) that could be
        neither handed back nor recorded.
    """
    started = time.monotonic()
    broker.draining = True
    for thread in worker.workers:
        thread.stop()
    returned, abandoned = _requeue_unstarted(worker)
    running = in_progress.count()
    logger.info("stopping: %s job(s) in progress get up to %ss to finish; %s fetched but "
                "not started returned to their queue", running, grace_s, returned,
                extra={"in_progress": running, "returned": returned, "grace_s": grace_s})
    join_all(worker.workers, int(grace_s * 1000))
    left = in_progress.hand_back(broker)
    handed, stranded = _hand_back(broker, left)
    abandoned += stranded
    if handed:
        logger.warning("%s job(s) still running after SHUTDOWN_GRACE_S=%ss handed back to "
                       "their queue; another worker runs them: %s", len(handed), grace_s,
                       ", ".join(handed),
                       extra={"handed_back": len(handed), "job_ids": handed, "grace_s": grace_s})
    # Dramatiq's own stop: consumers stopped, anything fetched meanwhile requeued, acks
    # flushed, connections closed. The threads of handed-back jobs are not waited for.
    worker.stop(timeout=max(FINAL_STOP_MS, 2 * poll_ms))
    abandoned += _unwritten(worker)
    if abandoned:
        logger.error("stopped leaving %s job(s) it could neither hand back nor record: %s; "
                     "they run again once this worker's heartbeat is older than "
                     "QUEUE_HEARTBEAT_TIMEOUT_MS", len(abandoned), ", ".join(map(str, abandoned)),
                     extra={"abandoned": abandoned})
    summary = {"returned": returned, "finished": running - sum(len(r) for r in left.values()),
               "handed_back": len(handed), "abandoned": abandoned}
    logger.info("worker stopped in %.1fs", time.monotonic() - started, extra=summary)
    return summary


def run_worker(settings, registry, threads: int, queues=None) -> int:
    """Run one worker process until SIGINT/SIGTERM; returns the exit code."""
    from .services import build_services

    services = build_services(settings, registry)
    in_progress = JobsInProgress()
    services.broker.add_middleware(in_progress)
    worker = Worker(services.broker, queues=set(queues) if queues else None,
                    worker_threads=threads, worker_timeout=settings.queue_poll_interval_ms)
    stop = stop_event_on_signals("finishing jobs in progress")
    services.broker.emit_after("process_boot")
    worker.start()
    heartbeat = WorkerHeartbeat(services.redis, settings.redis_namespace, worker, threads,
                                queues).start()
    logger.info("worker ready: %s thread(s) on %s queue(s)", threads,
                len(queues) if queues else len(services.broker.get_declared_queues()))
    stop.wait()
    heartbeat.stopping()
    try:
        summary = shut_down(worker, services.broker, in_progress, settings.shutdown_grace_s,
                            settings.queue_poll_interval_ms)
    finally:
        heartbeat.stop()
        services.close()
    return EXIT_ABANDONED if summary["abandoned"] else 0
