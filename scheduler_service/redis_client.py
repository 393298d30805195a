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

Whatever the way, callers get a plain :class:`redis.Redis`. Lua scripts registered on it
(``register_script``) are sent by SHA; a promoted replica that does not know one answers
``NOSCRIPT`` and redis-py's ``Script`` loads it again and retries, so no caller has to care.
"""

from __future__ import annotations

import time

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from .config import redact_url

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
