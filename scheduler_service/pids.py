"""This process's id, without a system call each time it is asked.

Code that must notice a fork (a connection or a metrics file that belongs to the parent)
compares a remembered pid with the current one on every use; :func:`os.getpid` is a
system call each time, several per web request. The value here is read once and again in
every forked child (``os.register_at_fork``), so it is the same answer for free.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """The id of the calling process."""
    return _pid
