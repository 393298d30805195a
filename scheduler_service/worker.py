"""The worker role: Dramatiq ``Worker`` threads in one or more processes.

One process runs ``QUEUE_CONCURRENCY`` worker threads over every queue of every job
type (or the ``--queues`` given). More processes are started as a supervised group of
single-process workers. Dramatiq's own CLI is not used because it offers no way to
set the consumers' idle poll interval, which bounds how late a due job starts.
"""

from __future__ import annotations

import logging

from dramatiq import Worker

from .supervisor import stop_event_on_signals

logger = logging.getLogger(__name__)

#: Milliseconds a stopping worker waits for jobs in progress.
SHUTDOWN_TIMEOUT_MS = 30_000


def run_worker(settings, registry, threads: int, queues=None) -> int:
    """Run one worker process until SIGINT/SIGTERM; returns the exit code."""
    from .services import build_services

    services = build_services(settings, registry)
    worker = Worker(services.broker, queues=set(queues) if queues else None,
                    worker_threads=threads, worker_timeout=settings.queue_poll_interval_ms)
    stop = stop_event_on_signals("finishing jobs in progress")
    services.broker.emit_after("process_boot")
    worker.start()
    logger.info("worker ready: %s thread(s) on %s queue(s)", threads,
                len(queues) if queues else len(services.broker.get_declared_queues()))
    stop.wait()
    worker.stop(timeout=SHUTDOWN_TIMEOUT_MS)
    services.close()
    logger.info("worker stopped")
    return 0
