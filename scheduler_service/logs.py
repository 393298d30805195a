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

from pythonjsonlogger.core import RESERVED_ATTRS
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


#: The record attribute that holds the context a record was made in.
_CONTEXT_ATTR = "_job_context"


class ContextRecord(logging.LogRecord):
    """A log record that carries the :func:`job_context` it was made in.

    The context fields are looked up only when the record has no attribute of that name,
    so a call's own ``extra={"campaign_id": ...}`` wins over the context instead of making
    ``logging`` refuse the call ("Attempt to overwrite ... in LogRecord"), which would turn
    a log line inside a job into the job's failure.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__[_CONTEXT_ATTR] = _context.get()

    def __getattr__(self, name):
        # Reached only for names the record itself does not have.
        try:
            return self.__dict__[_CONTEXT_ATTR][name]
        except KeyError:
            raise AttributeError(name) from None

    def context_fields(self) -> dict:
        """The context fields of this record, its own attributes of the same name first."""
        context = self.__dict__.get(_CONTEXT_ATTR, {})
        return {k: self.__dict__.get(k, context[k]) for k in CONTEXT_FIELDS if k in context}


if logging.getLogRecordFactory() is logging.LogRecord:
    logging.setLogRecordFactory(ContextRecord)


class _JsonFormatter(JsonFormatter):
    """JSON lines with the job context as fields of their own (an ``extra`` of the same
    name wins)."""

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        if isinstance(record, ContextRecord):
            for key, value in record.context_fields().items():
                log_data.setdefault(key, value)


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
        handler.setFormatter(_JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            reserved_attrs=[*RESERVED_ATTRS, _CONTEXT_ATTR],
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
