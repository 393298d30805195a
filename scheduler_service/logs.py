"""Logging set-up: JSON lines by default, with job context as structured fields.

Code logs through ``logging.getLogger(__name__)``; the job layer binds the context of
the job it runs with :func:`job_context`, and every record logged inside it carries
``job_id``, ``job_type`` and ``campaign_id`` as fields of their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("job_id", "job_type", "campaign_id")

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("scheduler_log_context", default={})


@contextlib.contextmanager
def job_context(**fields):
    """Bind context fields (``job_id=...``) to every record logged inside the block."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args, **kwargs):
    """Log-record factory: every record made inside :func:`job_context` carries its fields."""
    record = _base_factory(*args, **kwargs)
    for key, value in _context.get().items():
        setattr(record, key, value)
    return record


if getattr(_base_factory, "__name__", "") != _record_with_context.__name__:
    logging.setLogRecordFactory(_record_with_context)


class TextFormatter(logging.Formatter):
    """Human-readable lines that still show the job context at the end."""

    def format(self, record):
        line = super().format(record)
        extra = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if hasattr(record, k))
        return f"{line} [{extra}]" if extra else line


def configure_logging(settings, stream=None) -> None:
    """Install one root handler as the settings ask (``LOG_FORMAT``, ``LOG_LEVEL``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        ))
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # The dramatiq worker logs every consumer heartbeat at DEBUG; keep ours readable.
    logging.getLogger("werkzeug").setLevel(max(logging.WARNING, root.level))
