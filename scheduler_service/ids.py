"""Identifiers the service makes: job ids and message ids.

They name things; they are never secrets (every route that takes one also asks for the
bearer token), so they come from the :mod:`random` module's generator, which the
interpreter seeds from the operating system at start-up and again in every forked child,
rather than from :func:`os.urandom`. That matters on the create path: ``os.urandom`` is a
system call made without the GIL, and each of the three ids of a create handed the GIL
to another request thread and then waited up to a switch interval to get it back.
"""

from __future__ import annotations

import random

_bits = random.getrandbits
#: The RFC 4122 variant nibble, chosen by two random bits (8, 9, a or b).
_VARIANT = "89ab"


def new_uuid() -> str:
    """A random (version 4, RFC 4122 variant) UUID string."""
    h = f"{_bits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lower-case hex (``2 * nbytes`` characters)."""
    return f"{_bits(8 * nbytes):0{2 * nbytes}x}"
