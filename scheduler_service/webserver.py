"""Serving the web app with gunicorn, started from our own CLI.

The workers are gevent's by default (``WEB_WORKER_CLASS``; the process was patched at
start, see :mod:`scheduler_service.green`) or gunicorn's threaded ones; either answers the
requests gunicorn's parser refuses with the API's JSON error body.

The HTTP metrics of the workers are kept in prometheus_client's multiprocess mode: each
serve makes a fresh, empty directory of its own, points ``PROMETHEUS_MULTIPROC_DIR`` at it
before any worker starts (the workers inherit it), lets every ``/metrics`` read all the
workers' files, marks a worker's live gauges dead when it exits, and removes the directory
when gunicorn stops. Counters of workers that exited stay in the sums, so a scrape never
goes backwards when gunicorn replaces a worker.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
import tempfile

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

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


#: What a request gunicorn refused before the app saw it gets, by status: the error code
#: and the part of the request at fault (the ``field`` of the error body).
_PARSER_ERRORS = {
    400: ("BAD_REQUEST", "request"),
    403: ("FORBIDDEN", "request"),
    414: ("URI_TOO_LONG", "request-line"),
    417: ("EXPECTATION_FAILED", "Expect"),
    431: ("REQUEST_HEADER_FIELDS_TOO_LARGE", "headers"),
    501: ("NOT_IMPLEMENTED", "Transfer-Encoding"),
}


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's answer to a request it could not parse (a request line over
    ``limit_request_line``, headers over their limits, a bad chunk), written with the API's
    JSON error body instead of gunicorn's HTML page."""
    code, field = _PARSER_ERRORS.get(status_int, ("INTERNAL", None))
    message = mesg or reason
    body = json.dumps({"error": {"code": code, "message": f"{reason}: {message}",
                                 "details": [{"field": field, "message": message}]}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class _JsonErrors:
    """Mixed into a gunicorn worker class: the requests its parser refuses are answered in JSON.

    gunicorn's limits stay in force (a request line over 4 KiB never reaches Python code
    of ours; no route of this API needs one that long); only their error page changes.
    gunicorn writes it through ``util.write_error``, its one call site, replaced in the
    worker process.
    """

    def init_process(self):
        util.write_error = write_json_error
        super().init_process()


class JsonErrorWorker(_JsonErrors, ThreadWorker):
    """gunicorn's threaded worker (``gthread``), its parser's refusals answered in JSON."""


@functools.cache
def _gevent_worker_class():
    """gunicorn's gevent worker with JSON refusals (imported only when chosen: its module
    imports gevent)."""
    from gunicorn.workers.ggevent import GeventWorker

    return type("JsonErrorGeventWorker", (_JsonErrors, GeventWorker),
                {"__doc__": "gunicorn's gevent worker, its parser's refusals answered in JSON."})


class GeventNotPatched(SchedulerServiceError):
    """The gevent worker class was chosen in a process that was not patched at its start."""


def worker_class_option(worker_class: str):
    """gunicorn's ``worker_class`` setting for ``gevent`` or ``gthread``.

    Raises:
        GeventNotPatched: ``gevent`` in a process not patched by
            :func:`scheduler_service.green.patch_for_command` (patching this late would leave
            Dramatiq and the sockets already made on the thread implementations).
    """
    from .green import is_patched

    if worker_class == "gthread":
        return JsonErrorWorker
    if worker_class != "gevent":
        raise ValueError(f"worker_class must be gevent or gthread, got {worker_class!r}")
    if not is_patched():
        raise GeventNotPatched(
            "the gevent worker class (WEB_WORKER_CLASS, --worker-class) needs the process "
            "patched when it starts: run it as `scheduler-service web` or `python -m "
            "scheduler_service web`, or choose gthread")
    return _gevent_worker_class()


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


def multiprocess_metrics_dir() -> str:
    """A fresh directory for the workers' metric files, the process told to use it.

    prometheus_client picks its value class once, at import, from the variable, so the
    choice is made again here. Its multiprocess values check the process id at every
    change (a fork starts new files); they are given :func:`~scheduler_service.pids.current_pid`,
    which answers without a system call, instead of ``os.getpid``.
    """
    from prometheus_client import values

    from .pids import current_pid

    folder = tempfile.mkdtemp(prefix="scheduler-web-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)
    return folder


def serve(settings, registry, host, port, workers, threads, worker_class=None):
    """Run gunicorn until SIGINT/SIGTERM; each worker builds the app from ``settings``.

    ``worker_class`` is ``gevent`` (the process patched at start) or ``gthread`` with
    ``threads`` threads a worker; ``settings.web_worker_class`` when not given.
    """
    from .logs import configure_logging
    from .services import build_services
    from .web import create_app
    from .web.metrics import MULTIPROCESS_DIR_KEY

    worker_class = worker_class or settings.web_worker_class
    worker = worker_class_option(worker_class)
    metrics_dir = multiprocess_metrics_dir()

    def factory():
        configure_logging(settings)
        services = build_services(settings, registry)
        services.extras[MULTIPROCESS_DIR_KEY] = metrics_dir
        return create_app(services=services)

    def child_exit(_arbiter, worker):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, metrics_dir)

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": worker,
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
        "when_ready": lambda _arbiter: logger.info(
            "web listening on http://%s:%s (%s %s worker(s)%s)", host, port, workers,
            worker_class, f", {threads} threads each" if worker_class == "gthread" else ""),
        "child_exit": child_exit,
    }
    master = os.getpid()
    try:
        _GunicornApp(factory, options).run()
    finally:
        # A worker leaves through here too (its SystemExit unwinds the forked stack).
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
