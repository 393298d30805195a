"""The token bucket, against an injected clock (no sleeping)."""

import threading

import pytest

from scheduler_service.api.ratelimit import RateLimiter


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_calls_within_the_burst_do_not_wait():
    clock = FakeClock()
    limiter = RateLimiter(20, burst=3, clock=clock, sleep=clock.sleep)
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_a_call_beyond_the_burst_waits_for_the_next_token_and_reservations_queue_up():
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=clock.sleep)
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.1)
    assert limiter.reserve() == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.reserve() == pytest.approx(0.1)


def test_the_long_run_rate_never_exceeds_the_limit():
    # Given a limit of 50/s and a caller that never stops
    clock = FakeClock()
    limiter = RateLimiter(50, clock=clock, sleep=clock.sleep)
    start = clock.now
    calls = 0
    # When it calls for 10 simulated seconds
    while clock.now - start < 10:
        limiter.acquire()
        calls += 1
    # Then it made 500 calls plus at most the burst
    assert 500 <= calls <= 500 + limiter.burst + 1


def test_tokens_saved_during_a_quiet_spell_are_capped_at_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(100, burst=5, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    waits = [limiter.reserve() for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] > 0 and waits[6] > waits[5]


def test_the_default_burst_is_a_tenth_of_a_second_at_least_one():
    assert RateLimiter(50).burst == 5
    assert RateLimiter(3).burst == 1


def test_a_rate_of_zero_is_refused_because_zero_means_no_limiter():
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_threads_share_one_bucket():
    # Given one limiter at 10/s with a frozen clock
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=lambda s: None)
    waits = []
    lock = threading.Lock()

    def take():
        for _ in range(25):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the 100 reservations got 100 distinct slots, 0.1 s apart
    assert sorted(round(w, 6) for w in waits) == [round(i * 0.1, 6) for i in range(100)]
