"""Every Redis client of the service, built in one place from the settings.

Redis is found one of two ways (see :mod:`scheduler_service.config`):

* ``REDIS_URL``: one server at a fixed address.
* ``REDIS_SENTINELS`` + ``REDIS_SENTINEL_MASTER``: the sentinels are asked for the current
  master, through redis-py's :class:`~redis.sentinel.Sentinel`. The client's pool is a
  :class:`~redis.sentinel.SentinelConnectionPool`: each new connection asks the sentinels
  again, and a connection to a master that was demoted (a ``READONLY`` reply) is dropped
  and reported as a :class:`redis.ConnectionError`. So after a failover every caller sees
  the same thing as during a short Redis outage (connection errors, which each role already
  rides out) and then the promoted replica, without a restart.

A failover can also leave the old master running: a planned one (``SENTINEL FAILOVER``),
or a partition that cut the master off from the sentinels but not from some clients. The
sentinels reconfigure such a master as a replica only when they next hear from it, up to
10 s later, and until then it still takes writes, which its demotion then throws away.
redis-py asks the sentinels only when it opens a connection, so a pool of open connections
would stay on the old master all that time. Here the pool also asks every
:data:`MASTER_CHECK_S` (on the next command after that), and drops the connections to a
master the sentinels no longer name; :func:`on_current_master` lets a long-held
subscription do the same.

Every role waits for Redis at start-up through :func:`wait_until_reachable` (one log line
per attempt), and reports the calls that meet an unreachable Redis later to its process's
:func:`outage`, which logs once when Redis is lost and once when it is back.

Whatever the way, callers get a plain :class:`redis.Redis`. Lua scripts registered on it
(``register_script``) are sent by SHA; a promoted replica that does not know one answers
``NOSCRIPT`` and redis-py's ``Script`` loads it again and retries, so no caller has to care.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from .config import redact_url
from .pids import current_pid

logger = logging.getLogger(__name__)

#: Connect and read timeout of each call to a sentinel (the question "who is the master?"):
#: short, so that a dead sentinel costs little before the next one on the list is asked.
SENTINEL_TIMEOUT_S = 2.0
#: How often a client asks the sentinels who the master is, besides at each new connection.
MASTER_CHECK_S = 1.0


class _FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool that also asks the sentinels every :data:`MASTER_CHECK_S`.

    When the answer changes, redis-py's pool disconnects its idle connections and drops
    busy ones as they are released (they no longer match the master's address), so every
    connection moves to the new master.
    """

    def __init__(self, service_name, sentinel_manager, **kwargs):
        super().__init__(service_name, sentinel_manager, **kwargs)
        self._next_check = 0.0

    def check_master(self) -> None:
        """Ask the sentinels again, unless that was done less than MASTER_CHECK_S ago."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + MASTER_CHECK_S
        try:
            self.get_master_address()
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # no answer now: the commands themselves will meet the outage

    def get_connection(self, command_name, *keys, **options):
        self.check_master()
        return super().get_connection(command_name, *keys, **options)


def connect(settings, **options) -> redis.Redis:
    """A client of the Redis the settings point to (under Sentinel: of the current master).

    Args:
        settings: the validated :class:`~scheduler_service.config.Settings`.
        **options: connection options of :class:`redis.Redis` (timeouts, keepalive,
            ``health_check_interval``...), the same whichever way Redis is found.

    Returns:
        A :class:`redis.Redis` whose pool follows the master through failovers when the
        settings name sentinels.
    """
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        sentinel_kwargs={"socket_connect_timeout": SENTINEL_TIMEOUT_S,
                         "socket_timeout": SENTINEL_TIMEOUT_S,
                         "password": settings.redis_sentinel_password},
    )
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=redis.Redis,
                               connection_pool_class=_FollowingPool, db=settings.redis_db,
                               password=settings.redis_password, **options)


class HeldConnection:
    """A client on one connection of ``client``'s pool, kept between the calls of a caller
    that makes one call at a time (the job store's group commit of creates).

    Taking a connection from the pool costs a lock, a pid check and a probe of the socket
    (a non-blocking read, made without the GIL), on every command; under load, creates
    follow each other without a pause, and that probe was a good share of the cost of
    each. The connection is given back to the pool and taken again every
    :data:`MASTER_CHECK_S` of use, so the pool's own checks still run that often: a socket
    closed by a restarted Redis is found then, and under Sentinel the connection moves to
    a new master as quickly as every other one. A connection error drops the socket (the
    next call connects again), as with any client. In a forked child the parent's
    connection is left alone and a new one is taken.
    """

    def __init__(self, client: redis.Redis, hold_s: float = MASTER_CHECK_S, clock=time.monotonic):
        self.pool = client.connection_pool
        self.hold_s = hold_s
        self.clock = clock
        self._client: redis.Redis | None = None
        self._pid = 0
        self._until = 0.0

    def client(self) -> redis.Redis:
        """The client to send the next call on (not to be shared between threads)."""
        now = self.clock()
        if self._client is not None and (now >= self._until or self._pid != current_pid()):
            self.release()
        if self._client is None:
            self._client = redis.Redis(connection_pool=self.pool, single_connection_client=True)
            self._pid, self._until = current_pid(), now + self.hold_s
        return self._client

    def run_script(self, script, args):
        """Run ``script`` (registered with ``register_script``, no keys) with ``args``.

        Sent as one ``EVALSHA`` straight on the held connection, without the client's
        per-command layers (options, retry wrapper, response callbacks: ``EVALSHA`` has
        none). A server that does not know the script (``NOSCRIPT``: a restarted or
        promoted Redis) gets it through the ``Script`` object, which loads it and retries.
        Errors are redis-py's own: the connection drops its socket on a connection error
        or timeout, and the next call connects again.
        """
        client = self.client()
        connection = client.connection
        try:
            connection.send_command("EVALSHA", script.sha, 0, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            return script(args=args, client=client)

    def release(self) -> None:
        """Give the connection back to its pool (a forked child just forgets its parent's)."""
        client, self._client = self._client, None
        if client is not None and self._pid == current_pid():
            client.close()


def on_current_master(pubsub: redis.client.PubSub) -> bool:
    """Whether a subscription's connection is still to the master the sentinels name.

    Always true without sentinels. A subscription holds its connection for good, so no
    pool can move it: its owner calls this now and then and subscribes again when false.
    """
    pool, connection = pubsub.connection_pool, pubsub.connection
    if not isinstance(pool, _FollowingPool) or connection is None:
        return True
    pool.check_master()
    address = pool.master_address
    return address is None or (connection.host, connection.port) == address


def describe(settings) -> str:
    """Where Redis is, for people (start-up banners, logs); never shows a password."""
    if not settings.redis_sentinels:
        return redact_url(settings.redis_url)
    nodes = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                     for host, port in settings.redis_sentinels)
    return (f"master {settings.redis_sentinel_master!r} of sentinels {nodes}, "
            f"db {settings.redis_db}")


#: Errors that mean "Redis cannot be reached now" (down, restarting, loading its data,
#: failing over), as opposed to a refused command.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError)
#: First pause between two attempts to reach Redis at start-up (seconds); it doubles.
STARTUP_RETRY_FIRST_S = 0.5
#: Longest pause between two attempts to reach Redis at start-up (seconds).
STARTUP_RETRY_MAX_S = 5.0


def wait_until_reachable(settings, role: str, stop=None, *, first_s: float = STARTUP_RETRY_FIRST_S,
                         max_s: float = STARTUP_RETRY_MAX_S) -> bool:
    """Block until Redis answers a PING, as every role does before it starts its work.

    Each failed attempt logs one line naming the role, where Redis is (never its
    password), the attempt and the pause before the next one; the pauses double from
    ``first_s`` up to ``max_s``. A refused login or another error that waiting cannot
    cure is raised at once.

    Args:
        settings: the validated settings.
        role: the role that waits (``worker``, ``cron``...), for the log lines.
        stop: a :class:`threading.Event` that ends the wait early (a stop signal).

    Returns:
        True once Redis answered; False when ``stop`` was set first.
    """
    where = describe(settings)
    client = connect(settings, socket_connect_timeout=2, socket_timeout=2)
    pause, attempt = first_s, 0
    try:
        while stop is None or not stop.is_set():
            attempt += 1
            try:
                client.ping()
            except UNREACHABLE as e:
                logger.warning(
                    "%s: Redis at %s not reachable (attempt %s: %s); next attempt in %.1fs",
                    role, where, attempt, _reason(e), pause,
                    extra={"role": role, "redis": where, "attempt": attempt,
                           "next_attempt_s": pause})
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
                pause = min(pause * 2, max_s)
                continue
            if attempt > 1:
                logger.info("%s: Redis at %s reachable after %s attempt(s)", role, where, attempt,
                            extra={"role": role, "redis": where, "attempt": attempt})
            return True
        return False
    finally:
        client.close()


def _reason(error: Exception) -> str:
    """A Redis error in one short line (its type and message, no traceback)."""
    return f"{type(error).__name__}: {error}".strip().rstrip(":")


class RedisOutage:
    """One log line when a process loses Redis and one when it is back, however many of
    its calls fail meanwhile (every thread reports here: consumers, heartbeats, the
    acknowledgement writers, the timer pump).

    ``failed`` is called where a call met :data:`UNREACHABLE`, ``reached`` where one
    succeeded; only the changes between the two states are logged.
    """

    def __init__(self, log=None):
        self._log = log or logger
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: Exception, where: str = "") -> None:
        """A call met an unreachable Redis; logs when it is the first since Redis was up."""
        with self._lock:
            self._failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._log.warning("lost Redis (%s)%s; retrying until it is back, without a line per "
                          "failed call", _reason(error), f" in {where}" if where else "",
                          extra={"redis_state": "lost", "source": where})

    def reached(self) -> None:
        """A call succeeded; logs when Redis had been lost."""
        if self._since is None:  # the common case: no lock taken
            return
        with self._lock:
            if self._since is None:
                return
            down_s, failures = time.monotonic() - self._since, self._failures
            self._since, self._failures = None, 0
        self._log.info("Redis is back after %.1fs (%s failed call(s) meanwhile)", down_s, failures,
                       extra={"redis_state": "back", "down_s": round(down_s, 3),
                              "failed_calls": failures})


_outages: dict[int, RedisOutage] = {}


def outage() -> RedisOutage:
    """This process's :class:`RedisOutage` (a forked child gets its own)."""
    pid = os.getpid()
    found = _outages.get(pid)
    if found is None:
        found = _outages.setdefault(pid, RedisOutage())
    return found
