"""The world-clock API under ``/api/v1/world-clocks``: see and repair remembered clocks.

The scheduler remembers, per campaign, the world time its timer pumps last reached; a job
created for an earlier world time is due at once. These routes show that memory beside
what the main API says, and reset it to the API's time when it went wrong.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from ..campaigns import get_campaign_directory
from ..errors import UpstreamError
from ..jobstore import iso_ms
from .auth import require_bearer_token
from .errors import ApiError, upstream_unavailable
from .models import Error, WorldClock, WorldClockList, WorldClockReset
from .openapi import api_route

logger = logging.getLogger(__name__)

bp = Blueprint("world_clocks", __name__, url_prefix="/api/v1")
bp.before_request(require_bearer_token)


def _services():
    return current_app.extensions["scheduler"]


def _view(clock: dict, api_answer=None, api_status: str | None = None) -> dict:
    view = {"campaignId": clock["campaignId"],
            "rememberedWorldTime": iso_ms(clock["rememberedMs"]),
            "pendingTimers": clock["pending"], "nextDue": iso_ms(clock["nextDueMs"])}
    if api_status is not None:
        view["apiWorldTime"] = iso_ms(api_answer.world_time_ms) if api_answer else None
        view["apiStatus"] = api_status
    return view


def _ask_api(campaign_id: str):
    """``(answer or None, status, error)``: the API's word on the campaign, never cached."""
    try:
        answer = get_campaign_directory(_services()).lookup(campaign_id, use_cache=False)
    except UpstreamError as e:
        logger.warning("cannot read the world time of %s from the API: %s", campaign_id, e,
                       extra={"campaign_id": campaign_id})
        return None, "unreachable", e
    return answer, ("ok" if answer.exists else "unknown_campaign"), None


@api_route(bp, "GET", "/world-clocks", "Every remembered world clock with its waiting timers",
           responses={200: WorldClockList}, tag="world clocks")
def list_world_clocks():
    store = _services().jobs
    return jsonify({"items": [_view(store.world_clock(c)) for c in store.world_clock_campaigns()]})


@api_route(bp, "GET", "/world-clocks/<campaign_id>",
           "One campaign's remembered world time, its timers, and the API's world time",
           responses={200: WorldClock}, tag="world clocks")
def get_world_clock(campaign_id):
    store = _services().jobs
    clock = store.world_clock(campaign_id)
    answer, status, _ = _ask_api(campaign_id)
    if status == "unknown_campaign" and clock["rememberedMs"] is None and not clock["pending"]:
        raise ApiError(404, "NOT_FOUND", f"campaign {campaign_id!r} is unknown to the API and "
                                         "to the scheduler")
    return jsonify(_view(clock, answer, status))


@api_route(bp, "POST", "/world-clocks/<campaign_id>/reset",
           "Set the remembered world time to the API's current one (forgotten without a clock)",
           responses={200: WorldClockReset, 503: Error}, tag="world clocks")
def reset_world_clock(campaign_id):
    store = _services().jobs
    answer, status, error = _ask_api(campaign_id)
    if status == "unreachable":
        raise upstream_unavailable(error, "for the campaign's world time")
    target = answer.world_time_ms if answer.exists else None
    previous = store.reset_world_time(campaign_id, target)
    logger.warning("world clock of %s reset from %s to %s", campaign_id, iso_ms(previous),
                   iso_ms(target), extra={"campaign_id": campaign_id})
    return jsonify({"previousWorldTime": iso_ms(previous),
                    "clock": _view(store.world_clock(campaign_id), answer, status)})
