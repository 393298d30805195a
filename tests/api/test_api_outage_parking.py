"""The pieces that make jobs wait out an API outage: the breaker's refusal and its spread,
the parked job's delay, and the ``api`` health component read from every process's report."""

import json
import random
import time

import pytest

from scheduler_service.api import get_api_client
from scheduler_service.api.breaker import ApiCircuitBreaker
from scheduler_service.api.health import api_check
from scheduler_service.errors import CircuitOpen, Transient
from scheduler_service.lifecycle import MIN_CIRCUIT_WAIT_MS, JobRecords
from scheduler_service.metrics import processes_key
from scheduler_service.recorder import get_recorder


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def opened(clock):
    breaker = ApiCircuitBreaker(1, 20.0, clock=clock, trial_wait_s=2.0)
    breaker.record(Transient("down", operation="Op"), breaker.admit("Op"))
    return breaker


def test_refusal_tells_what_a_call_would_meet_without_taking_the_trial():
    clock = Clock()
    breaker = ApiCircuitBreaker(1, 20.0, clock=clock, trial_wait_s=2.0)
    assert breaker.refusal() is None                      # closed
    breaker = opened(clock)
    clock.now += 5
    refused = breaker.refusal("Op")
    assert isinstance(refused, CircuitOpen)
    assert refused.retry_after_s == pytest.approx(15.0) and refused.spread_s == pytest.approx(5.0)
    clock.now += 15                                      # half-open, no trial yet
    assert breaker.refusal() is None
    assert breaker.admit("Op") is True                    # refusal() did not take the trial
    refused = breaker.refusal()
    assert refused.retry_after_s == 2.0                   # the trial is running


def test_a_parked_job_waits_for_the_trial_plus_a_share_of_the_spread(redis_client):
    records = JobRecords.__new__(JobRecords)
    records.rng = random.Random(7)
    circuit = CircuitOpen("open", retry_after_s=10.0, spread_s=4.0)
    delays = [records.circuit_delay_ms(circuit) for _ in range(500)]
    assert all(10_000 <= d <= 14_000 for d in delays)
    assert max(delays) - min(delays) > 3_000              # spread, not one instant
    assert records.circuit_delay_ms(CircuitOpen("x", retry_after_s=0.01)) == MIN_CIRCUIT_WAIT_MS


def test_health_reports_the_worst_breaker_any_live_process_reported(services):
    get_api_client(services)
    key = processes_key(f"{services.settings.redis_namespace}:")
    now = int(time.time() * 1000)
    # Given this process's breaker closed and another process reporting it open
    services.redis.hset(key, "worker-1", json.dumps({"breaker": 2, "seen": now}))
    services.redis.hset(key, get_recorder(services).identity, json.dumps({"breaker": 2, "seen": now}))
    status = api_check(services)
    # Then the component is down, the stale report of this process replaced by its live state
    assert status.status == "down"
    assert status.details["circuit"] == "open" and status.details["openProcesses"] == 1
    assert status.details["processes"] == 2
    # When the other reports half-open, then closed, or its report is older than 30 s
    services.redis.hset(key, "worker-1", json.dumps({"breaker": 1, "seen": now}))
    assert api_check(services).status == "degraded"
    services.redis.hset(key, "worker-1", json.dumps({"breaker": 2, "seen": now - 60_000}))
    status = api_check(services)
    assert status.status == "up" and status.details["processes"] == 1
