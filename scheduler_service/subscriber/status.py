"""What the subscriber processes report, kept in Redis so that any web process can read it.

Keys (under ``REDIS_NAMESPACE``):

* ``subscriber:instances`` — hash: instance id → JSON ``{"state", "since", "heartbeat",
  "lastMessageAt", "host", "pid"}``; a subscriber refreshes its entry every few seconds
  and removes it when it stops cleanly;
* ``subscriber:stats`` — hash of counters shared by every replica (messages received,
  invalid and by outcome per event, reconnects, deduplicated world-time messages, reaction
  errors) and ``lastMessageAt``.

The ``subscriber`` health component and the ``scheduler_subscriber_*`` metrics read them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

from ..jobtypes import HealthStatus

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of a subscriber's entry.
HEARTBEAT_S = 5.0
#: An entry not refreshed for this long belongs to a dead or cut-off subscriber.
STALE_MS = 30_000
#: Stale entries older than this are removed by the live subscribers.
PRUNE_MS = 3_600_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def instances_key(prefix: str) -> str:
    return f"{prefix}subscriber:instances"


def stats_key(prefix: str) -> str:
    return f"{prefix}subscriber:stats"


class StatusReporter:
    """One subscriber's entry and the shared counters.

    Args:
        redis: the client used for status writes.
        prefix: ``"{REDIS_NAMESPACE}:"``.
        instance_id: unique per process (``host:pid`` and a random suffix by default).
    """

    def __init__(self, redis, prefix: str, instance_id: str | None = None):
        self.redis = redis
        self.prefix = prefix
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.instance_id = instance_id or f"{self.host}:{self.pid}:{os.urandom(3).hex()}"
        self.state = "starting"
        self.since = _now_ms()
        self.last_message_ms: int | None = None
        self.last_error: str | None = None

    def _entry(self, now: int) -> str:
        return json.dumps({"state": self.state, "since": self.since, "heartbeat": now,
                           "lastMessageAt": self.last_message_ms, "host": self.host,
                           "pid": self.pid, "lastError": self.last_error})

    def set_state(self, state: str, error: str | None = None) -> None:
        """Remember the connection state locally (written with the next heartbeat)."""
        if state != self.state:
            self.state, self.since = state, _now_ms()
        if error is not None:
            self.last_error = error

    def heartbeat(self) -> None:
        """Write this subscriber's entry and prune long-dead ones.

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        now = _now_ms()
        key = instances_key(self.prefix)
        self.redis.hset(key, self.instance_id, self._entry(now))
        for instance, raw in self.redis.hgetall(key).items():
            try:
                if now - int(json.loads(raw)["heartbeat"]) > PRUNE_MS:
                    self.redis.hdel(key, instance)
            except (ValueError, KeyError, TypeError):
                self.redis.hdel(key, instance)

    def connected(self, reconnected: bool) -> None:
        """Record a (re)connection; counts it when it follows a lost connection."""
        self.set_state("connected")
        self.last_error = None
        if reconnected:
            self.redis.hincrby(stats_key(self.prefix), "reconnects", 1)
        self.heartbeat()

    def message(self, event: str, invalid_reason: str | None = None) -> None:
        """Count one message received (and, when given a reason, invalid)."""
        self.last_message_ms = now = _now_ms()
        pipe = self.redis.pipeline(transaction=False)
        key = stats_key(self.prefix)
        pipe.hincrby(key, f"received:{event}", 1)
        if invalid_reason is not None:
            pipe.hincrby(key, f"invalid:{event}:{invalid_reason}", 1)
        pipe.hset(key, "lastMessageAt", now)
        pipe.execute()

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a shared counter (``deduplicated``, ``reaction_errors:<name>``...)."""
        self.redis.hincrby(stats_key(self.prefix), name, amount)

    def deregister(self) -> None:
        """Remove this subscriber's entry (a clean stop is not a failure)."""
        self.redis.hdel(instances_key(self.prefix), self.instance_id)


def read_instances(redis, prefix: str) -> dict[str, dict]:
    """Every registered subscriber's entry, by instance id."""
    out = {}
    for instance, raw in redis.hgetall(instances_key(prefix)).items():
        try:
            out[instance.decode() if isinstance(instance, bytes) else instance] = json.loads(raw)
        except ValueError:
            continue
    return out


def read_stats(redis, prefix: str) -> dict[str, int]:
    """The shared counters (and ``lastMessageAt``) as integers."""
    out = {}
    for name, value in redis.hgetall(stats_key(prefix)).items():
        name = name.decode() if isinstance(name, bytes) else name
        try:
            out[name] = int(value)
        except ValueError:
            continue
    return out


