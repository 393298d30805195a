"""What one pass of a recurring job does: which occurrences to create, which to skip.

Pure: :func:`plan_pass` takes the recurrence's schedule, its cursor (the earliest
occurrence not dealt with yet), the clock's reading and the policy, and returns a
:class:`Plan`. The service carries it out.

The rules, on either clock:

1. Occurrences older than ``now - catchUpWindow`` (when a window is set) are skipped under
   every policy, as Temporal's catch-up window drops actions missed for longer than it.
2. Of the occurrences left that are due (at or before ``now``): when there is one, it is
   created under every policy: the clock reached it, nothing was missed. When there are
   several (the world clock jumped over them, or the wall clock's timers were not pumped
   for a while), the policy decides: ``all`` creates each of them, oldest first, at most
   ``limit`` per pass (the next pass goes on); ``latest`` creates the newest and skips the
   rest; ``skip`` creates none of them.
3. ``maxOccurrences`` counts created occurrences; ``endAt`` is the last allowed moment.
   Either one reached ends the recurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pattern import Schedule

POLICIES = ("all", "latest", "skip")
#: Skipped cron occurrences are counted one by one up to this many; beyond, the count is None.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Plan:
    """The outcome of one pass.

    Attributes:
        create: occurrences to create, oldest first.
        skipped: how many were skipped (None: more than :data:`COUNT_CAP` cron times).
        skipped_from: the first skipped occurrence, or None.
        skipped_to: the last skipped occurrence, or None.
        cursor: the earliest occurrence still to deal with; None when the recurrence ended.
        ended: why it ended (``endAt``, ``maxOccurrences``), or None.
        more: True when ``cursor`` is already due (``all`` stopped at ``limit``).
    """

    create: tuple[int, ...]
    skipped: int | None
    skipped_from: int | None
    skipped_to: int | None
    cursor: int | None
    ended: str | None
    more: bool


def plan_pass(schedule: Schedule, cursor: int | None, now: int, policy: str, *,
              window_ms: int | None = None, created: int = 0,
              max_occurrences: int | None = None, limit: int = 1000) -> Plan:
    """Decide one pass at clock reading ``now``.

    Args:
        schedule: the recurrence's occurrences.
        cursor: the earliest occurrence not dealt with yet (None: none is left).
        now: the clock's reading (epoch ms of the recurrence's clock).
        policy: ``all``, ``latest`` or ``skip`` (for several due occurrences).
        window_ms: occurrences older than ``now - window_ms`` are skipped; None keeps all.
        created: occurrences created so far (for ``max_occurrences``).
        max_occurrences: stop after creating this many; None for no limit.
        limit: most occurrences created in one pass.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    left = None if max_occurrences is None else max(0, max_occurrences - created)
    if cursor is None or left == 0:
        return Plan((), 0, None, None, None, "maxOccurrences" if left == 0 else "endAt", False)
    if cursor > now:  # not due yet (the clock was set back): wait for it
        return Plan((), 0, None, None, cursor, None, False)

    skipped, first_skipped, last_skipped = 0, None, None

    def skip(lo: int, hi: int) -> None:
        nonlocal skipped, first_skipped, last_skipped
        count = schedule.count_between(lo, hi, COUNT_CAP)
        if count == 0:
            return
        first_skipped = first_skipped if first_skipped is not None else schedule.first_at_or_after(lo)
        last_skipped = schedule.latest_at_or_before(hi)
        skipped = None if (count is None or skipped is None) else skipped + count

    first = cursor
    if window_ms is not None and cursor < now - window_ms:
        first = schedule.first_at_or_after(now - window_ms)
        skip(cursor, (first if first is not None else now + 1) - 1)

    create: list[int] = []
    if first is not None and first <= now:
        second = schedule.next_after(first)
        if second is None or second > now:  # one due: on time, whatever the policy
            create.append(first)
            after = second
        elif policy == "all":
            bound = limit if left is None else min(limit, left)
            t = first
            while t is not None and t <= now and len(create) < bound:
                create.append(t)
                t = schedule.next_after(t)
            after = t
        else:
            newest = schedule.latest_at_or_before(now)
            if policy == "latest":
                skip(first, newest - 1)
                create.append(newest)
            else:
                skip(first, newest)
            after = schedule.next_after(newest)
        if left is not None and len(create) > left:
            create = create[:left]
        if left is not None and len(create) == left:
            return Plan(tuple(create), skipped, first_skipped, last_skipped, None,
                        "maxOccurrences", False)
    else:
        after = first
    if after is None:
        return Plan(tuple(create), skipped, first_skipped, last_skipped, None, "endAt", False)
    return Plan(tuple(create), skipped, first_skipped, last_skipped, after, None, after <= now)
