"""When a recurring job's occurrences fall: ISO-8601 durations, cron on any year, schedules.

Pure functions of a pattern and a moment, in epoch milliseconds of the recurrence's own
clock (the wall clock, or a campaign's world clock read as if it were UTC). Nothing here
reads a clock or Redis.

* :class:`EveryPattern`: ``anchor + k x every`` for ``k = 0, 1, ...``. Calendar parts of the
  duration (years, months) are added to the anchor as a whole (``k`` months at once, the
  day clamped to the month's last), so a monthly series started on the 31st falls on the
  last day of short months without drifting to the 28th afterwards.
* :class:`CronPattern`: a cron expression of :mod:`scheduler_service.cron.expr`. APScheduler
  only knows the years 1970-9999, while a world clock may stand in 1450. The Gregorian
  calendar repeats every 400 years to the weekday (146,097 days, exactly 20,871 weeks), and
  the expressions have no year field, so a moment is moved by whole 400-year cycles into
  2000-2399, evaluated there, and moved back.
* :class:`Schedule`: a pattern between a first and a last allowed moment.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..cron.expr import InvalidCron, parse_cron
from ..times import MAX_TIME_MS, MIN_TIME_MS

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
#: 400 Gregorian years in ms: the calendar's period, weekdays included.
CYCLE_MS = 146_097 * 86_400_000
#: Moments are evaluated by APScheduler within [2000-01-01, 2400-01-01).
_CYCLE_BASE_MS = (datetime(2000, 1, 1, tzinfo=timezone.utc) - _EPOCH) // _MS
#: Shortest interval of ``every``: a recurrence is not a busy loop.
MIN_EVERY_MS = 1000
#: Average month in ms (a 400-year cycle has 4,800 months), to estimate an index.
_AVG_MONTH_MS = CYCLE_MS / 4800

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?!$)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d{1,3})?)S)?)?$")


class InvalidPattern(ValueError):
    """A duration or cron expression that cannot be used; the message says why."""


@dataclass(frozen=True)
class Duration:
    """An ISO-8601 duration split into calendar months and a fixed part in ms."""

    text: str
    months: int
    fixed_ms: int

    @property
    def approx_ms(self) -> float:
        return self.months * _AVG_MONTH_MS + self.fixed_ms


def parse_duration(text: str) -> Duration:
    """Parse ``P7D``, ``PT1H30M``, ``P1M``, ``P1Y2M10DT2H30M5.5S``, ``P2W``...

    Raises:
        InvalidPattern: on another form, or a duration under one second.
    """
    if not isinstance(text, str):
        raise InvalidPattern("must be an ISO-8601 duration such as P7D or PT1H")
    m = _DURATION.match(text.strip().upper())
    if not m:
        raise InvalidPattern(f"{text!r} is not an ISO-8601 duration (for example P7D, PT1H30M, P1M)")
    part = {k: v for k, v in m.groupdict().items() if v is not None}
    months = int(part.get("years", 0)) * 12 + int(part.get("months", 0))
    seconds = float(part.get("seconds", "0").replace(",", "."))
    fixed = ((int(part.get("weeks", 0)) * 7 + int(part.get("days", 0))) * 86_400_000
             + int(part.get("hours", 0)) * 3_600_000 + int(part.get("minutes", 0)) * 60_000
             + round(seconds * 1000))
    if months == 0 and fixed < MIN_EVERY_MS:
        raise InvalidPattern(f"{text!r} is shorter than one second")
    if months > 12 * 10_000 or fixed > MAX_TIME_MS - MIN_TIME_MS:
        raise InvalidPattern(f"{text!r} is longer than the calendar")
    return Duration(text.strip().upper(), months, fixed)


def duration_error(text) -> str | None:
    """Why ``text`` is not a usable duration, or None."""
    try:
        parse_duration(text)
    except InvalidPattern as e:
        return str(e)
    return None


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def add_months(ms: int, months: int) -> int | None:
    """``ms`` moved by whole calendar months (day clamped); None past the year 9999."""
    if months == 0:
        return ms
    moment = _dt(ms)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        return None
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return _ms(moment.replace(year=year, month=month + 1, day=day))


class EveryPattern:
    """Occurrences ``anchor + k x duration``, ``k >= 0``."""

    def __init__(self, duration: Duration, anchor_ms: int):
        self.duration = duration
        self.anchor = anchor_ms

    def at(self, k: int) -> int | None:
        """The ``k``-th occurrence, or None when it is past the representable times."""
        base = add_months(self.anchor, k * self.duration.months)
        if base is None:
            return None
        t = base + k * self.duration.fixed_ms
        return t if t <= MAX_TIME_MS else None

    def index_at_or_after(self, t: int) -> int:
        """The smallest ``k`` whose occurrence is at or after ``t`` (maybe unrepresentable)."""
        if t <= self.anchor:
            return 0
        d = self.duration
        if d.months == 0:
            return -((self.anchor - t) // d.fixed_ms)  # ceil((t - anchor) / fixed)
        k = max(0, int((t - self.anchor) // d.approx_ms) - 1)
        while k > 0 and (self.at(k - 1) is None or self.at(k - 1) >= t):
            k -= 1
        while True:
            value = self.at(k)
            if value is None or value >= t:
                return k
            k += 1

    def first_at_or_after(self, t: int) -> int | None:
        return self.at(self.index_at_or_after(t))

    def latest_at_or_before(self, t: int) -> int | None:
        k = self.index_at_or_after(t + 1) - 1
        return None if k < 0 else self.at(k)

    def count_between(self, lo: int, hi: int, cap: int | None = None) -> int | None:
        """Occurrences ``t`` with ``lo <= t <= hi`` (exact; ``cap`` is ignored)."""
        if hi < lo:
            return 0
        return self.index_at_or_after(hi + 1) - self.index_at_or_after(lo)


class CronPattern:
    """The fire times of a cron expression (UTC), on any year from 1 to 9999."""

    def __init__(self, expression: str):
        try:
            self.trigger = parse_cron(expression)
        except InvalidCron as e:
            raise InvalidPattern(str(e)) from None
        self.expression = expression

    def first_at_or_after(self, t: int) -> int | None:
        if t > MAX_TIME_MS:
            return None
        cycles = (t - _CYCLE_BASE_MS) // CYCLE_MS
        shifted = t - cycles * CYCLE_MS
        # The trigger works in microseconds; a fire time is a whole second.
        fire = self.trigger.get_next_fire_time(None, _dt(shifted))
        if fire is None:
            return None
        value = _ms(fire) + cycles * CYCLE_MS
        return value if value <= MAX_TIME_MS else None

    def latest_at_or_before(self, t: int) -> int | None:
        """Looks back in doubling windows (a per-second schedule costs a step or two)."""
        window = 1000
        while window <= 2 * CYCLE_MS:
            start = t - window
            if start < MIN_TIME_MS:
                start = MIN_TIME_MS
            found = self.first_at_or_after(start)
            if found is not None and found <= t:
                while True:
                    later = self.first_at_or_after(found + 1)
                    if later is None or later > t:
                        return found
                    found = later
            if start == MIN_TIME_MS:
                return None
            window *= 2
        return None

    def count_between(self, lo: int, hi: int, cap: int | None = None) -> int | None:
        """Fire times in ``[lo, hi]``, or None when there are more than ``cap``."""
        count, t = 0, self.first_at_or_after(lo)
        while t is not None and t <= hi:
            count += 1
            if cap is not None and count > cap:
                return None
            t = self.first_at_or_after(t + 1)
        return count


@dataclass(frozen=True)
class Schedule:
    """A pattern's times ``t`` with ``start <= t <= end`` (``end`` None: no end)."""

    pattern: object
    start: int
    end: int | None = None

    def first_at_or_after(self, t: int) -> int | None:
        found = self.pattern.first_at_or_after(max(t, self.start))
        if found is None or (self.end is not None and found > self.end):
            return None
        return found

    def next_after(self, t: int) -> int | None:
        return self.first_at_or_after(t + 1)

    def latest_at_or_before(self, t: int) -> int | None:
        if self.end is not None:
            t = min(t, self.end)
        found = self.pattern.latest_at_or_before(t)
        return None if found is None or found < self.start else found

    def count_between(self, lo: int, hi: int, cap: int | None = None) -> int | None:
        lo = max(lo, self.start)
        if self.end is not None:
            hi = min(hi, self.end)
        return 0 if hi < lo else self.pattern.count_between(lo, hi, cap)

    def upcoming(self, t: int, count: int) -> list[int]:
        """Up to ``count`` times at or after ``t``."""
        out: list[int] = []
        found = self.first_at_or_after(t)
        while found is not None and len(out) < count:
            out.append(found)
            found = self.next_after(found)
        return out


def build_pattern(*, cron: str | None = None, every: str | None = None,
                  anchor_ms: int | None = None):
    """The pattern of a recurrence: ``cron``, or ``every`` anchored at ``anchor_ms``.

    Raises:
        InvalidPattern: on a bad expression or duration, or neither/both given.
    """
    if (cron is None) == (every is None):
        raise InvalidPattern("give cron or every, not both")
    if cron is not None:
        return CronPattern(cron)
    if anchor_ms is None:
        raise InvalidPattern("an every pattern needs its anchor")
    return EveryPattern(parse_duration(every), anchor_ms)


