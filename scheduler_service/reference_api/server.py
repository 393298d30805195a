"""Serving the reference API with gunicorn: one worker process, several threads.

One worker because the data is a local SQLite file; threads because the scheduler calls it
concurrently. The database is created and seeded in the master before the worker starts.
"""

from __future__ import annotations

import logging

from ..webserver import _GunicornApp, _PropagatingLogger
from .seed import seed as seed_database
from .storage import Store

logger = logging.getLogger(__name__)

#: Threads of the single gunicorn worker.
DEFAULT_THREADS = 8


def serve(settings, host: str, port: int, seed: str = "none", threads: int = DEFAULT_THREADS) -> None:
    """Seed the database, then run gunicorn until SIGINT/SIGTERM.

    Args:
        settings: the service settings; ``reference_api_db_path`` is the database.
        host: interface to bind.
        port: port to bind.
        seed: ``demo`` or ``none``.
        threads: threads of the worker.
    """
    from ..logs import configure_logging
    from .app import check_settings, create_app

    check_settings(settings)
    store = Store(settings.reference_api_db_path)
    try:
        seed_database(store, seed)
    finally:
        store.close()

    def factory():
        configure_logging(settings)
        return create_app(settings)

    options = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "scheduler-reference-api",
        "logger_class": _PropagatingLogger,
        "control_socket_disable": True,
    }
    logger.info("reference API on http://%s:%s/graphql (database %s)", host, port,
                settings.reference_api_db_path)
    _GunicornApp(factory, options).run()
