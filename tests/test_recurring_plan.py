"""The pure core of recurring jobs: durations, patterns on any year, and the pass plan."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from scheduler_service.recurring.pattern import (
    CronPattern, EveryPattern, InvalidPattern, Schedule, parse_duration,
)
from scheduler_service.recurring.plan import plan_pass
from scheduler_service.times import MAX_TIME_MS, iso_ms, parse_iso_ms

DAY = 86_400_000
HOUR = 3_600_000
W0 = parse_iso_ms("1450-03-01T00:00:00Z")


@pytest.mark.parametrize("text, months, fixed", [
    ("P7D", 0, 7 * DAY), ("PT1H30M", 0, 90 * 60_000), ("P1M", 1, 0), ("P1Y2M", 14, 0),
    ("P2W", 0, 14 * DAY), ("P1DT12H", 0, 36 * HOUR), ("PT1.5S", 0, 1500), ("p1d", 0, DAY),
])
def test_iso_durations_split_into_calendar_months_and_fixed_milliseconds(text, months, fixed):
    d = parse_duration(text)
    assert (d.months, d.fixed_ms) == (months, fixed)


@pytest.mark.parametrize("text, why", [
    ("P", "not an ISO-8601 duration"), ("PT", "not an ISO-8601 duration"),
    ("7D", "not an ISO-8601 duration"), ("P1H", "not an ISO-8601 duration"),
    ("PT0.5S", "shorter than one second"), ("P0D", "shorter than one second"),
])
def test_bad_durations_say_why(text, why):
    with pytest.raises(InvalidPattern, match=why):
        parse_duration(text)


def test_monthly_interval_clamps_to_short_months_without_drifting():
    start = parse_iso_ms("2026-01-31T09:00:00Z")
    every = EveryPattern(parse_duration("P1M"), start)
    assert [iso_ms(every.at(k)) for k in range(4)] == [
        "2026-01-31T09:00:00.000Z", "2026-02-28T09:00:00.000Z",
        "2026-03-31T09:00:00.000Z", "2026-04-30T09:00:00.000Z"]
    assert every.first_at_or_after(parse_iso_ms("2026-03-01T00:00:00Z")) == \
        parse_iso_ms("2026-03-31T09:00:00Z")
    assert every.latest_at_or_before(parse_iso_ms("2026-03-31T08:59:59.999Z")) == \
        parse_iso_ms("2026-02-28T09:00:00Z")


@settings(max_examples=200, deadline=None)
@given(months=st.integers(0, 14), days=st.integers(0, 40), minutes=st.integers(0, 1500),
       offset=st.integers(-400 * DAY, 4000 * DAY))
def test_interval_indexes_agree_with_counting_one_by_one(months, days, minutes, offset):
    text = f"P{months}M{days}DT{minutes}M"
    if months == 0 and days == 0 and minutes == 0:
        text = "PT1M"
    every = EveryPattern(parse_duration(text), W0)
    t = W0 + offset
    k = every.index_at_or_after(t)
    assert every.at(k) >= t
    assert k == 0 or every.at(k - 1) < t
    assert every.count_between(W0, t) == (k if every.at(k) > t else k + 1)


@settings(max_examples=150, deadline=None)
@given(st.integers(parse_iso_ms("0002-01-01T00:00:00Z"), parse_iso_ms("9998-01-01T00:00:00Z")))
def test_cron_weekdays_hold_on_any_year(t):
    # "every Friday at 18:00", evaluated far outside the 1970-9999 range APScheduler knows
    friday = CronPattern("0 18 * * 5")
    fire = friday.first_at_or_after(t)
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=fire)
    assert moment.weekday() == 4 and (moment.hour, moment.minute, moment.second) == (18, 0, 0)
    assert t <= fire < t + 7 * DAY
    latest = friday.latest_at_or_before(t)
    assert latest <= t < friday.first_at_or_after(latest + 1)


def test_monthly_cron_in_a_world_of_1450():
    first_of_month = CronPattern("0 0 1 * *")
    t = parse_iso_ms("1450-03-01T12:00:00Z")
    assert iso_ms(first_of_month.first_at_or_after(t)) == "1450-04-01T00:00:00.000Z"
    schedule = Schedule(first_of_month, t, parse_iso_ms("1450-07-01T00:00:00Z"))
    assert [iso_ms(x) for x in schedule.upcoming(t, 5)] == [
        "1450-04-01T00:00:00.000Z", "1450-05-01T00:00:00.000Z", "1450-06-01T00:00:00.000Z",
        "1450-07-01T00:00:00.000Z"]
    assert schedule.count_between(t, MAX_TIME_MS) == 4


def test_cron_ends_at_the_last_representable_year():
    assert CronPattern("0 0 1 1 *").first_at_or_after(parse_iso_ms("9999-06-01T00:00:00Z")) is None


# -- the pass plan ---------------------------------------------------------------------

NOON_DAILY = Schedule(EveryPattern(parse_duration("P1D"), W0 + 12 * HOUR), W0 + 12 * HOUR)


@pytest.mark.parametrize("policy, created, skipped", [
    ("all", 30, 0), ("latest", 1, 29), ("skip", 0, 30)])
def test_a_thirty_day_jump_under_each_policy(policy, created, skipped):
    # Given a daily recurrence at noon, first due on day 0, and the clock jumping 30 days
    plan = plan_pass(NOON_DAILY, W0 + 12 * HOUR, W0 + 30 * DAY, policy)
    expected = [W0 + 12 * HOUR + k * DAY for k in range(30)]
    assert list(plan.create) == {"all": expected, "latest": expected[-1:], "skip": []}[policy]
    assert plan.skipped == skipped
    assert plan.cursor == W0 + 30 * DAY + 12 * HOUR and not plan.more and plan.ended is None
    if skipped:
        assert plan.skipped_from == expected[0]
        assert plan.skipped_to == expected[-1 if policy == "skip" else -2]


@pytest.mark.parametrize("policy", ["all", "latest", "skip"])
def test_one_due_occurrence_is_on_time_under_every_policy(policy):
    plan = plan_pass(NOON_DAILY, W0 + 12 * HOUR, W0 + DAY, policy)
    assert plan.create == (W0 + 12 * HOUR,) and plan.skipped == 0
    assert plan.cursor == W0 + DAY + 12 * HOUR


def test_all_is_bounded_per_pass_and_says_more_is_due():
    plan = plan_pass(NOON_DAILY, W0 + 12 * HOUR, W0 + 30 * DAY, "all", limit=7)
    assert len(plan.create) == 7 and plan.more
    assert plan.cursor == W0 + 7 * DAY + 12 * HOUR
    again = plan_pass(NOON_DAILY, plan.cursor, W0 + 30 * DAY, "all", limit=7)
    assert again.create[0] == W0 + 7 * DAY + 12 * HOUR


@pytest.mark.parametrize("policy, created, skipped", [
    ("all", [4, 5], 4), ("latest", [5], 5), ("skip", [], 6)])
def test_the_catch_up_window_drops_what_is_older_first(policy, created, skipped):
    # Given an hourly recurrence whose timers were not pumped for five and a half hours
    hourly = Schedule(EveryPattern(parse_duration("PT1H"), 0), 0)
    plan = plan_pass(hourly, 0, 5 * HOUR + 30 * 60_000, policy, window_ms=2 * HOUR)
    # Then 0h-3h are older than the window (skipped under every policy); 4h and 5h are in it
    assert list(plan.create) == [h * HOUR for h in created]
    assert plan.skipped == skipped and plan.skipped_from == 0
    assert plan.cursor == 6 * HOUR


def test_skip_drops_several_due_but_creates_a_single_late_one():
    hourly = Schedule(EveryPattern(parse_duration("PT1H"), 0), 0)
    # two due within the window after the older ones are dropped: skip drops them too
    plan = plan_pass(hourly, 0, 3 * HOUR + 1, "skip", window_ms=2 * HOUR)
    assert plan.create == () and plan.skipped == 4 and plan.cursor == 4 * HOUR
    # one due: created, however late within the window
    late = plan_pass(hourly, 3 * HOUR, 4 * HOUR - 1, "skip", window_ms=2 * HOUR)
    assert late.create == (3 * HOUR,) and late.skipped == 0 and late.cursor == 4 * HOUR


def test_max_occurrences_counts_created_ones_and_ends():
    plan = plan_pass(NOON_DAILY, W0 + 12 * HOUR, W0 + 30 * DAY, "all", created=1, max_occurrences=3)
    assert plan.create == (W0 + 12 * HOUR, W0 + 36 * HOUR)
    assert plan.cursor is None and plan.ended == "maxOccurrences"


def test_end_at_ends_after_its_last_occurrence():
    ending = Schedule(NOON_DAILY.pattern, NOON_DAILY.start, W0 + 5 * DAY + 12 * HOUR)
    plan = plan_pass(ending, W0 + 12 * HOUR, W0 + 30 * DAY, "all")
    assert len(plan.create) == 6 and plan.cursor is None and plan.ended == "endAt"
    latest = plan_pass(ending, W0 + 12 * HOUR, W0 + 30 * DAY, "latest")
    assert latest.create == (W0 + 5 * DAY + 12 * HOUR,) and latest.ended == "endAt"


def test_a_cursor_ahead_of_the_clock_waits():
    plan = plan_pass(NOON_DAILY, W0 + 12 * HOUR, W0, "all")
    assert plan.create == () and plan.cursor == W0 + 12 * HOUR and not plan.more
