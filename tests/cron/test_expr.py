"""Cron expressions: parsing, the crontab weekday, and fire-time arithmetic (pure)."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.cron.expr import (
    InvalidCron,
    cron_error,
    fire_times_between,
    iso_seconds,
    latest_fire_time,
    next_fire_times,
    parse_cron,
    weekday_field,
)

UTC = timezone.utc


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("expr, after, expected", [
    ("*/5 * * * *", "2026-03-01T12:01:30Z", ["2026-03-01T12:05:00Z", "2026-03-01T12:10:00Z"]),
    ("0 * * * *", "2026-03-01T12:00:00Z", ["2026-03-01T13:00:00Z", "2026-03-01T14:00:00Z"]),
    ("* * * * * *", "2026-03-01T12:00:00.500000Z", ["2026-03-01T12:00:01Z", "2026-03-01T12:00:02Z"]),
    ("*/10 * * * * *", "2026-03-01T12:00:05Z", ["2026-03-01T12:00:10Z", "2026-03-01T12:00:20Z"]),
    ("30 2 * * *", "2026-03-01T12:00:00Z", ["2026-03-02T02:30:00Z", "2026-03-03T02:30:00Z"]),
    ("@hourly", "2026-03-01T12:00:01Z", ["2026-03-01T13:00:00Z", "2026-03-01T14:00:00Z"]),
    ("@daily", "2026-03-01T12:00:00Z", ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]),
    ("0 0 1 jan *", "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
])
def test_next_fire_times_are_strictly_after_and_in_utc(expr, after, expected):
    times = next_fire_times(parse_cron(expr), at(after), 2)
    assert [iso_seconds(t) for t in times] == expected
    assert all(t.utcoffset() == timedelta(0) for t in times)


@pytest.mark.parametrize("expr, day", [
    # 2026-03-01 is a Sunday; crontab numbers Sunday 0 (and 7), Monday 1.
    ("0 0 * * 0", "2026-03-01"),
    ("0 0 * * 7", "2026-03-01"),
    ("0 0 * * sun", "2026-03-01"),
    ("0 0 * * 1", "2026-03-02"),
    ("0 0 * * MON", "2026-03-02"),
    ("0 0 * * 6", "2026-03-07"),
    ("0 0 * * 1-5", "2026-03-02"),
    ("0 0 * * 5-7", "2026-03-01"),
    ("@weekly", "2026-03-01"),
])
def test_weekdays_follow_crontab_numbering_not_apschedulers(expr, day):
    first = next_fire_times(parse_cron(expr), at("2026-02-28T23:59:59Z"), 1)[0]
    assert first.date().isoformat() == day


@pytest.mark.parametrize("field, expected", [
    ("*", "*"), ("0-6", "*"), ("1-5", "mon,tue,wed,thu,fri"), ("0,6", "sat,sun"),
    ("*/2", "tue,thu,sat,sun"), ("1/3", "mon,thu"), ("sat,sun", "sat,sun"), ("7", "sun"),
])
def test_weekday_field_translation(field, expected):
    assert weekday_field(field) == expected


@pytest.mark.parametrize("expr, words", [
    ("61 * * * *", ["minute field '61'", "59"]),
    ("* 24 * * *", ["hour field '24'"]),
    ("* * 0 * *", ["day-of-month field '0'"]),
    ("* * * 13 *", ["month field '13'"]),
    ("* * * * 8", ["weekday 8"]),
    ("* * * * funday", ["weekday 'funday'"]),
    ("* * * * 5-1", ["runs backwards"]),
    ("61 * * * * *", ["second field '61'"]),
    ("* * *", ["3 field(s)", "expected 5"]),
    ("", ["empty"]),
    ("@fortnightly", ["unknown macro"]),
    ("0 0 30 2 *", ["never fires"]),
])
def test_invalid_expressions_say_which_field_and_why(expr, words):
    with pytest.raises(InvalidCron) as e:
        parse_cron(expr)
    for word in words:
        assert word in str(e.value)
    assert cron_error(expr) == str(e.value)


def test_valid_expression_has_no_error():
    assert cron_error("*/5 * * * *") is None


@pytest.mark.parametrize("expr, moment, expected", [
    ("*/5 * * * *", "2026-03-01T12:07:00Z", "2026-03-01T12:05:00Z"),
    ("*/5 * * * *", "2026-03-01T12:05:00Z", "2026-03-01T12:05:00Z"),  # inclusive
    ("* * * * * *", "2026-03-01T12:00:03.900000Z", "2026-03-01T12:00:03Z"),
    ("0 0 1 1 *", "2026-03-01T12:00:00Z", "2026-01-01T00:00:00Z"),
    ("0 0 29 2 *", "2026-03-01T12:00:00Z", "2024-02-29T00:00:00Z"),
])
def test_latest_fire_time_at_or_before(expr, moment, expected):
    assert iso_seconds(latest_fire_time(parse_cron(expr), at(moment))) == expected


def test_fire_times_between_excludes_start_includes_end_and_stops_at_limit():
    trigger = parse_cron("*/5 * * * *")
    times = fire_times_between(trigger, at("2026-03-01T12:00:00Z"), at("2026-03-01T12:20:00Z"))
    assert [iso_seconds(t) for t in times] == [
        "2026-03-01T12:05:00Z", "2026-03-01T12:10:00Z", "2026-03-01T12:15:00Z", "2026-03-01T12:20:00Z"]
    assert len(fire_times_between(trigger, at("2026-03-01T00:00:00Z"), at("2026-03-02T00:00:00Z"),
                                  limit=7)) == 7
