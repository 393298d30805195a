"""The per-process accumulator of the metrics kept in Redis (see :mod:`scheduler_service.metrics`).

Counters and histograms that are not written by a Lua script on the way (API calls, request
durations, breaker openings, alerts) are added up in memory by the process's
:class:`Recorder` and written to Redis by a thread of its own, with one pipelined call every
:data:`FLUSH_S` seconds.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from typing import Callable

from .metrics import (
    SEP, Family, bucket_index, family_key, label_field, processes_key, prune_processes,
)

logger = logging.getLogger(__name__)

#: Seconds between two writes of a process's recorded deltas to Redis.
FLUSH_S = 5.0


class Recorder:
    """Adds counter and histogram deltas up in memory; a thread writes them to Redis.

    Recording costs a dict update under a lock; the thread writes everything gathered
    with one pipelined call every ``interval_s`` (sooner after :meth:`flush_soon`). Deltas
    a failed write could not store are kept for the next one. A process killed outright
    loses at most ``interval_s`` of them.

    Args:
        redis: the process's Redis client.
        prefix: ``"<namespace>:"``.
        interval_s: seconds between writes.
        identity: the process's name in ``metrics:processes``.
        clock: epoch milliseconds.
    """

    def __init__(self, redis, prefix: str, *, interval_s: float = FLUSH_S,
                 identity: str | None = None, clock: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.redis = redis
        self.prefix = prefix
        self.interval_s = interval_s
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.clock = clock
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ints: dict[tuple[str, str], int] = defaultdict(int)
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        #: ``() -> 0|1|2``: this process's breaker state, reported with each write.
        self.breaker_state: Callable[[], int] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def incr(self, family: Family, labels=(), amount: int = 1) -> None:
        key = (family_key(self.prefix, family), label_field(labels))
        with self._lock:
            self._ints[key] += amount

    def observe(self, family: Family, labels, seconds: float) -> None:
        key = family_key(self.prefix, family)
        base = label_field(labels)
        bucket = f"{base}{SEP}{bucket_index(family.buckets, seconds)}"
        with self._lock:
            self._ints[(key, bucket)] += 1
            self._sums[(key, f"{base}{SEP}sum")] += seconds

    def flush_soon(self) -> None:
        """Write at once rather than at the next interval (a state worth seeing changed)."""
        self._wake.set()

    def flush(self) -> bool:
        """Write what was recorded since the last write; False when Redis refused it."""
        with self._write_lock:
            with self._lock:
                ints, self._ints = self._ints, defaultdict(int)
                sums, self._sums = self._sums, defaultdict(float)
            if not ints and not sums and self.breaker_state is None:
                return True
            pipe = self.redis.pipeline(transaction=False)
            for (key, field), n in ints.items():
                pipe.hincrby(key, field, n)
            for (key, field), x in sums.items():
                pipe.hincrbyfloat(key, field, x)
            if self.breaker_state is not None:
                pipe.hset(processes_key(self.prefix), self.identity,
                          json.dumps({"breaker": self.breaker_state(), "seen": self.clock()}))
            try:
                pipe.execute()
                return True
            except Exception as e:  # Redis away: keep the deltas for the next write
                with self._lock:
                    for k, n in ints.items():
                        self._ints[k] += n
                    for k, x in sums.items():
                        self._sums[k] += x
                logger.debug("metrics not written yet: %s", e)
                return False

    def start(self) -> "Recorder":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="metrics-recorder", daemon=True)
            self._thread.start()
            atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the thread after a last write (once; later calls do nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        if os.getpid() == self.pid:
            self.flush()

    def _loop(self) -> None:
        next_prune = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.flush()
            if time.monotonic() >= next_prune and self.breaker_state is not None:
                next_prune = time.monotonic() + 600
                try:
                    prune_processes(self.redis, self.prefix, self.clock())
                except Exception as e:
                    logger.debug("could not prune process entries: %s", e)


#: Key of the recorder in ``Services.extras``.
EXTRAS_KEY = "metrics"


def get_recorder(services) -> Recorder:
    """The process's recorder (started on first use; a forked child gets its own)."""
    return services.per_process(EXTRAS_KEY, lambda: Recorder(
        services.redis, f"{services.settings.redis_namespace}:").start())
