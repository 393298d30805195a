"""How the console shows times and durations: pure functions, ``now`` passed in."""

import pytest

from scheduler_service.web.console.present import relative, run_duration_ms, short_time, span

NOW = 1_772_366_400_000  # 2026-03-01T12:00:00Z


@pytest.mark.parametrize("ms, text", [
    (0, "0 ms"), (4.25, "4.2 ms"), (18, "18 ms"), (999, "999 ms"), (1000, "1.0 s"), (4_200, "4.2 s"),
    (60_000, "1 min"), (61_000, "1 min 1 s"), (3_600_000 + 12 * 60_000 + 5_000, "1 h 12 min"),
    (2 * 86_400_000 + 3_600_000, "2 d 1 h"), (86_400_000 + 30_000, "1 d"), (None, ""),
])
def test_span_keeps_the_two_largest_units(ms, text):
    assert span(ms) == text


@pytest.mark.parametrize("value, text", [
    (NOW + 300_000, "in 5 min"), (NOW - 90_000, "1 min 30 s ago"), (NOW + 400, "now"),
    ("2026-03-01T13:00:00.000Z", "in 1 h"), ("2026-03-01T11:59:58Z", "2.0 s ago"),
    (None, ""), ("invalid time: x", ""),
])
def test_relative_reads_against_the_given_now(value, text):
    assert relative(value, NOW) == text


def test_short_time_drops_the_t_and_the_milliseconds():
    assert short_time("2026-03-01T12:00:00.123Z") == "2026-03-01 12:00:00Z"
    assert short_time(NOW) == "2026-03-01 12:00:00Z"
    assert short_time("invalid time: 99") == "invalid time: 99"


def test_run_duration_is_that_of_the_last_finished_attempt():
    history = [
        {"at": "2026-03-01T12:00:00.000Z", "from": None, "to": "queued"},
        {"at": "2026-03-01T12:00:01.000Z", "from": "queued", "to": "running"},
        {"at": "2026-03-01T12:00:03.500Z", "from": "running", "to": "failed"},
        {"at": "2026-03-01T12:00:08.000Z", "from": "failed", "to": "running"},
        {"at": "2026-03-01T12:00:08.250Z", "from": "running", "to": "succeeded"},
    ]
    assert run_duration_ms(history) == 250
    assert run_duration_ms(history[:2]) is None
    assert run_duration_ms(history[:3]) == 2500
