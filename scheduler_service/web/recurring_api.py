"""The recurring-job API under ``/api/v1/recurring``: define, change and follow them.

Same rules as the job API: the bearer token, validated models (also the OpenAPI
document's), one error body. A recurring job's payload is validated against its job type
at creation and on each change; a world-clock one needs a campaign the main API knows,
with a world clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

from flask import Blueprint, current_app, jsonify

from ..campaigns import get_campaign_directory
from ..dispatch import build_job
from ..errors import InvalidPayload, UpstreamError
from ..event_expiration import SYSTEM
from ..recurring import service
from ..recurring.store import history_view
from ..times import parse_iso_ms
from .auth import require_bearer_token
from .errors import ApiError, upstream_unavailable
from .models import Error
from .openapi import api_route
from .recurring_models import (
    CreateRecurring,
    ListRecurringQuery,
    OccurrenceHistory,
    PatchRecurring,
    RecurringDetail,
    RecurringList,
)

bp = Blueprint("recurring", __name__, url_prefix="/api/v1")
bp.before_request(require_bearer_token)

TAG = "recurring"


def _services():
    return current_app.extensions["scheduler"]


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", f"{field}: {message}",
                    [{"field": field, "message": message}])


@contextlib.contextmanager
def _translated():
    """The service's errors as API errors."""
    try:
        yield
    except service.RecurringNotFound as e:
        raise ApiError(404, "NOT_FOUND", str(e)) from None
    except service.RecurringStateError as e:
        raise ApiError(409, "WRONG_STATE", str(e)) from None
    except service.InvalidRecurrence as e:
        raise _invalid(e.field, e.message) from None
    except service.RecurringError as e:
        raise ApiError(409, "CONFLICT", str(e)) from None


def _clock_now(body: CreateRecurring, scoped: bool) -> int:
    """The reading of the new recurrence's clock, after checking its campaign.

    Raises:
        ApiError: 400 for a campaign the API does not know (world clock or a job type that
            works on campaign data) or without a world clock; 503 when it cannot be asked.
    """
    services = _services()
    needs_campaign = body.clock == "world" or (scoped and body.campaignId != SYSTEM)
    if not needs_campaign:
        return services.jobs.clock()
    try:
        known = get_campaign_directory(services).lookup(body.campaignId)
    except UpstreamError as e:
        raise upstream_unavailable(e, f"about campaign {body.campaignId!r}",
                                   "nothing was stored, try again") from None
    if not known.exists:
        raise _invalid("campaignId", f"campaign {body.campaignId!r} does not exist in the main API")
    if body.clock == "wall":
        return services.jobs.clock()
    if not known.has_world_clock:
        raise _invalid("clock", f"campaign {body.campaignId!r} has no world clock, so a "
                                "world-clock recurring job would never fire; use clock wall")
    remembered = services.jobs.remembered_world_time(body.campaignId)
    return known.world_time_ms if remembered is None else max(remembered, known.world_time_ms)


def _fingerprint(body: CreateRecurring, job: dict) -> str:
    asked = body.model_dump(exclude={"idempotencyKey"})
    asked.update(payload=job["payload"], priority=job["priority"])
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


@api_route(bp, "POST", "/recurring",
           "Create a recurring job (cron or every, on the wall clock or a campaign's world clock)",
           body=CreateRecurring, responses={201: RecurringDetail, 200: RecurringDetail,
                                            409: Error, 503: Error}, tag=TAG)
