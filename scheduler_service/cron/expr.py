"""Cron expressions: parsing into APScheduler triggers, and fire-time arithmetic.

Pure functions of an expression and a moment; nothing here reads a clock or Redis.

Accepted forms, always in UTC:

* five fields, ``minute hour day month weekday`` (classic crontab);
* six fields, ``second minute hour day month weekday`` (seconds first, as node-cron and
  Quartz write them);
* the macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``) and ``@hourly``.

Fields take what APScheduler's :class:`~apscheduler.triggers.cron.CronTrigger` takes
(``*``, ``*/n``, ``a-b``, ``a-b/n``, lists, month names), except the weekday: APScheduler 3
numbers Monday 0 while crontab numbers Sunday 0 (and 7), so the weekday field is read
here with crontab's numbering and names and handed over as names.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.cron import CronTrigger

UTC = timezone.utc

#: The field names of a five-field expression, in order.
FIELDS_5 = ("minute", "hour", "day", "month", "day_of_week")
#: The field names of a six-field expression, in order (seconds first).
FIELDS_6 = ("second",) + FIELDS_5

_FIELD_TEXT = {"second": "second", "minute": "minute", "hour": "hour", "day": "day-of-month",
               "month": "month", "day_of_week": "weekday"}

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# crontab numbering: 0 (and 7) Sunday .. 6 Saturday
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_TERM = re.compile(r"^(?P<range>\*|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\d+))?$")
#: How far back :func:`latest_fire_time` looks before giving up (a leap-day schedule fires
#: at least once in eight years).
_MAX_LOOKBACK = timedelta(days=366 * 8 + 2)


class InvalidCron(ValueError):
    """A cron expression that cannot be parsed or never fires; the message says why."""


def _day_number(text: str) -> int:
    text = text.lower()
    if text.isdigit():
        value = int(text)
        if not 0 <= value <= 7:
            raise InvalidCron(f"weekday {text} is out of range 0-7 (0 and 7 are Sunday)")
        return value % 7
    if text[:3] in _CRONTAB_DAYS and len(text) == 3:
        return _CRONTAB_DAYS.index(text)
    raise InvalidCron(f"weekday {text!r} is neither a number 0-7 nor a name sun..sat")


def weekday_field(text: str) -> str:
    """Translate a crontab weekday field into APScheduler's (names, so numbering cannot slip).

    Raises:
        InvalidCron: when the field is malformed.
    """
    days: set[int] = set()
    for term in text.split(","):
        m = _DOW_TERM.match(term.strip())
        if not m:
            raise InvalidCron(f"weekday term {term!r} is malformed")
        step = int(m["step"]) if m["step"] else 1
        if step < 1:
            raise InvalidCron(f"weekday step in {term!r} must be at least 1")
        if m["range"] == "*":
            first, last = 0, 6
        else:
            first = _day_number(m["first"])
            last = _day_number(m["last"]) if m["last"] else (6 if m["step"] else first)
            if m["last"] and m["last"].strip() == "7":
                last = 7  # "5-7" means Friday to Sunday
            if last < first:
                raise InvalidCron(f"weekday range {term!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step))
    if days == set(range(7)):
        return "*"
    # APScheduler's own names; order does not matter to it, Monday first reads best.
    order = (1, 2, 3, 4, 5, 6, 0)
    return ",".join(_CRONTAB_DAYS[d] for d in order if d in days)


def split_cron(expr: str) -> dict[str, str]:
    """The fields of an expression by APScheduler name (``second`` is ``0`` for five fields).

    Raises:
        InvalidCron: on a wrong number of fields or a malformed weekday.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidCron("is empty")
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise InvalidCron(f"unknown macro {text!r}; known: {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    parts = text.split()
    if len(parts) == 5:
        fields = dict(zip(FIELDS_5, parts), second="0")
    elif len(parts) == 6:
        fields = dict(zip(FIELDS_6, parts))
    else:
        raise InvalidCron(
            f"has {len(parts)} field(s); expected 5 (minute hour day month weekday) "
            "or 6 (second minute hour day month weekday)"
        )
    fields["day_of_week"] = weekday_field(fields["day_of_week"])
    return fields


def parse_cron(expr: str) -> CronTrigger:
    """Parse an expression into a UTC :class:`CronTrigger` that fires at least once.

    Raises:
        InvalidCron: naming the field at fault, or saying that it never fires.
    """
    fields = split_cron(expr)
    for name, value in fields.items():  # one at a time, so the message can name the field
        try:
            CronTrigger(**{name: value}, timezone=UTC)
        except ValueError as e:
            reason = re.sub(r"^Error validating expression '[^']*': ", "", str(e))
            raise InvalidCron(f"{_FIELD_TEXT[name]} field {value!r}: {reason}") from None
    try:
        trigger = CronTrigger(year="*", week="*", **fields, timezone=UTC)
    except ValueError as e:
        raise InvalidCron(str(e)) from None
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise InvalidCron("never fires (no date matches every field)")
    return trigger


def cron_error(expr) -> str | None:
    """Why ``expr`` is not a valid cron expression, or None when it is."""
    try:
        parse_cron(expr)
    except InvalidCron as e:
        return str(e)
    return None


def next_fire_times(trigger: CronTrigger, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``."""
    out: list[datetime] = []
    moment = after
    while len(out) < count:
        nxt = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        if nxt is None:
            break
        out.append(nxt)
        moment = nxt
    return out


def fire_times_between(trigger: CronTrigger, start: datetime, end: datetime,
                       limit: int = 1000) -> list[datetime]:
    """Fire times ``t`` with ``start < t <= end``, at most ``limit`` of them (earliest first)."""
    out: list[datetime] = []
    moment = start
    while len(out) < limit:
        nxt = trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        if nxt is None or nxt > end:
            break
        out.append(nxt)
        moment = nxt
    return out


def latest_fire_time(trigger: CronTrigger, at: datetime) -> datetime | None:
    """The last fire time at or before ``at``, or None if there was none in eight years.

    Looks back in doubling windows, so a per-second schedule costs a step or two and a
    yearly one a few dozen.
    """
    window = timedelta(seconds=1)
    while window <= _MAX_LOOKBACK * 2:
        start = at - window
        found = fire_times_between(trigger, start - timedelta(microseconds=1), at, limit=10_000)
        if found:
            return found[-1]
        window *= 2
    return None


def iso_seconds(moment: datetime) -> str:
    """A fire time as ``2026-03-01T12:00:00Z`` (ticks are whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))
