"""Broker set-up run inside each Dramatiq worker process (``dramatiq`` imports this).

``scheduler-service worker`` hands ``scheduler_service.worker_boot:boot`` to Dramatiq's
CLI; each forked worker process calls :func:`boot`, which builds the same services the
web process has, so actors are declared on the one broker the worker consumes from.
"""

from __future__ import annotations

from .config import load_settings
from .logs import configure_logging
from .services import build_services

#: The services of this worker process, kept alive for its lifetime.
services = None


def boot():
    """Build settings, logging and services; Dramatiq then takes the global broker."""
    global services
    settings = load_settings()
    configure_logging(settings)
    services = build_services(settings)
    return services.broker
