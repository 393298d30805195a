"""The core plugin: the job types, sweeps and health checks that ship with the service.

They are registered through the same hooks as any third-party plugin's.
"""

from __future__ import annotations

from .api.health import api_check
from .cron.status import cron_check
from .deferred_effect import DeferredEffectPayload, run_deferred_effect
from .event_expiration import expire_on_world_time, run_event_expiration
from .health import queue_check, redis_check
from .hookspecs import hookimpl
from .recurring.service import TICK_PRIORITY, TICK_TYPE
from .recurring.tick import REPAIR_TYPE, TickPayload, run_recurring_repair, run_recurring_tick
from .recurring.status import recurring_check
from .jobtypes import HealthCheck, JobType, Reaction, Sweep
from .subscriber.status import subscriber_check


def ping(ctx):
    """Do nothing and succeed: proves a job travels from the API to a worker and back."""
    return {"pong": True, "attempt": ctx.attempt}


@hookimpl
def register_job_types():
    return [
        JobType(
            name="PING",
            handler=ping,
            description="Does nothing and succeeds; checks the path from enqueue to worker.",
            priority=5,
            time_limit_ms=10_000,
            campaign_scoped=False,
        ),
        JobType(
            name="DEFERRED_EFFECT",
            handler=run_deferred_effect,
            payload_model=DeferredEffectPayload,
            description="Executes one effect of the main API when due (runAt or runAtWorldTime); "
                        "a redelivered job never executes the effect twice.",
            priority=5,
            time_limit_ms=60_000,
        ),
        JobType(
            name="EVENT_EXPIRATION",
            handler=run_event_expiration,
            description="Expires the events of a campaign that its world clock has passed "
                        "(grace EVENT_EXPIRATION_GRACE_MINUTES); for SYSTEM, enqueues one such "
                        "job per campaign. Result: expired, skipped, failed and failedIds.",
            priority=5,
        ),
        JobType(
            name=TICK_TYPE,
            handler=run_recurring_tick,
            payload_model=TickPayload,
            description="The timer of a recurring job (/api/v1/recurring): creates the "
                        "occurrences its clock has reached, then places its next timer. "
                        "Placed by the service; one of its own never does anything twice.",
            priority=TICK_PRIORITY,
            max_retries=50,
            time_limit_ms=120_000,
            campaign_scoped=False,
        ),
        JobType(
            name=REPAIR_TYPE,
            handler=run_recurring_repair,
            description="Gives a new timer to each active recurring job whose timer is gone "
                        "(dead-lettered or cancelled by hand). Result: checked, repaired.",
            priority=5,
            campaign_scoped=False,
        ),
    ]


@hookimpl
def register_health_checks():
    return [
        HealthCheck("redis", redis_check, critical=True),
        HealthCheck("queue", queue_check, critical=False),
        HealthCheck("api", api_check, critical=False),
        HealthCheck("subscriber", subscriber_check, critical=False),
        HealthCheck("cron", cron_check, critical=False),
        HealthCheck("recurring", recurring_check, critical=False),
    ]


@hookimpl
def register_sweeps():
    return [
        Sweep(
            name="event-expiration",
            job_type="EVENT_EXPIRATION",
            cron="*/5 * * * *",
            env_var="CRON_EVENT_EXPIRATION",
            description="Expires overdue events of every campaign (the slow path behind the "
                        "worldTimeAdvanced reaction).",
        ),
        Sweep(
            name="recurring-repair",
            job_type=REPAIR_TYPE,
            cron="*/5 * * * *",
            env_var="CRON_RECURRING_REPAIR",
            description="Gives a new timer to any active recurring job that lost its own "
                        "(the slow path behind each recurring job's one timer).",
        ),
    ]


@hookimpl
def register_reactions():
    return [
        Reaction(
            name="event-expiration",
            event="worldTimeAdvanced",
            handler=expire_on_world_time,
            description="Enqueues EVENT_EXPIRATION (priority 8) for the campaign whose world "
                        "time advanced.",
        ),
    ]
