"""The metrics kept in Redis: written by the worker's and the pump's own scripts and by each
process's recorder, read by any web process's /metrics (real Redis, real worker)."""

from __future__ import annotations

import redis as redis_lib

from helpers import wait_for
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import TERMINAL
from scheduler_service.metrics import (
    API_CALLS, API_DURATION, JOB_DURATION, JOB_DURATION_BUCKETS, Attempt, bucket_index,
    histogram_series, job_deltas, read_families, sweep_failed,
)
from scheduler_service.recorder import Recorder
from scheduler_service.timers import pump_wall, pump_world
from scheduler_service.web import create_app
from prometheus_client.parser import text_string_to_metric_families


def scrape(services) -> dict:
    text = create_app(services=services).test_client().get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def run_all(services, jobs):
    ids = [send_job(services, *job)[0]["id"] for job in jobs]
    wait_for(lambda: all((services.jobs.get(i) or {}).get("state") in TERMINAL for i in ids),
             timeout=30, message="every job to finish")
    return ids


def test_the_worker_counts_attempts_retries_dead_letters_and_durations_by_type(services, worker):
    run_all(services, [("SAMPLE_ECHO", "c1", {"text": "a"})] * 3
            + [("SAMPLE_FLAKY", "c1", {"failures": 1}), ("SAMPLE_REFUSE", "c1")])
    m = scrape(services)
    attempts = "scheduler_job_attempts_total"
    assert sample(m, attempts, type="SAMPLE_ECHO", outcome="succeeded") == 3
    assert sample(m, attempts, type="SAMPLE_FLAKY", outcome="failed") == 1
    assert sample(m, attempts, type="SAMPLE_FLAKY", outcome="succeeded") == 1
    assert sample(m, attempts, type="SAMPLE_REFUSE", outcome="dead") == 1
    assert sample(m, "scheduler_job_retries_total", type="SAMPLE_FLAKY") == 1
    assert sample(m, "scheduler_job_retries_total", type="SAMPLE_ECHO") == 0  # a series from the start
    assert sample(m, "scheduler_job_dead_letters_total", type="SAMPLE_REFUSE") == 1
    # Every attempt is one observation of its type's duration histogram
    for job_type, n in (("SAMPLE_ECHO", 3), ("SAMPLE_FLAKY", 2), ("SAMPLE_REFUSE", 1)):
        assert sample(m, "scheduler_job_duration_seconds_count", type=job_type) == n
        assert sample(m, "scheduler_job_duration_seconds_bucket", type=job_type, le="+Inf") == n
        assert 0 < sample(m, "scheduler_job_duration_seconds_sum", type=job_type) < 5 * n
        counts = [sample(m, "scheduler_job_duration_seconds_bucket", type=job_type, le=repr(b))
                  for b in JOB_DURATION_BUCKETS]
        assert counts == sorted(counts)


def test_the_pump_counts_promotions_and_the_lateness_of_wall_timers(services):
    store = services.jobs
    base = store.clock()
    # Given a job due in 10 s, and a clock at 11.5 s
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "x"}, run_at_ms=base + 10_000)
    store.clock = lambda: base + 11_500
    # When the pump promotes it
    assert pump_wall(store) == 1
    # Then it was 1.5 s late
    m = scrape(services)
    lateness = "scheduler_timer_promotion_lateness_seconds"
    assert sample(m, f"{lateness}_count", clock="wall") == 1
    assert sample(m, f"{lateness}_sum", clock="wall") == 1.5
    assert sample(m, f"{lateness}_bucket", clock="wall", le="1.0") == 0
    assert sample(m, f"{lateness}_bucket", clock="wall", le="2.5") == 1
    assert sample(m, "scheduler_timer_promotions_total", clock="wall") == 1
    # A world timer counts as a promotion of the world clock, with no wall-clock lateness
    send_job(services, "SAMPLE_ECHO", "cw", {"text": "x"}, run_at_world_ms=1000)
    assert sample(scrape(services), "scheduler_timers_pending", clock="world") == 1
    assert pump_world(store, "cw", 5000) == 1
    m = scrape(services)
    assert sample(m, "scheduler_timer_promotions_total", clock="world") == 1
    assert sample(m, f"{lateness}_count", clock="world") is None


def test_timers_pending_overdue_and_per_campaign(services):
    store = services.jobs
    base = store.clock()
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "x"}, run_at_ms=base + 60_000)
    for campaign, n in (("big", 3), ("small", 1)):
        for _ in range(n):
            send_job(services, "SAMPLE_ECHO", campaign, {"text": "x"}, run_at_world_ms=10**12)
    collector_clock = base / 1000 + 90  # 30 s after the wall timer was due
    from scheduler_service.web.metrics import JobsCollector

    families = {f.name: f for f in JobsCollector(services, clock=lambda: collector_clock).collect()}
    values = {(f.name, tuple(s.labels.items())): s.value for f in families.values() for s in f.samples}
    assert values[("scheduler_timers_pending", (("clock", "wall"),))] == 1
    assert values[("scheduler_timers_pending", (("clock", "world"),))] == 4
    assert values[("scheduler_world_timers_pending", (("campaign", "big"),))] == 3
    assert values[("scheduler_world_timers_pending", (("campaign", "small"),))] == 1
    assert 29 <= values[("scheduler_timers_overdue_seconds", (("clock", "wall"),))] <= 31
    assert values[("scheduler_jobs", (("state", "scheduled"),))] == 5


