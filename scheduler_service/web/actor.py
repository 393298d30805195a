"""The ``X-Actor`` header: who a change made over the API is recorded as.

A caller names itself (a person, a script); the history keeps that name. Names the service
records for itself (``cron``, ``worker``, ``system``, ...) are refused, so that no caller
can pass a change off as the service's own, and the header is read as UTF-8 (a WSGI server
hands header bytes over as Latin-1), so ``José`` is kept as ``José``.
"""

from __future__ import annotations

import re

from flask import request

from .errors import ApiError

#: Header that names the caller.
HEADER = "X-Actor"
#: Who a change is recorded as when the header is absent.
DEFAULT_ACTOR = "api"
#: Longest name taken.
MAX_ACTOR = 64
#: Names the service writes itself; refused from callers (compared case-insensitively).
RESERVED = frozenset({"cron", "worker", "system", "scheduler", "console", "pump", "subscriber"})
#: Letters and digits of any script, then also ``_ . @ + - ( )`` and single inner spaces
#: (the CLI sends ``alice (cli)``).
_PATTERN = re.compile(r"\w(?:[\w.@+()-]| (?! )(?=.))*")


def actor_problem(name: str) -> str | None:
    """Why ``name`` cannot be an actor, or None."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_ACTOR:
        return f"must be at most {MAX_ACTOR} characters, got {len(name)}"
    if not _PATTERN.fullmatch(name):
        return ("must be letters, digits and _ . @ + - ( ) (single spaces inside), starting "
                "with a letter or digit")
    if name.casefold() in RESERVED:
        return f"{name!r} is a name the service records for itself; callers name themselves"
    return None


def request_actor() -> str:
    """The request's actor: its ``X-Actor`` header, else ``api``.

    Raises:
        ApiError: 400 naming the header when it is not UTF-8, malformed or reserved.
    """
    raw = request.headers.get(HEADER)
    if raw is None:
        return DEFAULT_ACTOR
    try:
        name = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        problem = "must be UTF-8 text"
    else:
        problem = actor_problem(name)
    if problem:
        raise ApiError(400, "INVALID_HEADER", f"{HEADER}: {problem}",
                       [{"field": HEADER, "message": problem}])
    return name
