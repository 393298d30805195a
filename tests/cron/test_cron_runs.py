"""One cron replica in this process, on a real Redis with a real APScheduler: what a tick does.

Where a test is about which tick is due, the replica runs on a clock the test holds; the
real scheduler still wakes it, on sweeps that tick every second or not at all meanwhile.
"""

import logging
from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.cron.expr import (
    fire_times_between, from_ms, iso_seconds, latest_fire_time, parse_cron, to_ms,
)
from scheduler_service.cron.process import CronProcess
from scheduler_service.cron.schedules import ScheduleStore
from scheduler_service.jobstore import iso_ms
from scheduler_service.web import create_app
from helpers import wait_for

UTC = timezone.utc
AUTH = {"Authorization": "Bearer dev-token"}


class HeldClock:
    """A wall clock in epoch ms that stands still until the test moves it."""

    def __init__(self, at: datetime):
        self.ms = to_ms(at)

    def __call__(self) -> int:
        return self.ms

    def now(self) -> datetime:
        return from_ms(self.ms)

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def quiet_day() -> datetime:
    """Midnight (UTC) 100 days from today: a cron bound to that date never fires on the
    real clock during a test, so every tick a replica sees is one the held clock made due."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=100)


@pytest.fixture
def cron_services(make_services):
    """``make(**env)``: services whose settings carry ``env`` (a 2 s leader TTL unless it says
    otherwise); keys removed afterwards."""
    return lambda **env: make_services(**{"CRON_LEADER_TTL_S": 2, **env})


@pytest.fixture
def replica():
    started = []

    def start(services, clock=None):
        process = CronProcess(services, **({"clock": clock} if clock else {})).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def store_of(services, clock=None):
    return ScheduleStore(services.redis, services.settings.redis_namespace, services.registry,
                         services.settings, **({"clock": clock} if clock else {}))


def jobs_of(services, job_type):
    """The jobs of a type, each once: the listing pages by offset, so a job created while
    it reads can show an older one twice."""
    items, _ = services.jobs.list(job_type=job_type, limit=500)
    return list({job["id"]: job for job in items}.values())


def test_overlap_skip_waits_for_the_previous_ticks_job_and_allow_does_not(cron_services, replica):
    services = cron_services(CRON_SAMPLE_TICK="* * * * * *")
    store = store_of(services)
    replica(services)
    # Given the first tick enqueued a job that nobody runs (no worker here)
    first = wait_for(lambda: jobs_of(services, "SAMPLE_ECHO"), timeout=20, message="a first tick")[0]
    assert first["idempotencyKey"].startswith("sweep:sample-tick:")
    # Then the next ticks are skipped, and the last run says why
    last = wait_for(lambda: (r := store.last_run("sample-tick")) and r["outcome"] == "skipped" and r,
                    timeout=20, message="a skipped tick")
    assert first["id"] in last["detail"] and "skip" in last["detail"] and last["tick"]
    assert len(jobs_of(services, "SAMPLE_ECHO")) == 1
    assert store.stats()[("sample-tick", "skipped")] >= 1
    # When the policy becomes allow, the next tick enqueues although the first job still waits
    store.update("sample-tick", actor="test", overlap="allow")
    wait_for(lambda: len(jobs_of(services, "SAMPLE_ECHO")) >= 2, timeout=20, message="a second job")
    assert services.jobs.get(first["id"])["state"] == "queued"


def test_a_failing_sweep_is_logged_counted_alerted_and_never_stops_the_others(cron_services, replica,
                                                                            caplog):
    services = cron_services(CRON_SAMPLE_BROKEN="* * * * * *", CRON_SAMPLE_PING="* * * * * *")
    store = store_of(services)
    store.update("sample-ping", actor="test", overlap="allow")
    caplog.set_level(logging.INFO, logger="scheduler_service.cron")
    replica(services)
    # When the broken sweep fails on tick after tick
    wait_for(lambda: store.stats().get(("sample-broken", "failed"), 0) >= 3, timeout=30,
             message="three failed runs")
    # Then the other sweep kept enqueuing all along
    wait_for(lambda: len(jobs_of(services, "PING")) >= 3, timeout=30, message="three pings")
    last = store.last_run("sample-broken")
    assert last["outcome"] == "failed" and "InvalidPayload" in last["error"] and last["tick"]
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "cron_sweep_failed"]
    assert alerts and alerts[0].levelno == logging.ERROR and alerts[0].sweep == "sample-broken"
    # and /metrics counts the failures, /health shows this replica leading
    client = create_app(services=services).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    failures = [line for line in text.splitlines()
                if line.startswith('scheduler_cron_sweep_failures_total{sweep="sample-broken"}')]
    assert failures and float(failures[0].split()[-1]) >= 3
    assert 'scheduler_cron_sweep_runs_total{outcome="enqueued",sweep="sample-ping"}' in text
    assert "scheduler_cron_has_leader 1.0" in text
    cron = client.get("/health").get_json()["components"]["cron"]
    assert cron["status"] == "up" and cron["details"]["leader"] in text


def test_a_new_leader_fires_the_tick_nobody_enqueued_and_logs_the_ones_dropped(cron_services, replica,
                                                                              caplog):
    # Given a replica's clock held at 12:00:30 of a day on which sample-ping ticks every minute
    day = quiet_day()
    cron = f"* * {day.day} {day.month} *"
    clock = HeldClock(day + timedelta(hours=12, seconds=30))
    services = cron_services(CRON_MISFIRE_GRACE_S=120, CRON_SAMPLE_PING=cron, CRON_LEADER_TTL_S=60)
    store = store_of(services, clock)
    trigger = parse_cron(cron)
    due = latest_fire_time(trigger, clock.now())
    assert due == day + timedelta(hours=12)
    # Given the last leader enqueued the tick three minutes before the latest one, then died
    assert store.advance_tick("sample-ping", to_ms(due - timedelta(minutes=3)))
    caplog.set_level(logging.INFO, logger="scheduler_service.cron")
    # When a replica becomes leader
    replica(services, clock)
    # Then it enqueues the latest tick, once, and counts the two it had to drop
    key = f"sweep:sample-ping:{iso_seconds(due)}"
    job = wait_for(lambda: [j for j in jobs_of(services, "PING") if j["idempotencyKey"] == key],
                   timeout=20, message="the caught-up tick")[0]
    wait_for(lambda: store.last_run("sample-ping") is not None, timeout=10, message="a recorded run")
    last = store.last_run("sample-ping")
    assert last["trigger"] == "catch-up" and last["jobId"] == job["id"]
    assert last["start"] == iso_ms(clock()) and last["tick"] == iso_ms(to_ms(due))
    assert len(jobs_of(services, "PING")) == 1
    dropped = fire_times_between(trigger, due - timedelta(minutes=3), due - timedelta(seconds=1))
    assert len(dropped) == 2 and store.stats()[("sample-ping", "missed")] == 2
    assert any("coalesced" in r.getMessage() and r.sweep == "sample-ping" for r in caplog.records)


def test_a_tick_older_than_the_grace_period_is_recorded_as_missed_not_run(cron_services, replica):
    # Given a yearly sweep whose latest tick is twelve hours behind the replica's clock
    day = quiet_day()
    cron = f"0 0 {day.day} {day.month} *"
    clock = HeldClock(day + timedelta(hours=12))
    services = cron_services(CRON_SAMPLE_TICK=cron, CRON_MISFIRE_GRACE_S=60, CRON_LEADER_TTL_S=60)
    store = store_of(services, clock)
    trigger = parse_cron(cron)
    due = latest_fire_time(trigger, clock.now())
    assert due == day
    # and the tick before it was enqueued
    store.advance_tick("sample-tick", to_ms(latest_fire_time(trigger, due - timedelta(days=1))))
    replica(services, clock)
    last = wait_for(lambda: store.last_run("sample-tick"), timeout=20, message="the missed tick")
    assert last["outcome"] == "missed" and last["tick"] == iso_ms(to_ms(due))
    assert "grace" in last["detail"]
    assert store.run_info("sample-tick")[0] == to_ms(due)
    assert jobs_of(services, "SAMPLE_ECHO") == []


def test_a_standby_replica_never_fires(cron_services, replica):
    services = cron_services(CRON_SAMPLE_PING="* * * * * *", CRON_LEADER_TTL_S=60)
    clock = HeldClock(datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC))
    store = store_of(services, clock)
    # Given another replica holds the lock, and this one has sought it too
    services.redis.set(store.leader_key, "someone-else", px=60_000)
    process = replica(services, clock)
    process.elector.step()
    # When three ticks fall due
    for _ in range(3):
        clock.advance(1)
        assert process.fire("sample-ping") is None
    # Then it fired none of them
    assert not process.is_leader()
    assert jobs_of(services, "PING") == [] and store.last_run("sample-ping") is None
    replicas = store.replicas(60_000)
    assert replicas[process.identity]["leader"] is False
    # When the lock is free, the same replica leads and fires the tick its clock is at
    services.redis.delete(store.leader_key)
    process.elector.step()
    assert process.is_leader()
    process.fire("sample-ping")  # or the real scheduler's per-second tick fired it first
    (job,) = jobs_of(services, "PING")
    assert job["idempotencyKey"] == f"sweep:sample-ping:{iso_seconds(clock.now())}"
