"""The circuit breaker's state machine, against an injected clock."""

import pytest
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker

from scheduler_service.api.breaker import ApiCircuitBreaker
from scheduler_service.errors import CircuitOpen, Conflict, NotFound, Transient


class FakeClock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


def transient():
    return Transient("boom", operation="Op", code="TIMEOUT")


def fail(breaker, error):
    trial = breaker.admit("Op")
    breaker.record(error, trial)
    return trial


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return ApiCircuitBreaker(3, 10.0, clock=clock, trial_wait_s=2.0)


def test_it_is_the_circuitbreaker_package_breaker(breaker):
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.state == STATE_CLOSED and breaker.state_value == 0


def test_it_opens_after_threshold_consecutive_transient_failures(breaker):
    fail(breaker, transient())
    fail(breaker, transient())
    assert breaker.state == STATE_CLOSED
    fail(breaker, transient())
    assert breaker.state == STATE_OPEN and breaker.state_value == 2
    assert breaker.times_opened == 1


def test_a_permanent_answer_or_a_success_resets_the_count(breaker):
    fail(breaker, transient())
    fail(breaker, transient())
    fail(breaker, NotFound("gone", operation="Op", code="NOT_FOUND"))
    assert breaker.failure_count == 0
    fail(breaker, transient())
    fail(breaker, transient())
    fail(breaker, None)
    fail(breaker, transient())
    fail(breaker, Conflict("stale", operation="Op", code="CONFLICT"))
    assert breaker.state == STATE_CLOSED and breaker.failure_count == 0


def test_an_unrelated_exception_leaves_the_state_alone(breaker):
    fail(breaker, transient())
    fail(breaker, KeyboardInterrupt())
    fail(breaker, RuntimeError("a bug"))
    assert breaker.failure_count == 1


def test_while_open_calls_fail_at_once_with_the_time_left(breaker, clock):
    for _ in range(3):
        fail(breaker, transient())
    clock.now += 4
    with pytest.raises(CircuitOpen) as caught:
        breaker.admit("GetEffect")
    assert caught.value.retry_after_s == pytest.approx(6.0)
    assert caught.value.operation == "GetEffect"
    assert "boom" in str(caught.value)


def test_after_the_duration_exactly_one_trial_goes_through(breaker, clock):
    for _ in range(3):
        fail(breaker, transient())
    clock.now += 10
    assert breaker.state == STATE_HALF_OPEN and breaker.state_value == 1
    assert breaker.admit("Op") is True
    with pytest.raises(CircuitOpen) as caught:
        breaker.admit("Op")
    assert caught.value.retry_after_s == 2.0


def test_a_failed_trial_opens_it_again_for_a_full_duration(breaker, clock):
    for _ in range(3):
        fail(breaker, transient())
    clock.now += 10
    assert fail(breaker, transient()) is True
    assert breaker.state == STATE_OPEN and breaker.times_opened == 2
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        breaker.admit("Op")
    clock.now += 0.1
    assert breaker.state == STATE_HALF_OPEN


def test_a_successful_trial_closes_it(breaker, clock):
    for _ in range(3):
        fail(breaker, transient())
    clock.now += 10
    assert fail(breaker, None) is True
    assert breaker.state == STATE_CLOSED and breaker.failure_count == 0
    assert breaker.admit("Op") is False


def test_a_trial_interrupted_by_something_else_frees_the_slot_for_the_next_caller(breaker, clock):
    for _ in range(3):
        fail(breaker, transient())
    clock.now += 10
    assert fail(breaker, RuntimeError("time limit")) is True
    assert breaker.state == STATE_HALF_OPEN
    assert breaker.admit("Op") is True


def test_run_records_the_outcome_and_passes_the_trial_flag(breaker, clock):
    seen = []

    def failing(trial):
        seen.append(trial)
        raise transient()

    for _ in range(3):
        with pytest.raises(Transient):
            breaker.run("Op", failing)
    with pytest.raises(CircuitOpen):
        breaker.run("Op", failing)
    assert seen == [False, False, False]
    clock.now += 10
    assert breaker.run("Op", lambda trial: ("ok", trial)) == ("ok", True)
    assert breaker.state == STATE_CLOSED
