"""The schedule API under ``/api/v1/schedules``: live control of the periodic sweeps.

Changes are stored in Redis (:class:`~scheduler_service.cron.schedules.ScheduleStore`);
every cron replica polls them, so the leader obeys within a second or two and a standby
that takes over already knows them.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify

from ..cron.schedules import ScheduleStore
from ..dispatch import send_job
from ..errors import InvalidPayload, UnknownJobType
from ..jobstore import now_ms
from .actor import request_actor
from .auth import require_bearer_token
from .errors import ApiError
from .models import (
    Error,
    PatchSchedule,
    ScheduleDetail,
    ScheduleHistory,
    ScheduleList,
    ScheduleRun,
)
from .openapi import api_route

logger = logging.getLogger(__name__)

bp = Blueprint("schedules", __name__, url_prefix="/api/v1")
bp.before_request(require_bearer_token)

#: Upcoming ticks listed by ``GET /schedules/{name}``.
UPCOMING = 5


def _services():
    return current_app.extensions["scheduler"]


def _store() -> ScheduleStore:
    services = _services()
    return ScheduleStore(services.redis, services.settings.redis_namespace, services.registry,
                         services.settings)


def _known(name: str) -> str:
    if name not in _services().registry.sweeps:
        raise ApiError(404, "NOT_FOUND", f"no schedule named {name!r}")
    return name


@api_route(bp, "GET", "/schedules", "Every periodic sweep: cron, enabled, overlap, next and last run",
           responses={200: ScheduleList}, tag="schedules")
def list_schedules():
    store = _store()
    items = [store.view(name, state) for name, state in store.states().items()]
    return jsonify({"items": items})


@api_route(bp, "GET", "/schedules/<name>", "One sweep with its next five ticks",
           responses={200: ScheduleDetail}, tag="schedules")
def get_schedule(name):
    return jsonify(_store().view(_known(name), upcoming=UPCOMING))


@api_route(bp, "PATCH", "/schedules/<name>",
           "Enable or disable a sweep, change its cron expression or its overlap policy",
           body=PatchSchedule, responses={200: ScheduleDetail}, tag="schedules")
def patch_schedule(name, body: PatchSchedule):
    store = _store()
    _known(name)
    actor = request_actor()
    given = body.model_fields_set
    _, changes = store.update(
        name, actor=actor,
        enabled=body.enabled if "enabled" in given else None,
        cron=body.cron if "cron" in given else ...,
        overlap=body.overlap if "overlap" in given else None,
    )
    for change in changes:
        logger.info("schedule changed", extra={
            "sweep": name, "field": change["field"], "from": change["from"], "to": change["to"],
            "actor": change["actor"]})
    return jsonify(store.view(name, upcoming=UPCOMING))


@api_route(bp, "POST", "/schedules/<name>/run",
           "Enqueue the sweep's job now (whether enabled or not, whatever the overlap policy)",
           responses={201: ScheduleRun, 409: Error, 503: Error}, tag="schedules")
def run_schedule(name):
    try:
        job = run_sweep_now(_services(), _store(), _known(name), request_actor())
    except SweepRunFailed as e:
        if isinstance(e.__cause__, (InvalidPayload, UnknownJobType)):
            # The sweep's own definition makes a job the service refuses: no retry can
            # succeed until the plugin is fixed, so a 409 (a 5xx invites retries).
            raise ApiError(409, "SWEEP_FAILED", str(e),
                           [{"field": "name", "message": f"sweep {name!r} makes an invalid job: "
                                                         f"{e.__cause__}"}]) from e.__cause__
        raise e.__cause__ from None  # Redis unavailable: 503 by its handler; else a 500
    return jsonify({"schedule": name, "job": job}), 201


class SweepRunFailed(Exception):
    """A manual run could not enqueue the sweep's job (recorded as a failed run)."""


def run_sweep_now(services, store: ScheduleStore, name: str, actor: str) -> dict:
    """Enqueue a sweep's job now and record the run and who asked (the REST API and the console).

    Returns:
        The job enqueued.

    Raises:
        SweepRunFailed: the job could not be enqueued; the run is recorded as failed.
    """
    sweep = services.registry.sweeps[name]
    started, t0 = now_ms(), time.perf_counter()
    try:
        job, _ = send_job(services, sweep.job_type, sweep.campaign_id, dict(sweep.payload))
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        store.record_run(name, {"start": started, "durationMs": _ms_since(t0), "outcome": "failed",
                                "error": message, "tick": None, "trigger": "manual",
                                "detail": f"run by {actor}"})
        logger.error("manual sweep run failed: %s", message, extra={
            "sweep": name, "alert": "cron_sweep_failed", "actor": actor})
        raise SweepRunFailed(f"the sweep could not enqueue its job: {message}") from e
    store.record_run(name, {"start": started, "durationMs": _ms_since(t0), "outcome": "enqueued",
                            "error": None, "tick": None, "trigger": "manual",
                            "detail": f"run by {actor}"}, job_id=job["id"])
    store.add_history(name, "run", None, job["id"], actor)
    logger.info("sweep run: enqueued (manual)", extra={
        "sweep": name, "enqueued_job_id": job["id"], "actor": actor})
    return job


@api_route(bp, "GET", "/schedules/<name>/history", "Every change of a sweep: what, from, to, when, who",
           responses={200: ScheduleHistory}, tag="schedules")
def schedule_history(name):
    return jsonify({"name": name, "items": _store().history(_known(name))})


def _ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
