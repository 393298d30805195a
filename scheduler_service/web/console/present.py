"""How the console shows times, durations and values: pure functions, ``now`` passed in."""

from __future__ import annotations

import json

from ...jobstore import iso_ms, parse_iso_ms

#: States a job can be cancelled from (the REST API's ``DELETE /jobs/{id}`` allows the same).
CANCELLABLE = ("scheduled", "queued", "failed")

_UNITS = ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s"))


def to_ms(value) -> int | None:
    """Epoch ms of an ISO-8601 text or a number; None for what is neither."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return parse_iso_ms(value)
    except (TypeError, ValueError):
        return None


def span(ms: float | None) -> str:
    """A length of time in its two largest units: ``3 h 12 min``, ``4.2 s``, ``18 ms``."""
    if ms is None:
        return ""
    ms = abs(ms)
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 or ms == int(ms) else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    parts = []
    rest = int(ms)
    for size, unit in _UNITS:
        if rest >= size and len(parts) < 2:
            parts.append(f"{rest // size} {unit}")
            rest %= size
        elif parts:
            break
    return " ".join(parts)


def relative(value, now_ms: int | None) -> str:
    """``in 5 min`` or ``5 min ago`` of a time against ``now_ms`` (the same clock); ``now``
    within a second."""
    at = to_ms(value)
    if at is None or now_ms is None:
        return ""
    delta = at - now_ms
    if abs(delta) < 1000:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def short_time(value) -> str:
    """An ISO-8601 UTC time without the ``T`` and milliseconds: ``2026-03-01 12:00:00Z``."""
    at = to_ms(value)
    if at is None:
        return "" if value is None else str(value)
    text = iso_ms(at)
    return text[:10] + " " + text[11:19] + "Z"


def pretty_json(value) -> str:
    """A JSON value indented for reading (``null`` for None)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def run_duration_ms(history: list[dict]) -> float | None:
    """How long the last attempt in a job's history ran (from ``running`` to the next
    state), or None while it has not finished one."""
    started = None
    took = None
    for entry in history:
        at = to_ms(entry.get("at"))
        if entry.get("to") == "running":
            started = at
        elif entry.get("from") == "running" and started is not None and at is not None:
            took = at - started
            started = None
    return took


def due_of(job: dict) -> tuple[str, str | None]:
    """``("wall" | "world", due time)`` of a job record (``wall`` and None when due now)."""
    if job.get("runAtWorldTime"):
        return "world", job["runAtWorldTime"]
    return "wall", job.get("runAt")
