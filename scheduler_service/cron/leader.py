"""Leader election among ``cron`` replicas: one Redis lock with an expiry.

The lock is one key holding the leader's identity. A replica takes it when it is free
(``SET key identity PX ttl``), or takes it back when it still holds its own identity
(a renewal lost to a Redis outage or failover); the leader renews it with a
compare-and-``PEXPIRE`` (Lua scripts, so neither ever touches a lock that another replica
has taken since), and gives it up on shutdown with a compare-and-``DEL``. If the leader
dies, the key expires and a standby takes it within one TTL plus one attempt (a second at
most); a leader that stops deletes the key, and a standby takes it within that second.

A leader must stop firing *before* its lock can expire in Redis, even when it cannot
reach Redis to learn so. :class:`Lease` is that rule on the local monotonic clock: the
lease counts from the moment the acquiring or renewing command was *sent* (Redis starts
the expiry later than that, so the local view is the earlier one), minus a safety
margin for clock-rate drift. :class:`Lease` is pure and unit-tested; :class:`LeaderLock`
is the Redis side; :class:`Elector` is the thread that drives both.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import redis

logger = logging.getLogger(__name__)

#: Longest a standby waits between two attempts to take the lock.
STANDBY_POLL_S = 1.0
#: Fraction of the TTL a leader keeps in reserve: it stops firing this much before
#: the lock could expire, to cover clock-rate differences between hosts.
DEFAULT_SAFETY = 0.2

_ACQUIRE = """
local holder = redis.call('get', KEYS[1])
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def new_identity() -> str:
    """``host:pid:random``: unique per process, readable in /health and logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Lease:
    """How long this replica may act as leader, on its own monotonic clock.

    Attributes:
        ttl_s: the lock's time to live.
        safety: fraction of the TTL kept in reserve.
        since: monotonic time the current lease was granted (None: not leader).
        until: monotonic time after which the lease is no longer trusted.
    """

    ttl_s: float
    safety: float = DEFAULT_SAFETY
    since: float | None = None
    until: float | None = None

    def grant(self, sent_at: float) -> None:
        """The lock was taken or renewed by a command sent at ``sent_at``."""
        if self.since is None:
            self.since = sent_at
        self.until = sent_at + self.ttl_s * (1 - self.safety)

    def revoke(self) -> None:
        """Leadership is lost (renewal refused, Redis unreachable, or shutdown)."""
        self.since = None
        self.until = None

    @property
    def held(self) -> bool:
        """Whether this replica believes it holds the lock (it may have run out)."""
        return self.since is not None

    def valid(self, now: float) -> bool:
        """Whether this replica may fire at monotonic time ``now``."""
        return self.until is not None and now < self.until


class LeaderLock:
    """The lock key in Redis: take, renew, release, and read who holds it."""

    def __init__(self, client: redis.Redis, key: str, identity: str, ttl_ms: int):
        self.redis = client
        self.key = key
        self.identity = identity
        self.ttl_ms = int(ttl_ms)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it, or take it back if it still names this replica.

        The second case follows a renewal that failed on a Redis error (an outage, or a
        failover whose promoted replica has the key): nobody else can have taken the lock
        meanwhile, so there is no reason to stand by until it expires.
        """
        return bool(self._acquire(keys=[self.key], args=[self.identity, self.ttl_ms]))

    def renew(self) -> bool:
        """Extend the lock if this replica still holds it; False means it was lost."""
        return bool(self._renew(keys=[self.key], args=[self.identity, self.ttl_ms]))

    def release(self) -> bool:
        """Give the lock up if this replica holds it (a standby may take it at once)."""
        return bool(self._release(keys=[self.key], args=[self.identity]))

    def holder(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


class Elector:
    """A thread that keeps trying to become leader and, once leader, renews.

    It renews every third of the TTL, and tries to acquire every third of it or every
    :data:`STANDBY_POLL_S`, whichever is shorter. A refused renewal or a
    Redis error revokes the lease at once; :meth:`is_leader` also turns False by
    itself when the lease runs out before a renewal succeeds.

    Args:
        lock: the :class:`LeaderLock`.
        on_elected: called in the elector thread after this replica became leader.
        on_lost: called with a reason after it stopped being leader.
        on_beat: called on every round, leader or not (heartbeats, bookkeeping).
    """

    def __init__(self, lock: LeaderLock, *, on_elected: Callable[[], None] = lambda: None,
                 on_lost: Callable[[str], None] = lambda reason: None,
                 on_beat: Callable[[bool], None] = lambda leader: None,
                 clock: Callable[[], float] = time.monotonic):
        self.lock = lock
        self.lease = Lease(lock.ttl_ms / 1000)
        self.interval_s = max(0.05, lock.ttl_ms / 3000)
        self.standby_interval_s = min(self.interval_s, STANDBY_POLL_S)
        self.on_elected = on_elected
        self.on_lost = on_lost
        self.on_beat = on_beat
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def is_leader(self) -> bool:
        """Whether this replica may fire now."""
        return self.lease.valid(self.clock())

    def start(self) -> "Elector":
        self._thread = threading.Thread(target=self._loop, name="cron-elector", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and give the lock up, so a standby need not wait for the TTL."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._mutex:
            was_leader = self.lease.held
            self.lease.revoke()
        if was_leader:
            try:
                self.lock.release()
                logger.info("%s released cron leadership", self.lock.identity,
                            extra={"identity": self.lock.identity})
            except redis.RedisError as e:
                logger.warning("could not release the cron leader lock: %s", e)

    def step(self) -> None:
        """One round: renew when leader, else try to acquire."""
        sent_at = self.clock()
        with self._mutex:
            if self._stop.is_set():
                return
            held = self.lease.held
            try:
                ok = self.lock.renew() if held else self.lock.try_acquire()
            except redis.RedisError as e:
                if held:
                    self._lose(f"Redis error while renewing: {e}")
                else:
                    logger.debug("cannot reach Redis to seek leadership: %s", e)
                return
            if ok:
                self.lease.grant(sent_at)
                if not held:
                    logger.info("%s became cron leader", self.lock.identity,
                                extra={"identity": self.lock.identity})
                    elected = True
                else:
                    elected = False
            elif held:
                self._lose(f"lock now held by {self.lock.holder()!r}")
                return
            else:
                elected = False
        if elected:
            self.on_elected()

    def _lose(self, reason: str) -> None:
        self.lease.revoke()
        logger.warning("%s lost cron leadership: %s", self.lock.identity, reason,
                       extra={"identity": self.lock.identity})
        self.on_lost(reason)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # never let the elector die
                logger.exception("cron elector round failed")
            try:
                self.on_beat(self.is_leader())
            except Exception as e:
                logger.debug("cron heartbeat failed: %s", e)
            # A leader renews every third of the TTL; a standby tries every
            # STANDBY_POLL_S at most, so it takes over within that of a lock released by a
            # stopping leader, or of one that expired after a leader died.
            self._stop.wait(self.interval_s if self.lease.held else self.standby_interval_s)