def summarize(instances: dict[str, dict], now_ms: int, last_message_ms: int | None = None) -> HealthStatus:
    """The health of the subscribers from their entries (a pure function of them and ``now``).

    ``last_message_ms`` is the shared last-message time (entries refresh theirs only with
    each heartbeat).

    Up when at least one subscriber is connected and alive; down when subscribers are
    registered but none is (disconnected, or silent for longer than :data:`STALE_MS`).
    With none registered, the component is up and says so: the subscriber is the fast
    path only, and the periodic sweeps still reach every reaction.
    """
    if not instances:
        return HealthStatus("up", "no subscriber running: campaign messages are not followed; "
                                  "the periodic sweeps still apply every change",
                            {"instances": 0, "connected": 0})
    alive = {i: e for i, e in instances.items() if now_ms - int(e.get("heartbeat") or 0) <= STALE_MS}
    connected = {i: e for i, e in alive.items() if e.get("state") == "connected"}
    last = max([e.get("lastMessageAt") or 0 for e in instances.values()] + [last_message_ms or 0]) or None
    details = {
        "instances": len(instances), "connected": len(connected),
        "lastMessageAt": last,
        "subscribers": {i: {"state": e.get("state") if i in alive else "silent",
                            "since": e.get("since"), "heartbeat": e.get("heartbeat"),
                            "lastMessageAt": e.get("lastMessageAt"),
                            **({"lastError": e["lastError"]} if e.get("lastError") else {})}
                        for i, e in sorted(instances.items())},
    }
    ago = f"; last message {(now_ms - last) / 1000:.1f}s ago" if last else "; no message yet"
    if connected:
        return HealthStatus("up", f"{len(connected)} of {len(instances)} subscriber(s) connected{ago}",
                            details)
    return HealthStatus("down", f"none of {len(instances)} subscriber(s) connected "
                                f"({len(alive)} alive, {len(instances) - len(alive)} silent){ago}",
                        details)


def subscriber_check(services) -> HealthStatus:
    """The ``subscriber`` component of ``/health``."""
    prefix = f"{services.settings.redis_namespace}:"
    last = services.redis.hget(stats_key(prefix), "lastMessageAt")
    return summarize(read_instances(services.redis, prefix), _now_ms(),
                     int(last) if last else None)


class SubscriberCollector:
    """Prometheus collector of the subscribers' shared counters, read at scrape time."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        received = CounterMetricFamily("scheduler_subscriber_messages_received",
                                       "Campaign messages received by the subscribers.",
                                       labels=["event"])
        invalid = CounterMetricFamily("scheduler_subscriber_messages_invalid",
                                      "Campaign messages dropped as invalid.",
                                      labels=["event", "reason"])
        dropped = CounterMetricFamily(
            "scheduler_subscriber_messages_dropped",
            "Valid messages dropped after asking the API: unknown_campaign, no_world_clock, "
            "or unverified (the API could not be asked).", labels=["event", "reason"])
        clamped = CounterMetricFamily(
            "scheduler_subscriber_world_time_clamped",
            "worldTimeAdvanced messages claiming a time ahead of the API's clock (timers were "
            "pumped only to the API's time).")
        reconnects = CounterMetricFamily("scheduler_subscriber_reconnects",
                                         "Times a subscriber reconnected to Redis after losing it.")
        trailing = CounterMetricFamily(
            "scheduler_subscriber_world_time_trailing_reactions",
            "Windows whose newer time ran the world-time reactions once more at their end.")
        deduplicated = CounterMetricFamily(
            "scheduler_subscriber_world_time_deduplicated",
            "worldTimeAdvanced messages inside a campaign's cooldown window (timers pumped only).")
        errors = CounterMetricFamily("scheduler_subscriber_reaction_errors",
                                     "Reactions that raised.", labels=["reaction"])
        outcomes = CounterMetricFamily(
            "scheduler_subscriber_messages",
            "Campaign messages by event (the channel's kind) and outcome: handled, "
            "deduplicated (inside the campaign's cooldown), dropped, invalid.",
            labels=["event", "outcome"])
        connected = GaugeMetricFamily("scheduler_subscriber_connected",
                                      "Subscribers connected to Redis and alive.")
        last = GaugeMetricFamily("scheduler_subscriber_last_message_timestamp_seconds",
                                 "When a subscriber last received a message (epoch seconds).")
        prefix = f"{self.services.settings.redis_namespace}:"
        try:
            stats = read_stats(self.services.redis, prefix)
            health = summarize(read_instances(self.services.redis, prefix), _now_ms())
        except Exception as e:  # a scrape must still answer while Redis is down
            logger.warning("subscriber metrics unavailable: %s", e)
            return
        for name, value in sorted(stats.items()):
            kind, _, rest = name.partition(":")
            if kind == "received":
                received.add_metric([rest], value)
            elif kind == "invalid":
                event, _, reason = rest.partition(":")
                invalid.add_metric([event, reason], value)
            elif kind == "dropped":
                event, _, reason = rest.partition(":")
                dropped.add_metric([event, reason], value)
            elif kind == "reaction_errors":
                errors.add_metric([rest], value)
            elif kind == "outcome":
                event, _, outcome = rest.partition(":")
                outcomes.add_metric([event, outcome], value)
        reconnects.add_metric([], stats.get("reconnects", 0))
        deduplicated.add_metric([], stats.get("deduplicated", 0))
        trailing.add_metric([], stats.get("trailing", 0))
        clamped.add_metric([], stats.get("clamped", 0))
        connected.add_metric([], health.details.get("connected", 0))
        if stats.get("lastMessageAt"):
            last.add_metric([], stats["lastMessageAt"] / 1000)
        yield from (received, outcomes, invalid, dropped, clamped, reconnects, deduplicated,
                    trailing, errors, connected, last)
