"""Serving the web app with gunicorn (threaded workers), started from our own CLI."""

from __future__ import annotations

import logging
import socket

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from .errors import SchedulerServiceError

logger = logging.getLogger(__name__)


class BindError(SchedulerServiceError):
    """The web process cannot listen on ``HOST``:``PORT``; the message names both."""


def check_bind(host: str, port: int) -> None:
    """Fail at once, naming ``HOST`` and ``PORT``, when the address cannot be listened on.

    gunicorn would retry the bind five times a second apart and exit 1 with a message that
    names neither variable; this binds a throw-away socket first (with the same
    ``SO_REUSEADDR`` gunicorn sets, so a port in TIME_WAIT still passes).

    Raises:
        BindError: the host does not resolve to a local address, or the port is taken.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BindError(f"cannot listen on HOST={host!r} PORT={port}: {host!r} does not "
                        f"resolve ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        raise BindError(f"cannot listen on HOST={host!r} PORT={port}: {e.strerror or e}") from None


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
        # On SIGTERM, requests in flight get SHUTDOWN_GRACE_S to finish.
        "graceful_timeout": settings.shutdown_grace_s,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "scheduler-service-web",
        "logger_class": _PropagatingLogger,
        "control_socket_disable": True,
        # Said once the sockets are bound, not before.
        "when_ready": lambda _arbiter: logger.info("web listening on http://%s:%s", host, port),
    }
    _GunicornApp(factory, options).run()
