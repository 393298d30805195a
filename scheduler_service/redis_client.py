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

Whatever the way, callers get a plain :class:`redis.Redis`. Lua scripts registered on it
(``register_script``) are sent by SHA; a promoted replica that does not know one answers
``NOSCRIPT`` and redis-py's ``Script`` loads it again and retries, so no caller has to care.
"""

from __future__ import annotations

import redis
from redis.sentinel import Sentinel

from .config import redact_url

#: Connect and read timeout of each call to a sentinel (the question "who is the master?"):
#: short, so that a dead sentinel costs little before the next one on the list is asked.
SENTINEL_TIMEOUT_S = 2.0


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
                               db=settings.redis_db, password=settings.redis_password, **options)


def describe(settings) -> str:
    """Where Redis is, for people (start-up banners, logs); never shows a password."""
    if not settings.redis_sentinels:
        return redact_url(settings.redis_url)
    nodes = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                     for host, port in settings.redis_sentinels)
    return (f"master {settings.redis_sentinel_master!r} of sentinels {nodes}, "
            f"db {settings.redis_db}")
