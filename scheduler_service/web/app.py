"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from .. import __version__
from . import campaigns_api, clocks_api, health, jobs_api, metrics, recurring_api, schedules_api
from .dashboard import mount_dashboard
from .errors import register_error_handlers
from .jsonio import OrjsonProvider


def create_app(settings=None, services=None) -> Flask:
    """Build the web app.

    Args:
        settings: the settings; loaded from the environment when omitted.
        services: shared services; built from ``settings`` when omitted.

    Returns:
        The Flask app, with the services on ``app.extensions["scheduler"]``.
    """
    if services is None:
        from ..config import load_settings
        from ..services import build_services

        settings = settings or load_settings()
        services = build_services(settings)
    settings = services.settings

    app = Flask("scheduler_service")
    app.json = OrjsonProvider(app)
    app.config.update(
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        SCHEDULER_VERSION=__version__,
    )
    app.extensions["scheduler"] = services

    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(schedules_api.bp)
    app.register_blueprint(clocks_api.bp)
    app.register_blueprint(campaigns_api.bp)
    app.register_blueprint(recurring_api.bp)
    metrics.init_metrics(app, services)
    if settings.admin_dashboard_enabled:
        from .console import init_console

        init_console(app)
        mount_dashboard(app, services)
    return app
