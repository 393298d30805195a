"""Serving the web app with gunicorn (threaded workers), started from our own CLI."""

from __future__ import annotations

import logging

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

logger = logging.getLogger(__name__)


class _PropagatingLogger(glogging.Logger):
    """gunicorn's logger, writing through our root handler (JSON lines) instead of its own."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class _GunicornApp(BaseApplication):
    def __init__(self, factory, options):
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Called in each worker after the fork: every worker gets its own connections.
        return self.factory()


def serve(settings, registry, host, port, workers, threads):
    """Run gunicorn until SIGINT/SIGTERM; each worker builds the app from ``settings``."""
    from .logs import configure_logging
    from .services import build_services
    from .web import create_app

    def factory():
        configure_logging(settings)
        return create_app(services=build_services(settings, registry))

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 20,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "scheduler-service-web",
        "logger_class": _PropagatingLogger,
        "control_socket_disable": True,
    }
    logger.info("web listening on http://%s:%s", host, port)
    _GunicornApp(factory, options).run()
