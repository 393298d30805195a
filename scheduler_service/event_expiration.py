"""``EVENT_EXPIRATION``: complete the events a campaign's world clock has passed.

A job for one campaign pages through ``getOverdueEvents`` (oldest first, with the grace
period ``EVENT_EXPIRATION_GRACE_MINUTES``) and calls ``expireEvent`` for each event, with
at most ``EVENT_EXPIRATION_CONCURRENCY`` calls in flight. The next page is fetched while
the previous one is still being expired: the contract's cursors are keyset cursors, so
completing earlier events does not move later ones.

Idempotent by construction: an event expired by an earlier attempt, by another job or by
hand is no longer listed, or answers ``CONFLICT`` (counted as skipped). A job for
``SYSTEM`` only enqueues one such job per campaign that has a world clock.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .api import get_api_client
from .errors import CircuitOpen, Conflict, NotFound

logger = logging.getLogger(__name__)

#: The campaign id of a job that covers every campaign.
SYSTEM = "SYSTEM"
#: Events asked for per ``getOverdueEvents`` page (the contract's maximum).
PAGE_SIZE = 500
#: Failed event ids kept in a job's result; ``failed`` always holds the exact count.
MAX_FAILED_IDS = 100
#: Failures logged one by one per job; the rest only count.
MAX_FAILURES_LOGGED = 10
#: Largest ``gracePeriodMs`` the contract's ``Int`` carries (about 24.8 days).
MAX_GRACE_MS = 2**31 - 1
#: Priority of the expiration jobs that the subscriber enqueues (the upstream HIGH).
MESSAGE_PRIORITY = 8


@dataclass
class Tally:
    """What became of the overdue events of one job."""

    expired: int = 0
    skipped: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)

    def fail(self, event_id: str, error: Exception) -> None:
        self.failed += 1
        if len(self.failed_ids) < MAX_FAILED_IDS:
            self.failed_ids.append(event_id)
        if self.failed <= MAX_FAILURES_LOGGED:
            logger.warning("could not expire event %s: %s: %s", event_id, type(error).__name__,
                           error, extra={"event_id": event_id})

    def as_result(self) -> dict:
        return {"expired": self.expired, "skipped": self.skipped, "failed": self.failed,
                "failedIds": list(self.failed_ids)}


def _expire_one(api, event_id: str):
    """Expire one event; returns ``(event_id, "expired" | "skipped" | the exception)``."""
    try:
        api.expire_event(event_id)
        return event_id, "expired"
    except (Conflict, NotFound):  # already completed, or gone since it was listed
        return event_id, "skipped"
    except Exception as e:  # recorded per event; the others go on
        return event_id, e


def expire_overdue_events(api, campaign_id: str, grace_period_ms: int, concurrency: int,
                          page_size: int = PAGE_SIZE) -> Tally:
    """Expire every overdue event of one campaign.

    Args:
        api: the :class:`~scheduler_service.api.client.ApiClient`.
        campaign_id: the campaign.
        grace_period_ms: how far behind the world clock an event must be.
        concurrency: ``expireEvent`` calls in flight at most.
        page_size: events per ``getOverdueEvents`` page.

    Returns:
        The :class:`Tally` of expired, skipped and failed events.

    Raises:
        Transient, UpstreamError: listing the overdue events failed (the job is retried;
            what was expired so far stays expired and is not listed again).
        CircuitOpen: the API's circuit breaker opened; expiring stopped and the job
            waits for the breaker instead of recording every remaining event as failed.
    """
    tally = Tally()
    circuit: CircuitOpen | None = None
    pending: set = set()

    def collect(done):
        nonlocal circuit
        for future in done:
            event_id, outcome = future.result()
            if outcome == "expired":
                tally.expired += 1
            elif outcome == "skipped":
                tally.skipped += 1
            elif isinstance(outcome, CircuitOpen):
                circuit = circuit or outcome
            elif getattr(outcome, "circuit_open", None) is not None:  # its failure left it open
                circuit = circuit or outcome.circuit_open
            else:
                tally.fail(event_id, outcome)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="expire-event")
    try:
        for event in api.iter_overdue_events(campaign_id, grace_period_ms, page_size=page_size):
            # Keep the queue short: the listing stays just ahead of the calls in flight.
            while len(pending) >= 2 * concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
            if circuit is not None:
                break
            pending.add(pool.submit(_expire_one, api, event.id))
        done, pending = wait(pending)
        collect(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if circuit is not None:
        raise circuit
    return tally


def run_event_expiration(ctx) -> dict:
    """The handler: expire one campaign's overdue events, or fan out for ``SYSTEM``.

    It first reads the campaign's world time from the API and pumps its world timers to
    it: this is the slow path that releases world-clock jobs whose ``worldTimeAdvanced``
    message was lost or could not be checked. A campaign the API no longer knows is
    skipped (nothing can be overdue there), not failed.
    """
    if ctx.campaign_id == SYSTEM:
        return fan_out(ctx)
    from .campaigns import get_campaign_directory
    from .timers import pump_world

    clock = get_campaign_directory(ctx.services).lookup(ctx.campaign_id, use_cache=False)
    if not clock.exists:
        logger.info("campaign %s does not exist in the API; nothing to expire", ctx.campaign_id)
        return {"outcome": "skipped", "reason": f"campaign {ctx.campaign_id} does not exist"}
    if clock.world_time_ms is None:
        return {"outcome": "skipped", "reason": f"campaign {ctx.campaign_id} has no world clock"}
    released = pump_world(ctx.services.jobs, ctx.campaign_id, clock.world_time_ms)
    settings = ctx.services.settings
    tally = expire_overdue_events(
        get_api_client(ctx.services), ctx.campaign_id,
        grace_period_ms=min(settings.event_expiration_grace_minutes * 60_000, MAX_GRACE_MS),
        concurrency=settings.event_expiration_concurrency)
    logger.info("expired %s overdue event(s), skipped %s, failed %s",
                tally.expired, tally.skipped, tally.failed,
                extra={"expired": tally.expired, "skipped": tally.skipped, "failed": tally.failed})
    return {**tally.as_result(), "timersReleased": released}


def fan_out(ctx) -> dict:
    """Enqueue one ``EVENT_EXPIRATION`` per campaign with a world clock.

    The children take the parent's priority; their idempotency key names the parent, so
    a retried parent enqueues no campaign twice.
    """
    from .dispatch import send_job

    services = ctx.services
    record = services.jobs.get(ctx.job_id)
    priority = record["priority"] if record else None
    campaigns = get_api_client(services).campaigns(use_cache=False)
    enqueued = already = no_clock = 0
    for campaign in campaigns:
        if campaign.current_world_time is None:  # no clock: nothing can be overdue
            no_clock += 1
            continue
        _, created = send_job(services, ctx.job_type, campaign.id, {}, priority=priority,
                              idempotency_key=f"event-expiration:{ctx.job_id}:{campaign.id}")
        if created:
            enqueued += 1
        else:
            already += 1
    logger.info("enqueued event expiration for %s campaign(s)", enqueued)
    return {"campaigns": len(campaigns), "enqueued": enqueued, "alreadyEnqueued": already,
            "withoutWorldClock": no_clock}


def expire_on_world_time(message: dict, ctx) -> None:
    """Reaction to ``worldTimeAdvanced``: expire what the campaign's clock has passed, now.

    The subscriber calls it at most once per campaign and cooldown window; the periodic
    sweep (``SYSTEM``) reaches the same events when a message is lost.
    """
    ctx.send_job("EVENT_EXPIRATION", {}, priority=MESSAGE_PRIORITY)
