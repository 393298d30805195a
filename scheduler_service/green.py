"""Which server model the web process runs, decided before anything else is imported.

The web process serves with gunicorn's ``gevent`` workers by default: each request is a
greenlet, and a request waiting for Redis gives the CPU to the next one without the
operating system parking a thread and the interpreter lock changing hands (the cost that
held the threaded workers to about half the requests a second, see ``docs/benchmarks.rst``).
``gthread`` (a pool of OS threads per worker) remains a choice.

gevent only works when its monkey-patching comes before the standard library's ``socket``,
``ssl`` and ``threading`` are used, and before Dramatiq is imported (its middleware picks its
gevent or thread implementation at import). So the console script and ``python -m
scheduler_service`` call :func:`patch_for_command` first, with nothing but this module and
the standard library loaded, the way Celery decides its ``-P gevent`` pool. This module
imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: The server models of ``scheduler-service web`` (gunicorn worker classes).
WEB_WORKER_CLASSES = ("gevent", "gthread")
#: The default of ``WEB_WORKER_CLASS`` and ``--worker-class``.
DEFAULT_WEB_WORKER_CLASS = "gevent"
#: The variable that chooses it (``--worker-class`` overrides it).
WEB_WORKER_CLASS_VARIABLE = "WEB_WORKER_CLASS"


def web_worker_class(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The worker class ``scheduler-service *args`` will serve with, or None when ``args``
    does not run the web process.

    Reads ``--worker-class X`` or ``--worker-class=X`` after the ``web`` command, then
    ``WEB_WORKER_CLASS``, then the default; the value as given, lower-cased and stripped
    (the CLI and the settings check it and name it when it is not one of
    :data:`WEB_WORKER_CLASSES`).
    """
    if not args or args[0] != "web":
        return None
    value = environ.get(WEB_WORKER_CLASS_VARIABLE) or DEFAULT_WEB_WORKER_CLASS
    for i, arg in enumerate(args[1:], start=1):
        if arg == "--":
            break
        if arg == "--worker-class" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--worker-class="):
            value = arg.split("=", 1)[1]
    return value.strip().lower()


def patch_for_command(args: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Monkey-patch the standard library for gevent when ``args`` serve the web with it.

    Returns:
        True when it patched (or the process was patched already).
    """
    if web_worker_class(args, environ) != "gevent":
        return False
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    return True


def is_patched() -> bool:
    """True when gevent has patched this process's sockets (without importing gevent)."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("socket"))
