"""The timer store on a real Redis: exactly-once promotion, batching, clocks, the pump thread."""

import threading
import time

from scheduler_service.dispatch import build_job
from scheduler_service.jobstore import now_ms
from scheduler_service.wire import queue_stats
from scheduler_service.timers import WallTimerPump, pump_wall, pump_world
from helpers import wait_for


def schedule(services, n, due, campaign="c1", world=False):
    ids = []
    for _ in range(n):
        job = build_job(services.registry, "PING", campaign)
        kwargs = {"run_at_world_ms": due} if world else {"run_at_ms": due}
        ids.append(services.jobs.create(job, **kwargs)[0]["id"])
    return ids


def ready(services):
    return queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)["totals"]["ready"]


def test_many_concurrent_pumps_promote_each_timer_exactly_once(services):
    # Given 3,000 timers due in a minute
    due = now_ms() + 60_000
    ids = schedule(services, 3000, due)
    assert ready(services) == 0
    # When four pumps race over them in small batches, as if the minute had passed
    counts = []
    go = threading.Event()

    def pump():  # like the pump thread: go on until nothing is due
        go.wait()
        moved = 0
        while services.redis.zcard(services.jobs.wall_timers):
            moved += pump_wall(services.jobs, batch=50, now=due)
        counts.append(moved)

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    # Then every job was enqueued once, in total
    assert sum(counts) == 3000
    assert ready(services) == 3000
    assert services.redis.zcard(services.jobs.wall_timers) == 0
    for job_id in ids[:50]:
        moves = [h for h in services.jobs.history(job_id) if h["to"] == "queued"]
        assert len(moves) == 1


def test_pump_leaves_future_timers_and_cancelled_jobs_alone(services):
    now = now_ms()
    past = schedule(services, 3, now + 100)
    future = schedule(services, 2, now + 3_600_000)
    services.jobs.transition(past[0], ("scheduled",), "cancelled", "test")
    time.sleep(0.15)
    assert pump_wall(services.jobs) == 2
    assert services.redis.zcard(services.jobs.wall_timers) == 2
    assert {services.jobs.get(i)["state"] for i in future} == {"scheduled"}


def test_world_timers_follow_each_campaigns_own_clock(services):
    a = schedule(services, 2, 1_000_000, campaign="A", world=True)
    b = schedule(services, 1, 1_000_000, campaign="B", world=True)
    assert pump_world(services.jobs, "A", 999_999) == 0
    assert pump_world(services.jobs, "A", 1_000_000) == 2
    assert services.jobs.get(b[0])["state"] == "scheduled"
    assert {services.jobs.get(i)["state"] for i in a} == {"queued"}
    # the clock never moves backwards in memory of the store
    pump_world(services.jobs, "A", 5)
    late = schedule(services, 1, 500_000, campaign="A", world=True)
    assert services.jobs.get(late[0])["state"] == "queued"


def test_pump_thread_promotes_as_timers_fall_due(services):
    pump = WallTimerPump(services.jobs, interval_ms=20).start()
    try:
        ids = schedule(services, 5, now_ms() + 200)
        wait_for(lambda: all(services.jobs.get(i)["state"] == "queued" for i in ids), timeout=5,
                 message="promotion")
        assert pump.promoted == 5
    finally:
        pump.stop()


def test_pump_survives_redis_errors(services, monkeypatch):
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise ConnectionError("redis is down")

    pump = WallTimerPump(services.jobs, interval_ms=10)
    monkeypatch.setattr(services.jobs, "pump", broken)
    pump.start()
    wait_for(lambda: len(calls) >= 2, timeout=5, message="a retry after the failure")
    monkeypatch.undo()
    ids = schedule(services, 1, now_ms())
    wait_for(lambda: services.jobs.get(ids[0])["state"] == "queued", timeout=10, message="recovery")
    pump.stop()


def test_expired_records_leave_the_listing_indexes(services):
    ids = schedule(services, 3, now_ms() + 3_600_000)
    for job_id in ids[:2]:
        services.jobs.transition(job_id, ("scheduled",), "cancelled", "test")
        services.redis.delete(services.jobs.key("job", job_id))  # as if retention had passed
    # the index entries are older than the retention once the clock is far enough ahead
    services.jobs.retention_s = -10
    # jobs:all, jobs:state:cancelled, jobs:type:PING and jobs:campaign:..., twice
    assert services.jobs.prune_indexes() == 8
    assert [j["id"] for j in services.jobs.list()[0]] == [ids[2]]
