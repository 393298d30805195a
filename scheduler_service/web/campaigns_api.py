"""``POST /api/v1/campaigns/{id}/preview``: what advancing a campaign's clock would change.

The same engine and rules as the unit jobs run over every unit of the campaign in memory;
nothing is written and nothing is enqueued.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..api import get_api_client
from ..campaigns import get_campaign_directory
from ..errors import UpstreamError
from ..jobstore import iso_ms, now_ms, parse_iso_ms
from ..units import campaign_units, preview_unit
from .auth import require_bearer_token
from .errors import ApiError, upstream_unavailable
from .models import CampaignPreview, Error, PreviewRequest
from .openapi import api_route

bp = Blueprint("campaigns", __name__, url_prefix="/api/v1")
bp.before_request(require_bearer_token)

#: Units listed at most in one preview.
MAX_UNITS = 1000


@api_route(bp, "POST", "/campaigns/<campaign_id>/preview",
           "What advancing the campaign's clock to `until` would change (nothing is written)",
           body=PreviewRequest, responses={200: CampaignPreview, 503: Error}, tag="campaigns")
def preview(campaign_id, body: PreviewRequest):
    services = current_app.extensions["scheduler"]
    try:
        known = get_campaign_directory(services).lookup(campaign_id, use_cache=False)
    except UpstreamError as e:
        raise upstream_unavailable(e, "about the campaign") from None
    if not known.exists:
        raise ApiError(404, "NOT_FOUND", f"campaign {campaign_id!r} does not exist in the main API")
    clock, now = ("world", known.world_time_ms) if known.has_world_clock else ("wall", now_ms())
    until = parse_iso_ms(body.until)
    if until < now:
        message = f"is before the campaign's {clock} clock ({iso_ms(now)})"
        raise ApiError(400, "VALIDATION_ERROR", f"until: {message}",
                       [{"field": "until", "message": message}])
    try:
        units = campaign_units(get_api_client(services), campaign_id)
    except UpstreamError as e:
        raise upstream_unavailable(e, "for the campaign's units") from None
    rules = services.registry.rules
    max_steps = services.settings.simulation_max_steps
    changed = [p for p in (preview_unit(u, rules, until, max_steps) for u in units) if p["occurrences"]]
    return jsonify({"campaignId": campaign_id, "clock": clock, "now": iso_ms(now),
                    "until": iso_ms(until), "unitsTotal": len(units), "unitsChanged": len(changed),
                    "truncated": len(changed) > MAX_UNITS, "units": changed[:MAX_UNITS]})
