"""``scheduler-service healthcheck --role ROLE``: is this host's process of a role alive?

For container health checks and process supervisors. Each check looks at what the role
itself keeps up to date, so a hung or dead process fails it:

* ``web``: ``GET /health`` on ``127.0.0.1:PORT`` answers 200 (``healthy`` or ``degraded``;
  503 means a critical component such as Redis is down);
* ``worker``: an entry of this host in ``{REDIS_NAMESPACE}:workers``, written every few
  seconds only while all the process's worker and consumer threads are alive
  (:class:`~scheduler_service.worker.WorkerHeartbeat`);
* ``cron``: this host's replica in the cron replicas' heartbeats, which its elector writes
  every third of ``CRON_LEADER_TTL_S``, leader or standby;
* ``subscriber``: this host's subscriber entry, refreshed every few seconds, saying it is
  connected to Redis;
* ``reference-api``: ``GET /health`` of the reference API on ``REFERENCE_API_PORT``.

"This host" is ``socket.gethostname()``: in a container, the container itself. Exit code
0 when healthy, 1 when not, with one line saying why either way.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Callable

ROLES = ("web", "worker", "cron", "subscriber", "reference-api")
#: Seconds an HTTP check waits for its answer.
HTTP_TIMEOUT_S = 4.0


@dataclass
class Verdict:
    healthy: bool
    reason: str


def _now_ms() -> int:
    return int(time.time() * 1000)


def _local(host: str) -> str:
    """The address to reach a server bound to ``host`` from the same machine."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_http(url: str) -> Verdict:
    """Healthy when ``url`` answers 200."""
    import requests

    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as e:
        return Verdict(False, f"{url} did not answer: {type(e).__name__}")
    status = ""
    try:
        status = f" ({response.json().get('status')})"
    except ValueError:
        pass
    if response.status_code == 200:
        return Verdict(True, f"{url} answered 200{status}")
    return Verdict(False, f"{url} answered {response.status_code}{status}")


def _age(now: int, seen) -> float:
    return (now - int(seen or 0)) / 1000


def _freshest(entries: dict[str, dict], field: str, now: int):
    """The entry with the newest ``field`` timestamp, as ``(identity, entry, age_s)``."""
    identity = max(entries, key=lambda i: int(entries[i].get(field) or 0))
    return identity, entries[identity], _age(now, entries[identity].get(field))


def check_worker(redis, namespace: str, host: str, max_age_s: float, now: int) -> Verdict:
    from .worker import workers_key

    entries = {}
    for identity, raw in redis.hgetall(workers_key(namespace)).items():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("host") == host:
            entries[identity.decode() if isinstance(identity, bytes) else identity] = entry
    if not entries:
        return Verdict(False, f"no worker process on {host} has written a heartbeat")
    fresh = {i: e for i, e in entries.items() if _age(now, e.get("seenAt")) <= max_age_s}
    if not fresh:
        identity, _, age = _freshest(entries, "seenAt", now)
        return Verdict(False, f"worker {identity}: last heartbeat {age:.1f}s ago (over "
                              f"{max_age_s:g}s): dead, hung, or a thread died")
    stopping = [i for i, e in fresh.items() if e.get("state") != "running"]
    if stopping:
        return Verdict(False, f"worker {stopping[0]} is stopping")
    identity, entry, age = _freshest(fresh, "seenAt", now)
    return Verdict(True, f"{len(fresh)} worker process(es) alive on {host}; {identity} "
                         f"({entry.get('threads')} threads) beat {age:.1f}s ago")


class _NoPlugins:
    """What :class:`~scheduler_service.cron.schedules.ScheduleStore` needs of a registry
    to read the replicas and the lock (the sweeps are not needed for that)."""

    sweeps: dict = {}


def check_cron(redis, settings, host: str, max_age_s: float, now: int) -> Verdict:
    from .cron.schedules import ScheduleStore

    store = ScheduleStore(redis, settings.redis_namespace, _NoPlugins(), settings)
    leader, _ = store.leader()
    # replicas() drops entries far older than this; it is given a wide window to see the stale.
    entries = {i: e for i, e in store.replicas(10 * max_age_s * 1000).items()
               if i.rsplit(":", 2)[0] == host}
    if not entries:
        return Verdict(False, f"no cron replica on {host} has written a heartbeat")
    identity, entry, age = _freshest(entries, "seenAt", now)
    if age > max_age_s:
        return Verdict(False, f"cron replica {identity}: last heartbeat {age:.1f}s ago (over "
                              f"{max_age_s:g}s)")
    role = "leader" if identity == leader else \
        f"standby (leader: {leader})" if leader else "standby (no leader right now)"
    return Verdict(True, f"cron replica {identity} is {role}, beat {age:.1f}s ago")


def check_subscriber(redis, namespace: str, host: str, max_age_s: float, now: int) -> Verdict:
    from .subscriber.status import read_instances

    entries = {i: e for i, e in read_instances(redis, f"{namespace}:").items()
               if e.get("host") == host}
    if not entries:
        return Verdict(False, f"no subscriber on {host} has written a heartbeat")
    identity, entry, age = _freshest(entries, "heartbeat", now)
    if age > max_age_s:
        return Verdict(False, f"subscriber {identity}: last heartbeat {age:.1f}s ago (over "
                              f"{max_age_s:g}s)")
    if entry.get("state") != "connected":
        error = f": {entry['lastError']}" if entry.get("lastError") else ""
        return Verdict(False, f"subscriber {identity} is {entry.get('state')}{error}")
    return Verdict(True, f"subscriber {identity} is connected, beat {age:.1f}s ago")


def default_max_age_s(role: str, settings) -> float:
    """Three heartbeats of the role: one late beat is not yet a death."""
    from .subscriber.status import HEARTBEAT_S as SUBSCRIBER_HEARTBEAT_S
    from .worker import HEARTBEAT_S as WORKER_HEARTBEAT_S

    if role == "cron":
        return float(settings.cron_leader_ttl_s)  # the elector beats every third of it
    if role == "subscriber":
        return 3 * SUBSCRIBER_HEARTBEAT_S
    return 3 * WORKER_HEARTBEAT_S


def check(role: str, settings, max_age_s: float | None = None, host: str | None = None,
          now: Callable[[], int] = _now_ms) -> Verdict:
    """The verdict on ``role`` for this host (or ``host``)."""
    if role == "web":
        return check_http(f"http://{_local(settings.host)}:{settings.port}/health")
    if role == "reference-api":
        return check_http(f"http://127.0.0.1:{settings.reference_api_port}/health")
    import redis as redis_lib

    from .redis_client import connect, describe

    host = host or socket.gethostname()
    max_age_s = default_max_age_s(role, settings) if max_age_s is None else max_age_s
    client = connect(settings, socket_connect_timeout=3, socket_timeout=3)
    try:
        if role == "worker":
            return check_worker(client, settings.redis_namespace, host, max_age_s, now())
        if role == "cron":
            return check_cron(client, settings, host, max_age_s, now())
        return check_subscriber(client, settings.redis_namespace, host, max_age_s, now())
    except redis_lib.RedisError as e:
        return Verdict(False, f"cannot read Redis at {describe(settings)}: "
                              f"{type(e).__name__}")
    finally:
        client.close()
