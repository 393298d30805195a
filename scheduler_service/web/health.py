"""``GET /health``: the state of every registered component."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from ..health import run_checks

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    services = current_app.extensions["scheduler"]
    overall, components = run_checks(services)
    body = {
        "status": overall,
        "version": current_app.config["SCHEDULER_VERSION"],
        "uptime": round(time.time() - services.started_at, 3),
        "components": components,
    }
    return jsonify(body), (503 if overall == "unhealthy" else 200)
