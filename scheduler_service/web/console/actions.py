"""The console's forms: each a POST (CSRF-checked in :mod:`.protection`) that changes one thing
through the same store calls as the REST API, then redirects back to a page (post/redirect/get).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode, urlsplit

from flask import g, redirect, request, url_for

from ...cron.status import schedule_store
from ...errors import InvalidPayload
from ...payloads import validate_payload
from ..schedules_api import SweepRunFailed, run_sweep_now
from . import ConsoleError, bp, present
from .pages import job_or_404, known_sweep, render_job, services

logger = logging.getLogger(__name__)


def _back(default: str, notice: str, subject: str):
    """Redirect to the form's ``next`` page (only a console path) or ``default``, with a notice."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(bp.url_prefix + "/") or "\\" in target:
        target = default
    joiner = "&" if "?" in target else "?"
    return redirect(f"{target}{joiner}{urlencode({'notice': notice, 'subject': subject})}", 303)


# -- schedules ------------------------------------------------------------------------

def _set_schedule(name: str, **change):
    store = schedule_store(services())
    _, entries = store.update(known_sweep(name), actor=g.console_actor, **change)
    for entry in entries:
        logger.info("schedule changed", extra={
            "sweep": name, "field": entry["field"], "from": entry["from"], "to": entry["to"],
            "actor": entry["actor"]})
    return entries


@bp.post("/schedules/<name>/enable")
def enable_schedule(name):
    changed = _set_schedule(name, enabled=True)
    return _back(url_for(".schedule", name=name), "enabled" if changed else "unchanged", name)


@bp.post("/schedules/<name>/disable")
def disable_schedule(name):
    changed = _set_schedule(name, enabled=False)
    return _back(url_for(".schedule", name=name), "disabled" if changed else "unchanged", name)


@bp.post("/schedules/<name>/overlap")
def set_overlap(name):
    overlap = request.form.get("overlap", "")
    if overlap not in ("skip", "allow"):
        raise ConsoleError(400, f"overlap must be skip or allow, not {overlap!r}.")
    changed = _set_schedule(name, overlap=overlap)
    return _back(url_for(".schedule", name=name), "overlap" if changed else "unchanged", name)


@bp.post("/schedules/<name>/run")
def run_schedule(name):
    svc = services()
    try:
        run_sweep_now(svc, schedule_store(svc), known_sweep(name), g.console_actor)
    except SweepRunFailed:
        return _back(url_for(".schedule", name=name), "run-failed", name)
    return _back(url_for(".schedule", name=name), "ran", name)


# -- jobs -----------------------------------------------------------------------------

@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id):
    job_or_404(job_id)
    result = services().jobs.transition(job_id, present.CANCELLABLE, "cancelled",
                                        f"cancelled in the console by {g.console_actor}")
    if not result.ok:
        raise ConsoleError(409, f"Job {job_id} is {result.previous}: only a scheduled, queued or "
                                "retrying job can be cancelled.")
    return _back(url_for(".job", job_id=job_id), "cancelled", job_id)


def _dead_letter_or_409(job_id):
    job = job_or_404(job_id)
    if job["state"] != "dead" or not services().jobs.is_dead_letter(job_id):
        raise ConsoleError(409, f"Job {job_id} is not a dead letter (it is {job['state']}).")
    return job


@bp.post("/jobs/<job_id>/requeue")
def requeue_job(job_id):
    svc = services()
    job = _dead_letter_or_409(job_id)
    text = request.form.get("payload", "")
    try:
        edited = json.loads(text) if text.strip() else job["payload"]
    except ValueError as e:
        return render_job(job_id, status=400, payload_text=text,
                          requeue_error=f"payload: not valid JSON ({e})")
    if not isinstance(edited, dict):
        return render_job(job_id, status=400, payload_text=text,
                          requeue_error="payload: must be a JSON object")
    payload = None
    if edited != job["payload"]:
        try:
            payload = validate_payload(svc.registry.job_type(job["type"]), edited).model_dump(mode="json")
        except InvalidPayload as e:
            return render_job(job_id, status=400, payload_text=text, requeue_error=str(e),
                              requeue_details=e.details)
    detail = (f"replayed from the dead letters by {g.console_actor}"
              + (" with a corrected payload" if payload is not None else ""))
    result = svc.jobs.replay_dead_letter(job_id, payload=payload, detail=detail)
    if not result.ok:
        raise ConsoleError(409, f"Job {job_id} is {result.previous}, not dead.")
    return _back(url_for(".job", job_id=job_id), "requeued", job_id)


@bp.post("/jobs/<job_id>/discard")
def discard_job(job_id):
    _dead_letter_or_409(job_id)
    services().jobs.discard_dead_letter(job_id)
    return _back(url_for(".job", job_id=job_id), "discarded", job_id)