def test_a_sweeps_job_sets_its_success_time_duration_and_failures_in_a_row(services, worker):
    prefix = f"{services.settings.redis_namespace}:"
    # Given a tick of sample-tick that failed in the cron process
    assert sweep_failed(services.redis, prefix, "sample-tick") == 1
    # When a tick's job succeeds (sweep jobs carry the key sweep:<name>:<tick>)
    before = services.jobs.clock() / 1000
    ok = send_job(services, "SAMPLE_ECHO", "sample", {"text": "t"},
                  idempotency_key="sweep:sample-tick:2030-01-01T00:00:00Z")[0]["id"]
    wait_for(lambda: services.jobs.get(ok)["state"] == "succeeded", message="the tick's job")
    m = scrape(services)
    assert sample(m, "scheduler_cron_sweep_last_success_timestamp_seconds",
                  sweep="sample-tick") >= before
    assert 0 <= sample(m, "scheduler_cron_sweep_last_duration_seconds", sweep="sample-tick") < 30
    assert sample(m, "scheduler_cron_sweep_consecutive_failures", sweep="sample-tick") == 0
    # And a tick's job that dies counts as a failure of its sweep
    dead = send_job(services, "SAMPLE_REFUSE", "sample",
                    idempotency_key="sweep:sample-broken:2030-01-01T00:00:00Z")[0]["id"]
    wait_for(lambda: services.jobs.get(dead)["state"] == "dead", message="the tick's job to die")
    assert sample(scrape(services), "scheduler_cron_sweep_consecutive_failures",
                  sweep="sample-broken") == 1


def test_a_batch_of_attempts_costs_one_increment_per_distinct_series():
    attempts = [Attempt(f"j{i}", "PING", "c", "succeeded", 0.001) for i in range(100)]
    deltas = job_deltas(attempts)
    # attempts{PING,succeeded}, one duration bucket; then the duration sum
    assert deltas[0] == 2 and deltas[1 + 3 * 2] == 1
    assert dict(zip(deltas[2:7:3], deltas[3:7:3])) == {"PING|succeeded": 100, "PING|0": 100}
    assert job_deltas([]) == [0, 0]


def test_histogram_series_are_cumulative_and_end_with_inf():
    raw = {"PING|0": "2", "PING|3": "1", f"PING|{len(JOB_DURATION_BUCKETS)}": "1", "PING|sum": "1000.5"}
    ((labels, (buckets, total)),) = histogram_series(JOB_DURATION, raw).items()
    assert labels == ("PING",) and total == 1000.5
    assert buckets[0] == ("0.005", 2) and buckets[3] == ("0.05", 3) and buckets[-1] == ("+Inf", 4)
    assert bucket_index(JOB_DURATION_BUCKETS, 0.005) == 0
    assert bucket_index(JOB_DURATION_BUCKETS, 0.0051) == 1


def test_the_recorder_keeps_what_redis_refused_until_it_answers(services):
    prefix = f"{services.settings.redis_namespace}:"
    dead = redis_lib.Redis(port=free_port(), socket_connect_timeout=0.5)
    recorder = Recorder(dead, prefix)
    recorder.incr(API_CALLS, ("Campaigns", "ok"), 2)
    recorder.observe(API_DURATION, ("Campaigns",), 0.2)
    assert recorder.flush() is False
    recorder.incr(API_CALLS, ("Campaigns", "ok"))
    recorder.redis = services.redis
    assert recorder.flush() is True
    raw = read_families(services.redis, prefix, (API_CALLS, API_DURATION))
    assert raw[API_CALLS.name] == {"Campaigns|ok": "3"}
    assert raw[API_DURATION.name] == {"Campaigns|5": "1", "Campaigns|sum": "0.2"}


def test_breaker_gauges_take_the_worst_live_process(services):
    prefix = f"{services.settings.redis_namespace}:"
    now = services.jobs.clock()
    for state, seen in ((0, now), (2, now), (2, now - 3_600_000)):  # the last one is gone
        recorder = Recorder(services.redis, prefix, clock=lambda seen=seen: seen)
        recorder.breaker_state = lambda state=state: state
        assert recorder.flush()
    m = scrape(services)
    assert sample(m, "scheduler_api_circuit_state") == 2
    assert sample(m, "scheduler_api_circuit_open_processes") == 1
    # the two live ones, and this web process (its /health check built its client)
    assert sample(m, "scheduler_api_client_processes") == 3
