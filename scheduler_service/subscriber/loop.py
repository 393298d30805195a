"""The subscriber's loop: listen, react, and reconnect forever.

One :class:`Subscriber` per process. It holds a pattern subscription on a connection of
its own and does everything else (timers, cooldown claims, job records, its status)
through the process's shared Redis client. Any Redis failure ends the current
subscription; the loop then waits (:func:`~.messages.reconnect_delay`, at most
``SUBSCRIBER_RECONNECT_MAX_MS``), subscribes again, and enqueues a catch-up
``EVENT_EXPIRATION`` for every campaign, since whatever was published meanwhile is lost.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from ..alerts import get_alerter
from ..campaigns import get_campaign_directory
from ..errors import UpstreamError
from ..event_expiration import MESSAGE_PRIORITY, SYSTEM
from ..jobstore import iso_ms
from ..reactions import ReactionContext, reactions_to
from ..redis_client import connect, on_current_master
from ..timers import pump_world
from .messages import (
    PATTERNS,
    WORLD_TIME_ADVANCED,
    InvalidMessage,
    WorldTimeAdvanced,
    actions_for,
    check_against_api,
    cooldown_key,
    needs_cooldown,
    parse_message,
    reconnect_delay,
)
from .status import HEARTBEAT_S, StatusReporter

logger = logging.getLogger(__name__)

#: Longest a read of the subscription blocks, so that a stop request is seen quickly.
POLL_S = 0.5
#: Longest wait for Redis to confirm the subscription.
SUBSCRIBE_TIMEOUT_S = 10
#: Seconds between PINGs on an idle subscription (finds a half-open connection).
HEALTH_CHECK_S = 10

#: Errors that mean "Redis is gone": the subscription is dropped and rebuilt.
REDIS_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)


class Subscriber:
    """Follows the campaign messages of the main API.

    Args:
        services: the process's :class:`~scheduler_service.services.Services`.
        instance_id: the name under which it reports its status (unique by default).
    """

    def __init__(self, services, instance_id: str | None = None):
        self.services = services
        self.settings = services.settings
        self.prefix = f"{self.settings.redis_namespace}:"
        self.status = StatusReporter(services.redis, self.prefix, instance_id)
        self.cap_s = self.settings.subscriber_reconnect_max_ms / 1000
        self.connected = threading.Event()
        self.reconnects = 0
        self.alerts = get_alerter(services)
        self._down_alerted = False
        #: Per campaign, the newest world-time message that arrived inside its cooldown
        #: window, and when the window ends (monotonic seconds): its reactions run then.
        self.trailing: dict[str, tuple[float, WorldTimeAdvanced]] = {}

    # -- one message -----------------------------------------------------------------------

    def handle(self, channel, data) -> None:
        """Validate and act on one message; an invalid one is logged and counted.

        Raises:
            redis.ConnectionError and the other :data:`REDIS_FAILURES`: Redis went away
                (the caller reconnects).
        """
        try:
            message = parse_message(channel, data)
        except InvalidMessage as e:
            name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
            logger.warning("invalid message on %s: %s", name, e,
                           extra={"channel": name, "reason": e.reason})
            self.status.message(e.event, invalid_reason=e.reason)
            self.status.count(f"outcome:{e.event}:invalid")
            return
        self.status.message(message.event)
        event = message.event
        message = self.verify(message)
        if message is None:
            self.status.count(f"outcome:{event}:dropped")
            return
        first = True
        if needs_cooldown(message, self.settings.subscriber_cooldown_ms):
            first = bool(self.services.redis.set(
                cooldown_key(self.prefix, message.campaign_id), message.new_time_ms,
                nx=True, px=self.settings.subscriber_cooldown_ms))
        actions = actions_for(message, first)
        if actions.pump_world_to_ms is not None:
            pump_world(self.services.jobs, message.campaign_id, actions.pump_world_to_ms)
        if actions.reactions is None:
            self.status.count("deduplicated")
            self.status.count(f"outcome:{event}:deduplicated")
            self._defer(message)
            logger.debug("world time of %s advanced inside its cooldown; timers pumped, "
                         "reactions deferred to the window's end", message.campaign_id,
                         extra={"campaign_id": message.campaign_id})
            return
        self.react(actions.reactions, message)
        self.status.count(f"outcome:{event}:handled")

    def check_down(self, now_ms: int | None = None) -> bool:
        """Alert once when this subscriber has been disconnected for ``ALERT_SUBSCRIBER_DOWN_S``;
        returns whether it alerted now."""
        if self.status.state != "disconnected" or self._down_alerted:
            return False
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        down_s = (now_ms - self.status.since) / 1000
        if down_s < self.settings.alert_subscriber_down_s:
            return False
        self._down_alerted = True
        self.alerts.send("subscriber_down", self.status.instance_id, "warning",
                         f"Subscriber {self.status.instance_id} has been disconnected from Redis "
                         f"for {down_s:.0f}s", {"instance": self.status.instance_id,
                                                "downSeconds": round(down_s, 1),
                                                "lastError": self.status.last_error})
        return True

    def _defer(self, message: WorldTimeAdvanced) -> None:
        """Keep the newest message of a window; its reactions run when the window ends."""
        key = cooldown_key(self.prefix, message.campaign_id)
        remaining_ms = self.services.redis.pttl(key)
        ends = time.monotonic() + max(remaining_ms, 0) / 1000
        kept = self.trailing.get(message.campaign_id)
        if kept is None or message.new_time_ms > kept[1].new_time_ms:
            self.trailing[message.campaign_id] = (kept[0] if kept else ends, message)

    def run_trailing(self, now: float | None = None) -> int:
        """Run the reactions of windows that ended with a newer time than their first message.

        Each claims the next window like a fresh message, so across replicas the trailing
        reactions of a window run once; returns how many ran here.
        """
        now = time.monotonic() if now is None else now
        ran = 0
        for campaign, (ends, message) in list(self.trailing.items()):
            if ends > now:
                continue
            del self.trailing[campaign]
            if self.services.redis.set(cooldown_key(self.prefix, campaign), message.new_time_ms,
                                       nx=True, px=self.settings.subscriber_cooldown_ms):
                self.status.count("trailing")
                self.react(WORLD_TIME_ADVANCED, message)
                ran += 1
        return ran

    def verify(self, message):
        """The message as far as the API confirms it, or None to drop it.

        A message is a hint, the API the truth (see :func:`~.messages.check_against_api`):
        a message about a campaign the API does not know is dropped with nothing stored
        for it, and a world time is believed only up to ``getCurrentWorldTime``, so a forged
        or garbled ``newTime`` can neither release timers early nor move the remembered
        clock past the real one. When the API cannot be asked the message is dropped too:
        the campaign's expiration job reads the clock itself and pumps the timers.
        """
        claimed = message.new_time_ms if isinstance(message, WorldTimeAdvanced) else None
        extra = {"campaign_id": message.campaign_id, "event": message.event}
        try:
            known = get_campaign_directory(self.services).lookup(message.campaign_id,
                                                                 at_least_ms=claimed)
        except UpstreamError as e:
            logger.warning("cannot check a %s message with the API (%s: %s); dropped, the "
                           "periodic sweep will catch up", message.event, type(e).__name__, e,
                           extra=extra)
            self.status.count(f"dropped:{message.event}:unverified")
            return None
        checked, reason = check_against_api(message, known)
        if reason == "clamped":
            logger.warning("worldTimeAdvanced claims %s but the API's clock is at %s; only "
                           "timers due by the API's time are released",
                           message.body.get("newTime"), iso_ms(known.world_time_ms), extra=extra)
            self.status.count("clamped")
        elif reason is not None:
            logger.warning("%s message dropped: %s", message.event, reason.replace("_", " "),
                           extra=extra)
            self.status.count(f"dropped:{message.event}:{reason}")
        return checked

    def react(self, event: str, message) -> None:
        """Run every plugin reaction to ``event``; one that raises does not stop the others."""
        ctx = ReactionContext(event=event, campaign_id=message.campaign_id,
                              world_time_ms=getattr(message, "new_time_ms", None),
                              services=self.services)
        for reaction in reactions_to(self.services.registry, event):
            try:
                reaction.handler(dict(message.body), ctx)
            except REDIS_FAILURES:
                raise
            except Exception:
                logger.exception("reaction %s of plugin %s failed", reaction.name, reaction.plugin,
                                 extra={"campaign_id": message.campaign_id,
                                        "reaction": reaction.name})
                self.status.count(f"reaction_errors:{reaction.name}")

    def catch_up(self) -> dict:
        """Enqueue one ``EVENT_EXPIRATION`` for every campaign (``SYSTEM``), at priority 8.

        Several replicas reconnecting after the same outage enqueue it once per cooldown
        window between them.
        """
        from ..dispatch import send_job

        window = max(self.settings.subscriber_cooldown_ms, 1000)
        if not self.services.redis.set(f"{self.prefix}subscriber:catch-up", self.status.instance_id,
                                       nx=True, px=window):
            logger.info("catch-up already enqueued by another subscriber")
            return {}
        record, _ = send_job(self.services, "EVENT_EXPIRATION", SYSTEM, {},
                             priority=MESSAGE_PRIORITY)
        logger.info("messages may have been lost while disconnected: catch-up expiration "
                    "enqueued for every campaign", extra={"job_id": record["id"]})
        return record

    # -- the loop --------------------------------------------------------------------------

    def _pubsub(self):
        client = connect(self.settings, socket_connect_timeout=5, socket_keepalive=True,
                         health_check_interval=HEALTH_CHECK_S,
                         client_name=f"subscriber:{self.status.instance_id}")  # for CLIENT LIST
        pubsub = client.pubsub()
        try:
            pubsub.psubscribe(*PATTERNS)
            # Wait for Redis to confirm every pattern: from then on no message is missed.
            confirmed, deadline = 0, time.monotonic() + SUBSCRIBE_TIMEOUT_S
            while confirmed < len(PATTERNS):
                if time.monotonic() > deadline:
                    raise redis.TimeoutError("Redis did not confirm the subscription")
                item = pubsub.get_message(timeout=POLL_S)
                if item is not None and item.get("type") == "psubscribe":
                    confirmed += 1
        except BaseException:
            _close(pubsub, client)
            raise
        return client, pubsub

    def run(self, stop: threading.Event) -> None:
        """Listen until ``stop`` is set, reconnecting after every Redis failure."""
        failures = 0
        was_connected = False
        while not stop.is_set():
            client = pubsub = None
            try:
                client, pubsub = self._pubsub()
                self.status.connected(reconnected=was_connected)
                if was_connected:
                    self.reconnects += 1
                    logger.info("subscriber reconnected to Redis; subscribed to %s",
                                ", ".join(PATTERNS))
                    self.catch_up()
                else:
                    logger.info("subscriber listening on %s", ", ".join(PATTERNS))
                was_connected, failures = True, 0
                self._down_alerted = False
                self.connected.set()
                self._listen(pubsub, stop)
            except REDIS_FAILURES + (redis.RedisError,) as e:
                self.connected.clear()
                failures += 1
                delay = reconnect_delay(failures, cap_s=self.cap_s)
                self.status.set_state("disconnected", f"{type(e).__name__}: {e}")
                logger.warning("subscriber lost Redis (%s: %s); reconnecting in %.1fs",
                               type(e).__name__, e, delay, extra={"attempt": failures})
                self._wait_reconnect(stop, delay)
            finally:
                _close(pubsub, client)
        self.connected.clear()
        self.status.set_state("stopped")
        try:
            self.status.deregister()
        except redis.RedisError as e:
            logger.warning("could not remove the subscriber's status: %s", e)
        logger.info("subscriber stopped")

    def _wait_reconnect(self, stop: threading.Event, delay: float) -> None:
        """Wait ``delay`` before reconnecting, watching how long the subscriber has been down."""
        deadline = time.monotonic() + delay
        while True:
            self.check_down()
            left = deadline - time.monotonic()
            if left <= 0 or stop.wait(min(left, 1.0)):
                return

    def _listen(self, pubsub, stop: threading.Event) -> None:
        next_heartbeat = time.monotonic() + HEARTBEAT_S
        while not stop.is_set():
            item = pubsub.get_message(timeout=POLL_S)
            if item is not None and item.get("type") == "pmessage":
                try:
                    self.handle(item["channel"], item["data"])
                except REDIS_FAILURES + (redis.RedisError,):
                    raise
                except Exception:  # a bug must cost one message, not the subscription
                    logger.exception("could not handle a message on %s", item["channel"])
            if self.trailing:
                self.run_trailing()
            if not on_current_master(pubsub):
                # A failover left the old master up: its messages stopped, the new one's go on.
                raise redis.ConnectionError("the sentinels name another master")
            if time.monotonic() >= next_heartbeat:
                self.status.heartbeat()
                next_heartbeat = time.monotonic() + HEARTBEAT_S


def _close(*resources) -> None:
    for resource in resources:
        if resource is not None:
            try:
                resource.close()
            except Exception:  # the connection may already be gone
                pass


def run_subscriber(settings, registry) -> int:
    """The ``scheduler-service subscriber`` process: run until SIGINT or SIGTERM."""
    from ..services import build_services
    from ..supervisor import stop_event_on_signals

    services = build_services(settings, registry)
    stop = stop_event_on_signals()
    try:
        Subscriber(services).run(stop)
    finally:
        services.close()
    return 0
