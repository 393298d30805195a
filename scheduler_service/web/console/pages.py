"""The console's pages: overview, schedules, timers, jobs (GET only; forms are in :mod:`.actions`)."""

from __future__ import annotations

import logging

import redis
from flask import current_app, g, render_template, request

from ...api import get_api_client
from ...cron.status import schedule_store
from ...errors import UpstreamError
from ...health import run_checks
from ...jobstore import STATES, now_ms
from ...wire import queue_stats
from ..schedules_api import UPCOMING
from . import ConsoleError, bp, present, protection

logger = logging.getLogger(__name__)

#: Jobs per page of the job list.
PAGE_SIZE = 50
#: Timers listed per clock on the timers page, and on one clock's own page.
TIMERS_SHOWN = 10
TIMERS_ON_CLOCK_PAGE = 500
#: Runs listed on a schedule's page (each costs two reads for its job).
RUNS_SHOWN = 15
#: World clocks listed on the timers page.
CLOCKS_SHOWN = 200


def services():
    return current_app.extensions["scheduler"]


bp.before_request(protection.before_request)
bp.after_request(protection.after_request)


@bp.context_processor
def _helpers():
    now = g.setdefault("now_ms", now_ms())
    return {
        "now_ms": now,
        "ago": lambda value, base=None: present.relative(value, now if base is None else base),
        "span": present.span,
        "when": present.short_time,
        "pretty": present.pretty_json,
        "actor": g.get("console_actor"),
        "signed_in": g.get("console_signed_in", False),
        "csrf_field": protection.CSRF_FIELD,
        "csrf_token": g.get("csrf_token", ""),
        "environment": services().settings.env,
        "version": current_app.config.get("SCHEDULER_VERSION", ""),
        "notice": _NOTICES.get(request.args.get("notice", ""), ""),
        "subject": request.args.get("subject", ""),
        "campaign_names": {},
    }


#: Messages a form's redirect names with ``?notice=``; ``{subject}`` is the job or sweep.
_NOTICES = {
    "cancelled": "Cancelled job {subject}.",
    "requeued": "Requeued job {subject}.",
    "discarded": "Discarded dead letter {subject}.",
    "enabled": "Enabled sweep {subject}.",
    "disabled": "Disabled sweep {subject}.",
    "unchanged": "Sweep {subject} was already so; nothing changed.",
    "overlap": "Changed the overlap policy of {subject}.",
    "ran": "Enqueued a run of {subject}.",
    "run-failed": "The run of {subject} failed: see its last runs.",
}


def error_page(status: int, message: str, headers=None):
    return render_template("console/error.html", status=status, message=message), status, headers or {}


@bp.errorhandler(ConsoleError)
def _console_error(e: ConsoleError):
    return error_page(e.status, str(e), protection.challenge_headers() if e.status == 401 else None)


@bp.errorhandler(redis.RedisError)
def _redis_down(e: redis.RedisError):
    logger.warning("console page without Redis: %s", e)
    return error_page(503, f"Redis cannot be reached ({type(e).__name__}); the overview page "
                           "shows what is still known.")


def _attempt(read):
    """``(value, None)``, or ``(None, reason)`` when Redis cannot be read: one section of a
    page fails, the rest is still shown."""
    try:
        return read(), None
    except redis.RedisError as e:
        return None, f"unavailable: {type(e).__name__}: {e}"


# -- overview -------------------------------------------------------------------------

@bp.get("/")
def overview():
    svc = services()
    overall, components = run_checks(svc)
    store = schedule_store(svc)
    queues, queues_error = _attempt(
        lambda: queue_stats(svc.redis, svc.settings.redis_namespace, svc.queue_names))
    states, states_error = _attempt(svc.jobs.count_by_state)
    wall, wall_error = _attempt(lambda: svc.jobs.waiting_timers(None, 1))
    sweeps, sweeps_error = _attempt(lambda: [store.view(n, s) for n, s in store.states().items()])
    return render_template(
        "console/overview.html", page="overview", overall=overall, components=components,
        queues=queues, queues_error=queues_error, states=states, states_error=states_error,
        wall=wall, wall_error=wall_error, sweeps=sweeps, sweeps_error=sweeps_error,
        state_names=STATES)


# -- schedules ------------------------------------------------------------------------

def known_sweep(name: str) -> str:
    if name not in services().registry.sweeps:
        raise ConsoleError(404, f"There is no sweep named {name!r}.")
    return name


@bp.get("/schedules")
def schedules():
    store = schedule_store(services())
    items = [store.view(name, state) for name, state in store.states().items()]
    return render_template("console/schedules.html", page="schedules", items=items)


@bp.get("/schedules/<name>")
def schedule(name):
    svc = services()
    store = schedule_store(svc)
    view = store.view(known_sweep(name), upcoming=UPCOMING)
    runs = store.recent_runs(name, RUNS_SHOWN)
    jobs = svc.jobs.get_many(r["jobId"] for r in runs if r["jobId"])
    for run in runs:
        job = jobs.get(run["jobId"]) if run["jobId"] else None
        run["job"] = job
        run["jobMs"] = present.run_duration_ms(svc.jobs.history(job["id"])) if job else None
    history = list(reversed(store.history(name)))
    return render_template("console/schedule.html", page="schedules", s=view, runs=runs,
                           history=history)


# -- timers ---------------------------------------------------------------------------

def _campaigns():
    """``({id: Campaign}, error)`` from the main API (its cached answer)."""
    try:
        return {c.id: c for c in get_api_client(services()).campaigns()}, None
    except UpstreamError as e:
        return {}, f"The main API could not be asked for its campaigns: {e}"