def create_recurring(body: CreateRecurring):
    services = _services()
    try:
        job = build_job(services.registry, body.type, body.campaignId, body.payload, body.priority)
    except InvalidPayload as e:
        raise ApiError(400, "INVALID_PAYLOAD", str(e), e.details) from None
    now = _clock_now(body, services.registry.job_type(body.type).campaign_scoped)
    spec = {"type": job["type"], "campaignId": body.campaignId, "payload": job["payload"],
            "priority": job["priority"], "clock": body.clock, "cron": body.cron,
            "every": body.every, "startAt": parse_iso_ms(body.startAt) if body.startAt else None,
            "endAt": parse_iso_ms(body.endAt) if body.endAt else None,
            "maxOccurrences": body.maxOccurrences, "catchUp": body.catchUp,
            "catchUpWindow": body.catchUpWindow}
    fingerprint = _fingerprint(body, job)
    with _translated():
        fields, created = service.create(services, spec, now=now,
                                         idempotency_key=body.idempotencyKey,
                                         request_hash=fingerprint)
    if not created and fields.get("requestHash") != fingerprint:
        raise ApiError(409, "IDEMPOTENCY_KEY_REUSED",
                       f"idempotencyKey {body.idempotencyKey!r} was used for recurring job "
                       f"{fields.get('id')} with a different request; use a new key, or send "
                       "the same request again to get that one",
                       [{"field": "idempotencyKey", "message": "used with another request"}])
    return jsonify(service.view(services, fields, upcoming=service.UPCOMING)), (201 if created else 200)


@api_route(bp, "GET", "/recurring", "List recurring jobs, newest first", query=ListRecurringQuery,
           responses={200: RecurringList}, tag=TAG)
def list_recurring(query: ListRecurringQuery):
    services = _services()
    items, cursor = service.recurring_store(services).list(
        state=query.state, clock=query.clock, campaign_id=query.campaignId,
        job_type=query.type, limit=query.limit, cursor=query.cursor)
    return jsonify({"items": [service.view(services, f) for f in items], "nextCursor": cursor})


def _fields_or_404(rid: str) -> dict:
    fields = service.recurring_store(_services()).get(rid)
    if fields is None:
        raise ApiError(404, "NOT_FOUND", f"no recurring job with id {rid!r}")
    return fields


@api_route(bp, "GET", "/recurring/<rid>",
           "Read a recurring job, with its next five occurrences on its clock",
           responses={200: RecurringDetail}, tag=TAG)
def get_recurring(rid):
    return jsonify(service.view(_services(), _fields_or_404(rid), upcoming=service.UPCOMING))


@api_route(bp, "PATCH", "/recurring/<rid>",
           "Pause or resume a recurring job, or change its pattern, payload, end or limits",
           body=PatchRecurring, responses={200: RecurringDetail, 409: Error, 503: Error}, tag=TAG)
def patch_recurring(rid, body: PatchRecurring):
    services = _services()
    fields = _fields_or_404(rid)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:  # {}: nothing to change, the recurring job as it is
        return jsonify(service.view(services, fields, upcoming=service.UPCOMING))
    if "payload" in changes:
        try:
            job = build_job(services.registry, fields["type"], fields["campaignId"],
                            changes["payload"], int(fields["priority"]))
        except InvalidPayload as e:
            raise ApiError(400, "INVALID_PAYLOAD", str(e), e.details) from None
        changes["payload"] = job["payload"]
    if "endAt" in changes and changes["endAt"] is not None:
        changes["endAt"] = parse_iso_ms(changes["endAt"])
    with _translated():
        updated = service.update(services, rid, changes)
    return jsonify(service.view(services, updated, upcoming=service.UPCOMING))


@api_route(bp, "DELETE", "/recurring/<rid>",
           "Cancel a recurring job and its pending occurrence",
           responses={200: RecurringDetail, 409: Error}, tag=TAG)
def delete_recurring(rid):
    services = _services()
    _fields_or_404(rid)
    with _translated():
        cancelled = service.cancel(services, rid)
    return jsonify(service.view(services, cancelled, upcoming=service.UPCOMING))


@api_route(bp, "GET", "/recurring/<rid>/occurrences",
           "What a recurring job created (with the job ids) and skipped, oldest first",
           responses={200: OccurrenceHistory}, tag=TAG)
def recurring_occurrences(rid):
    fields = _fields_or_404(rid)
    store = service.recurring_store(_services())
    return jsonify({"id": rid, "clock": fields["clock"],
                    "items": [history_view(e) for e in store.history(rid)]})
