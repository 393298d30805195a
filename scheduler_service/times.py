"""Time as the service stores and shows it: epoch milliseconds and ISO-8601 UTC.

Pure helpers, shared by the job store, the API routes, the subscriber and the simulation
engine: every stored time is epoch ms; every shown one is ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: The earliest instant a due time may have: 0001-01-01T00:00:00.000Z, in epoch ms.
MIN_TIME_MS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
#: The latest: 9999-12-31T23:59:59.999Z (what ISO-8601 UTC with four-digit years can show).
MAX_TIME_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) - _EPOCH) \
    // timedelta(milliseconds=1)


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


def iso_ms(ms) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``2026-03-01T12:00:00.000Z``).

    Total: a stored value that is not a representable time (written by an older version,
    or by hand) comes back as ``"invalid time: <value>"`` instead of failing the caller.
    """
    if ms in (None, ""):
        return None
    try:
        value = int(ms)
        if not MIN_TIME_MS <= value <= MAX_TIME_MS:
            raise ValueError
    except (TypeError, ValueError):
        shown = ms.decode(errors="replace") if isinstance(ms, bytes) else ms
        return f"invalid time: {shown}"
    seconds, millis = divmod(value, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of an epoch second: a record shows a handful of distinct
    seconds (created, updated, due), and most records are read near the time they were
    written, so formatting is done once per second rather than once per field."""
    return (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")[:19]


def parse_iso_ms(text: str) -> int:
    """ISO-8601 with an offset (or ``Z``) as epoch milliseconds.

    Raises:
        ValueError: when the text is not such a timestamp, or its instant in UTC falls
            outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z (which could be
            stored but never shown again).
    """
    if not isinstance(text, str):
        raise ValueError("must be an ISO-8601 string")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError("must include a UTC offset (for example 2026-03-01T12:00:00Z)")
    ms = (dt - _EPOCH) // timedelta(milliseconds=1)
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise ValueError("is outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z in UTC")
    return ms