def campaign_names() -> dict[str, str]:
    """``{campaign id: name}`` from the main API, or {} when it cannot be asked (ids shown)."""
    campaigns, _ = _campaigns()
    return {cid: c.name for cid, c in campaigns.items()}


def _clock_row(campaign_id, campaign, limit):
    store = services().jobs
    clock = store.world_clock(campaign_id)
    total, timers = store.waiting_timers(campaign_id, limit)
    world_ms = None
    if campaign is not None and campaign.current_world_time is not None:
        world_ms = int(round(campaign.current_world_time.timestamp() * 1000))
    return {"campaignId": campaign_id, "name": campaign.name if campaign else None,
            "known": campaign is not None, "apiWorldMs": world_ms,
            "rememberedMs": clock["rememberedMs"], "pending": total,
            "nextDueMs": clock["nextDueMs"], "timers": timers}


def _with_jobs(clocks):
    """Attach the job record of every timer listed (one round trip for all of them)."""
    ids = [job_id for clock in clocks for job_id, _ in clock["timers"]]
    records = services().jobs.get_many(ids)
    for clock in clocks:
        clock["timers"] = [(job_id, due, records.get(job_id)) for job_id, due in clock["timers"]]
    return clocks


@bp.get("/timers")
def timers():
    svc = services()
    campaigns, api_error = _campaigns()
    # Clocks the scheduler keeps (a remembered time or waiting timers) first, then the
    # campaigns only the main API knows.
    kept = svc.jobs.world_clock_campaigns()
    ids = kept + sorted(set(campaigns) - set(kept))
    wall_total, wall_timers = svc.jobs.waiting_timers(None, TIMERS_SHOWN)
    wall = {"pending": wall_total, "timers": wall_timers,
            "nextDueMs": wall_timers[0][1] if wall_timers else None}
    clocks = [_clock_row(c, campaigns.get(c), TIMERS_SHOWN) for c in ids[:CLOCKS_SHOWN]]
    _with_jobs([wall, *clocks])
    return render_template("console/timers.html", page="timers", wall=wall, clocks=clocks,
                           clocks_total=len(ids), api_error=api_error, limit=TIMERS_SHOWN,
                           campaign_names={cid: c.name for cid, c in campaigns.items()})


@bp.get("/timers/wall")
def wall_timers():
    total, entries = services().jobs.waiting_timers(None, TIMERS_ON_CLOCK_PAGE)
    clock = _with_jobs([{"pending": total, "timers": entries}])[0]
    return render_template("console/clock.html", page="timers", clock=clock, world=False,
                           limit=TIMERS_ON_CLOCK_PAGE, campaign_names=campaign_names())


@bp.get("/timers/world/<campaign_id>")
def world_timers(campaign_id):
    campaigns, api_error = _campaigns()
    clock = _with_jobs([_clock_row(campaign_id, campaigns.get(campaign_id), TIMERS_ON_CLOCK_PAGE)])[0]
    if api_error is None and not clock["known"] and clock["rememberedMs"] is None and not clock["pending"]:
        raise ConsoleError(404, f"Campaign {campaign_id!r} is unknown to the main API and has "
                                "no world clock here.")
    return render_template("console/clock.html", page="timers", clock=clock, world=True,
                           api_error=api_error, limit=TIMERS_ON_CLOCK_PAGE)


# -- jobs -----------------------------------------------------------------------------

@bp.get("/jobs")
def jobs():
    svc = services()
    state = request.args.get("state") or None
    job_type = request.args.get("type") or None
    campaign = (request.args.get("campaign") or "").strip() or None
    cursor = request.args.get("cursor") or None
    if state is not None and state not in STATES:
        raise ConsoleError(400, f"state must be one of {', '.join(STATES)}, not {state!r}.")
    try:
        items, next_cursor = svc.jobs.list(state=state, job_type=job_type, campaign_id=campaign,
                                           limit=PAGE_SIZE, cursor=cursor)
    except ValueError as e:
        raise ConsoleError(400, f"cursor: {e}") from None
    return render_template("console/jobs.html", page="jobs", items=items, next_cursor=next_cursor,
                           state=state, job_type=job_type, campaign=campaign, cursor=cursor,
                           state_names=STATES, type_names=sorted(svc.registry.job_types),
                           campaign_names=campaign_names())


def job_or_404(job_id):
    job = services().jobs.get(job_id)
    if job is None:
        raise ConsoleError(404, f"There is no job with id {job_id!r} (it may have expired).")
    return job


def render_job(job_id, *, status=200, payload_text=None, requeue_error=None, requeue_details=()):
    """The job page; the requeue form keeps an edited payload that was refused."""
    svc = services()
    job = job_or_404(job_id)
    dead_letter = job["state"] == "dead" and svc.jobs.is_dead_letter(job_id)
    job_type = svc.registry.job_types.get(job["type"])
    body = render_template(
        "console/job.html", page="jobs", job=job, history=svc.jobs.history(job_id),
        dead_letter=dead_letter, cancellable=job["state"] in present.CANCELLABLE,
        job_type=job_type, clock=present.due_of(job),
        payload_text=payload_text if payload_text is not None else present.pretty_json(job["payload"]),
        requeue_error=requeue_error, requeue_details=list(requeue_details),
        campaign_names=campaign_names())
    return body, status


@bp.get("/jobs/<job_id>")
def job(job_id):
    return render_job(job_id)
