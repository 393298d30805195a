"""The one place that builds the Dramatiq broker and declares the job actors.

The middleware list is explicit: Dramatiq 1.x would otherwise add its Prometheus
middleware, which starts an HTTP server inside every worker; metrics are exported
through the web app's ``/metrics`` instead. Actors are declared after the broker
exists, one per (job type, priority band), with the job type's retry and time-limit
options (see :mod:`scheduler_service.queueing`).
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import xq_name
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from . import queueing
from .errors import (
    BadInput,
    Conflict,
    Forbidden,
    InvalidPayload,
    NotFound,
    PermanentJobError,
    Unauthenticated,
    UnknownJobType,
)

logger = logging.getLogger(__name__)

#: Exceptions that fail a job at once: retrying cannot change their outcome.
PERMANENT_ERRORS = (
    PermanentJobError,
    InvalidPayload,
    UnknownJobType,
    NotFound,
    Conflict,
    BadInput,
    Unauthenticated,
    Forbidden,
)


class DeadLetterDetails(Middleware):
    """Keeps the last error and the attempt count on a dead-lettered message.

    Dramatiq moves a message whose retries are spent to the queue's dead-letter set as
    it was last enqueued, i.e. without the final attempt's error. This middleware
    records ``last_error`` and ``attempts`` on every failed attempt and, once the
    message is dead-lettered, rewrites the stored copy so operators see what killed it.
    """

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            message.options["last_error"] = f"{type(exception).__name__}: {exception}"[:2000]
            message.options["attempts"] = message.options.get("attempts", 0) + 1
            message.options["failed_at"] = dramatiq.common.current_millis()

    def after_skip_message(self, broker, message):
        pass

    def after_nack(self, broker, message):
        redis_id = message.options.get("redis_message_id")
        if not redis_id or not isinstance(broker, RedisBroker):
            return
        key = f"{broker.namespace}:{xq_name(message.queue_name)}.msgs"
        try:
            # Only rewrite a copy that is really there (nack moved it).
            if broker.client.hexists(key, redis_id):
                broker.client.hset(key, redis_id, message.encode())
        except Exception:  # never let bookkeeping break the worker loop
            logger.exception("could not record dead-letter details for %s", message.message_id)


def build_broker(settings, *, client=None, job_records=None) -> RedisBroker:
    """Build the Redis broker from the settings.

    Args:
        settings: the validated :class:`~scheduler_service.config.Settings`.
        client: an existing redis client to share (tests); one is built from
            ``REDIS_URL`` otherwise.
        job_records: the middleware that keeps job records (see
            :mod:`scheduler_service.lifecycle`). Dramatiq runs ``after_*`` hooks in reverse
            order, so it is placed before ``Retries`` in order to see whether the retries
            middleware has failed the message for good.

    Returns:
        The broker, also installed as Dramatiq's global broker.
    """
    middleware = [
        AgeLimit(),
        TimeLimit(time_limit=settings.job_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        *([job_records] if job_records is not None else []),
        Retries(
            max_retries=settings.queue_max_retries,
            min_backoff=settings.queue_retry_backoff_ms,
            max_backoff=settings.queue_max_backoff_ms,
        ),
        CurrentMessage(),
        DeadLetterDetails(),
    ]
    kwargs = dict(
        namespace=settings.redis_namespace,
        middleware=middleware,
        heartbeat_timeout=settings.queue_heartbeat_timeout_ms,
        maintenance_chance=settings.queue_maintenance_chance,
        dead_message_ttl=settings.queue_dead_letter_ttl_ms,
    )
    if client is not None:
        broker = RedisBroker(client=client, **kwargs)
    else:
        broker = RedisBroker(url=settings.redis_url, **kwargs)
    dramatiq.set_broker(broker)
    return broker


def declare_actors(broker, registry, settings, run) -> dict:
    """Declare one actor per (job type, band) on ``broker``.

    Args:
        broker: the broker from :func:`build_broker`.
        registry: the loaded :class:`~scheduler_service.plugins.Registry`.
        settings: the settings (default retries and time limit).
        run: ``run(job: dict) -> result``, the function every actor calls.

    Returns:
        ``{actor name: actor}``.
    """
    actors = {}
    for job_type in registry.job_types.values():
        for band, _, actor_priority in queueing.BANDS:
            name = queueing.actor_name(job_type.name, band)
            actors[name] = dramatiq.actor(
                _named(run, name),
                actor_name=name,
                queue_name=queueing.queue_name(band),
                broker=broker,
                priority=actor_priority,
                max_retries=(settings.queue_max_retries if job_type.max_retries is None
                             else job_type.max_retries),
                time_limit=job_type.time_limit_ms or settings.job_time_limit_ms,
                throws=PERMANENT_ERRORS,
            )
    return actors


def _named(run, name):
    def perform(job):
        run(job)  # the result is recorded by the job layer, not returned to Dramatiq

    perform.__name__ = perform.__qualname__ = name.replace(".", "_")
    return perform
