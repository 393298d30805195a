"""The job API under ``/api/v1``: jobs, job types, dead letters, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..campaigns import campaign_problem, get_campaign_directory
from ..dispatch import build_job
from ..errors import InvalidPayload, UpstreamError
from ..event_expiration import SYSTEM
from ..jobstore import parse_iso_ms, request_fingerprint
from ..payloads import payload_schema, validate_payload
from .auth import require_bearer_token
from .errors import ApiError, upstream_unavailable
from .models import (
    CreateJob,
    Error,
    Job,
    JobHistory,
    JobList,
    JobTypeList,
    ListJobsQuery,
    PatchJob,
    RequeueDeadLetter,
)
from .openapi import api_route, openapi_document

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")


def _services():
    return current_app.extensions["scheduler"]


bp.before_request(require_bearer_token)


def _job_or_404(job_id):
    job = _services().jobs.get(job_id)
    if job is None:
        raise ApiError(404, "NOT_FOUND", f"no job with id {job_id!r}")
    return job


def _payload_error(e: InvalidPayload):
    return ApiError(400, "INVALID_PAYLOAD", str(e), e.details)


def _check_campaign(campaign_id: str, *, scoped: bool, world_time: bool) -> None:
    """Refuse a job that could never run: an unknown campaign, a world time without a clock.

    Raises:
        ApiError: 400 naming the field; 503 when the main API cannot be asked (nothing is
            stored then either).
    """
    if campaign_id == SYSTEM or not (scoped or world_time):
        return
    try:
        clock = get_campaign_directory(_services()).lookup(campaign_id)
    except UpstreamError as e:
        raise upstream_unavailable(e, f"about campaign {campaign_id!r}",
                                   "nothing was stored, try again") from None
    problem = campaign_problem(clock, scoped=scoped, world_time=world_time)
    if problem is not None:
        field, message = problem
        raise ApiError(400, "VALIDATION_ERROR", f"{field}: {message}",
                       [{"field": field, "message": message}])


@api_route(bp, "POST", "/jobs", "Create a job (due now, at runAt, or at runAtWorldTime)",
           body=CreateJob, responses={201: Job, 200: Job, 409: Error, 503: Error})
def create_job(body: CreateJob):
    services = _services()
    try:
        job = build_job(services.registry, body.type, body.campaignId, body.payload, body.priority)
    except InvalidPayload as e:
        raise _payload_error(e) from None
    _check_campaign(body.campaignId, scoped=services.registry.job_type(body.type).campaign_scoped,
                    world_time=body.runAtWorldTime is not None)
    run_at_ms = parse_iso_ms(body.runAt) if body.runAt else None
    run_at_world_ms = parse_iso_ms(body.runAtWorldTime) if body.runAtWorldTime else None
    record, created = services.jobs.create(job, run_at_ms=run_at_ms, run_at_world_ms=run_at_world_ms,
                                           idempotency_key=body.idempotencyKey, key_scope="api")
    if not created:
        (stored,) = services.jobs.get_internal(record["id"], "requestHash")
        if stored and stored != request_fingerprint(job, run_at_ms, run_at_world_ms):
            raise ApiError(409, "IDEMPOTENCY_KEY_REUSED",
                           f"idempotencyKey {body.idempotencyKey!r} was used for job "
                           f"{record['id']} with a different request; use a new key, or send "
                           "the same request again to get that job",
                           [{"field": "idempotencyKey", "message": "used with another request"}])
    return jsonify(record), (201 if created else 200)


@api_route(bp, "GET", "/jobs", "List jobs, newest first", query=ListJobsQuery, responses={200: JobList})
def list_jobs(query: ListJobsQuery):
    items, cursor = _services().jobs.list(state=query.state, job_type=query.type,
                                          campaign_id=query.campaignId, limit=query.limit,
                                          cursor=query.cursor)
    return jsonify({"items": items, "nextCursor": cursor})


@api_route(bp, "GET", "/jobs/<job_id>", "Read a job", responses={200: Job})
def get_job(job_id):
    return jsonify(_job_or_404(job_id))


@api_route(bp, "GET", "/jobs/<job_id>/history", "Every transition of a job", responses={200: JobHistory})
def job_history(job_id):
    _job_or_404(job_id)
    return jsonify({"id": job_id, "items": _services().jobs.history(job_id)})


@api_route(bp, "PATCH", "/jobs/<job_id>", "Change a scheduled job's due time or priority",
           body=PatchJob, responses={200: Job, 409: Error, 503: Error})
def patch_job(job_id, body: PatchJob):
    job = _job_or_404(job_id)
    if body.changes_nothing():
        # {} (or only nulls) is a change of nothing: the job as it is, in any state. A
        # client that sends the fields it wants changed need not special-case "none".
        return jsonify(job)
    store = _services().jobs
    if body.runAtWorldTime is not None and job["campaignId"] == SYSTEM:
        raise ApiError(400, "VALIDATION_ERROR", "runAtWorldTime needs a campaign, not SYSTEM",
                       [{"field": "runAtWorldTime", "message": "the job's campaign is SYSTEM"}])
    if body.runAtWorldTime is not None:
        _check_campaign(job["campaignId"], scoped=False, world_time=True)
    result = store.update_scheduled(
        job_id,
        run_at_ms=parse_iso_ms(body.runAt) if body.runAt else None,
        run_at_world_ms=parse_iso_ms(body.runAtWorldTime) if body.runAtWorldTime else None,
        priority=body.priority,
    )
    if not result.ok:
        raise ApiError(409, "WRONG_STATE",
                       f"only a scheduled job can be changed; this one is {result.previous}")
    return jsonify(store.get(job_id))


@api_route(bp, "DELETE", "/jobs/<job_id>", "Cancel a scheduled, queued or retrying job",
           responses={200: Job, 409: Error})
def cancel_job(job_id):
    _job_or_404(job_id)
    store = _services().jobs
    result = store.transition(job_id, ("scheduled", "queued", "failed"), "cancelled", "cancelled over the API")
    if not result.ok:
        raise ApiError(409, "WRONG_STATE", f"a {result.previous} job cannot be cancelled")
    return jsonify(store.get(job_id))


@api_route(bp, "GET", "/job-types", "Registered job types with their payload schemas",
           responses={200: JobTypeList}, tag="job types")
def job_types():
    services = _services()
    settings = services.settings
    items = [{
        "name": jt.name,
        "plugin": jt.plugin,
        "description": jt.description,
        "payloadSchema": payload_schema(jt),
        "defaultPriority": jt.priority,
        "maxRetries": settings.queue_max_retries if jt.max_retries is None else jt.max_retries,
        "timeLimitMs": jt.time_limit_ms or settings.job_time_limit_ms,
        "campaignScoped": jt.campaign_scoped,
    } for jt in sorted(services.registry.job_types.values(), key=lambda t: t.name)]
    return jsonify({"items": items})


@api_route(bp, "GET", "/dead-letters", "Jobs whose retries are spent", query=ListJobsQuery,
           responses={200: JobList}, tag="dead letters")
def list_dead_letters(query: ListJobsQuery):
    items, cursor = _services().jobs.list(state="dead", job_type=query.type,
                                          campaign_id=query.campaignId, limit=query.limit,
                                          cursor=query.cursor, dead_letters_only=True)
    return jsonify({"items": items, "nextCursor": cursor})


def _dead_letter_or_404(job_id):
    job = _job_or_404(job_id)
    if job["state"] != "dead" or not _services().jobs.is_dead_letter(job_id):
        raise ApiError(404, "NOT_FOUND", f"job {job_id!r} is not a dead letter (it is {job['state']})")
    return job


@api_route(bp, "POST", "/dead-letters/<job_id>/requeue",
           "Replay a dead letter, optionally with a corrected payload",
           body=RequeueDeadLetter, body_required=False, responses={200: Job, 409: Error},
           tag="dead letters")
def requeue_dead_letter(job_id, body: RequeueDeadLetter):
    job = _dead_letter_or_404(job_id)
    services = _services()
    payload = None
    if body.payload is not None:
        try:
            payload = validate_payload(services.registry.job_type(job["type"]), body.payload).model_dump(mode="json")
        except InvalidPayload as e:
            raise _payload_error(e) from None
    detail = "replayed from the dead letters" + (" with a corrected payload" if payload is not None else "")
    result = services.jobs.replay_dead_letter(job_id, payload=payload, detail=detail)
    if not result.ok:
        raise ApiError(409, "WRONG_STATE", f"the job is {result.previous}, not dead")
    return jsonify(services.jobs.get(job_id))


@api_route(bp, "DELETE", "/dead-letters/<job_id>", "Discard a dead letter (the record stays until it expires)",
           responses={200: Job}, tag="dead letters")
def delete_dead_letter(job_id):
    _dead_letter_or_404(job_id)
    store = _services().jobs
    store.discard_dead_letter(job_id)
    return jsonify(store.get(job_id))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
