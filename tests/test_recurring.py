"""Recurring jobs on a real Redis with a real worker: both clocks, catch-up, crashes, races.

The wall clock is the job store's clock, moved by the tests; world clocks move by pumping
their timers, as the subscriber does. Nothing sleeps past a boundary: a test waits, with a
deadline, for the recurrence to settle (its timer waiting again, or the recurrence ended).
"""

import logging
import threading

import pytest

from helpers import running_worker, wait_for
from scheduler_service.recurring import service
from scheduler_service.recurring.service import (
    Definition, create, occurrence_job_id, recurring_store, update,
)
from scheduler_service.recurring.tick import repair_ticks, run_pass
from scheduler_service.services import build_services
from scheduler_service.timers import pump_wall, pump_world
from scheduler_service.times import iso_ms, parse_iso_ms

DAY = 86_400_000
HOUR = 3_600_000
W0 = parse_iso_ms("1450-03-01T00:00:00Z")


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def new_recurring(services, now, **spec):
    base = {"type": "SAMPLE_ECHO", "campaignId": "c-world", "payload": {"text": "market day"},
            "priority": 5, "clock": "world", "every": "P1D", "catchUp": "all"}
    fields, created = create(services, {**base, **spec}, now=now)
    assert created
    return fields["id"]


def definition(services, rid) -> Definition:
    return Definition.from_fields(recurring_store(services).get(rid))


def settled(services, rid):
    d = definition(services, rid)
    if d.state != "active":
        return True
    tick = services.jobs.get(d.tick_job)
    return tick is not None and tick["state"] == "scheduled"


def settle(services, *rids, timeout=30):
    for rid in rids:
        wait_for(lambda: settled(services, rid), timeout=timeout, message=f"recurring job {rid} to settle")


def created_times(services, rid):
    return [e["at"] for e in recurring_store(services).history(rid) if e["kind"] == "created"]


def jobs_of(services, job_type="SAMPLE_ECHO"):
    items, _ = services.jobs.list(job_type=job_type, limit=500)
    return items


def advance_world(services, campaign, to):
    pump_world(services.jobs, campaign, to)


@pytest.fixture
def world(services):
    services.jobs.remember_world_time("c-world", W0)
    return "c-world"


# -- both clocks -----------------------------------------------------------------------

def test_interval_on_the_world_clock_fires_each_occurrence_once_with_its_time_in_context(
        services, worker, world, caplog):
    caplog.set_level(logging.INFO, logger="scheduler_service")  # as deployments log
    # Given "market day every 7 days of world time", created at W0 (first one a week later)
    rid = new_recurring(services, W0, type="SAMPLE_OCCURRENCE", every="P7D")
    assert definition(services, rid).cursor == W0 + 7 * DAY
    # When the game master advances the world one day at a time for three weeks
    for day in range(1, 22):
        advance_world(services, world, W0 + day * DAY)
        settle(services, rid)
    # Then exactly three market days happened, at their world times
    assert created_times(services, rid) == [W0 + 7 * DAY, W0 + 14 * DAY, W0 + 21 * DAY]
    jobs = jobs_of(services, "SAMPLE_OCCURRENCE")
    assert len(jobs) == 3
    first = services.jobs.get(occurrence_job_id(rid, W0 + 7 * DAY))
    assert first["idempotencyKey"] == f"recurring:{rid}:1450-03-08T00:00:00.000Z"
    assert first["runAtWorldTime"] == "1450-03-08T00:00:00.000Z"
    # and each job knows the occurrence it stands for
    wait_for(lambda: services.jobs.get(first["id"])["state"] == "succeeded")
    assert services.jobs.get(first["id"])["result"] == {
        "occurrence": {"recurringId": rid, "atMs": W0 + 7 * DAY, "clock": "world"},
        "echo": "market day"}
    assert definition(services, rid).cursor == W0 + 28 * DAY
    # every tick ran once, logging what it created (no attempt failed, on logging either)
    ticks = jobs_of(services, "RECURRING_TICK")
    finished = [t for t in ticks if t["state"] != "scheduled"]
    assert len(finished) == 3  # one per occurrence: a tick waits for its occurrence
    assert all(t["state"] == "succeeded" and t["attempts"] == 1 for t in finished), finished
    assert [r.occurrences_created for r in caplog.records
            if hasattr(r, "occurrences_created")] == [1, 1, 1]


def test_cron_on_a_world_clock_in_the_fifteenth_century(services, worker, world):
    # "the caravan arrives on the 1st of each world month"
    rid = new_recurring(services, W0 + 12 * HOUR, cron="0 0 1 * *", every=None)
    for day in range(10, 110, 10):
        advance_world(services, world, W0 + day * DAY)
        settle(services, rid)
    assert [iso_ms(t) for t in created_times(services, rid)] == [
        "1450-04-01T00:00:00.000Z", "1450-05-01T00:00:00.000Z", "1450-06-01T00:00:00.000Z"]


def test_cron_and_interval_on_the_wall_clock_with_the_clock_passed_in(services, worker):
    # Given a Friday 17:00 on the store's clock, "every real Friday at 18:00" and "hourly"
    clock = Clock(parse_iso_ms("2026-03-06T17:00:00Z"))
    services.jobs.clock = clock
    friday = new_recurring(services, clock(), clock="wall", cron="0 18 * * 5", every=None)
    hourly = new_recurring(services, clock(), clock="wall", every="PT1H")
    # When the clock stops a millisecond before 18:00, nothing is due
    clock.now = parse_iso_ms("2026-03-06T17:59:59.999Z")
    pump_wall(services.jobs)
    assert created_times(services, friday) == created_times(services, hourly) == []
    assert services.jobs.get(definition(services, friday).tick_job)["state"] == "scheduled"
    # At 18:00 both fire once
    clock.now = parse_iso_ms("2026-03-06T18:00:00Z")
    wait_for(lambda: len(created_times(services, hourly)) == len(created_times(services, friday)) == 1)
    settle(services, friday, hourly)
    assert created_times(services, friday) == created_times(services, hourly) == [clock.now]
    assert definition(services, friday).cursor == parse_iso_ms("2026-03-13T18:00:00Z")
    # Two and a half hours later (the pump was away), hourly catches up both it missed
    clock.now = parse_iso_ms("2026-03-06T20:30:00Z")
    wait_for(lambda: len(created_times(services, hourly)) == 3, message="the hourly catch-up")
    settle(services, hourly)
    assert created_times(services, hourly) == [parse_iso_ms(f"2026-03-06T{h}:00:00Z")
                                               for h in (18, 19, 20)]
    assert created_times(services, friday) == [parse_iso_ms("2026-03-06T18:00:00Z")]
    assert definition(services, hourly).cursor == parse_iso_ms("2026-03-06T21:00:00Z")


# -- big jumps of the world clock ------------------------------------------------------

@pytest.mark.parametrize("policy, created, skipped", [
    ("all", 30, 0), ("latest", 1, 29), ("skip", 0, 30)])
def test_a_thirty_day_world_jump_under_each_catch_up_policy(services, worker, world, policy,
                                                            created, skipped):
    # Given a daily occurrence at noon of world time
    rid = new_recurring(services, W0, every="P1D", startAt=W0 + 12 * HOUR, catchUp=policy)
    # When the world jumps 30 days
    advance_world(services, world, W0 + 30 * DAY)
    settle(services, rid)
    # Then the policy decides, and nothing is created twice
    noon = [W0 + 12 * HOUR + k * DAY for k in range(30)]
    expected = {"all": noon, "latest": noon[-1:], "skip": []}[policy]
    assert created_times(services, rid) == expected  # in order
    jobs = jobs_of(services)
    assert sorted(j["runAtWorldTime"] for j in jobs) == [iso_ms(t) for t in expected]
    assert len({j["id"] for j in jobs}) == len(jobs) == created
    d = definition(services, rid)
    assert (d.count, d.skipped, d.cursor) == (created, skipped, W0 + 30 * DAY + 12 * HOUR)
    # And the next day is on time again, whatever the policy
    advance_world(services, world, W0 + 31 * DAY)
    settle(services, rid)
    assert created_times(services, rid)[-1] == W0 + 30 * DAY + 12 * HOUR
    assert len(jobs_of(services)) == created + 1


def test_catch_up_all_is_bounded_per_pass_and_continues(services, make_settings, world):
    limited = build_services(make_settings(RECURRING_MAX_PER_PASS=7))
    try:
        rid = new_recurring(limited, W0, every="P1D", startAt=W0 + 12 * HOUR)
        with running_worker(limited, threads=2):
            advance_world(limited, world, W0 + 30 * DAY)
            settle(limited, rid)
        assert created_times(limited, rid) == [W0 + 12 * HOUR + k * DAY for k in range(30)]
        ticks = [j for j in jobs_of(limited, "RECURRING_TICK") if j["state"] == "succeeded"]
        assert sorted(t["result"]["created"] for t in ticks) == [2, 7, 7, 7, 7]
        assert sum(t["result"]["continues"] for t in ticks) == 4
    finally:
        limited.close()


# -- pause, end, limits ----------------------------------------------------------------

def test_pause_across_an_occurrence_skips_it_and_resume_goes_on(services, worker):
    clock = Clock(parse_iso_ms("2026-03-02T09:30:00Z"))
    services.jobs.clock = clock
    rid = new_recurring(services, clock(), clock="wall", every="PT1H",
                        startAt=parse_iso_ms("2026-03-02T10:00:00Z"))
    clock.now = parse_iso_ms("2026-03-02T10:00:00Z")
    wait_for(lambda: created_times(services, rid) == [clock.now])
    settle(services, rid)
    # When it is paused at 10:30, its timer is cancelled
    clock.now = parse_iso_ms("2026-03-02T10:30:00Z")
    before = definition(services, rid)
    update(services, rid, {"paused": True})
    assert definition(services, rid).state == "paused"
    assert services.jobs.get(before.tick_job)["state"] == "cancelled"
    # and the 11:00 occurrence passes without a job
    clock.now = parse_iso_ms("2026-03-02T11:00:00Z")
    assert pump_wall(services.jobs) == 0
    # When it is resumed at 11:30, it waits for 12:00, noting what the pause skipped
    clock.now = parse_iso_ms("2026-03-02T11:30:00Z")
    update(services, rid, {"paused": False})
    assert definition(services, rid).cursor == parse_iso_ms("2026-03-02T12:00:00Z")
    clock.now = parse_iso_ms("2026-03-02T12:00:00Z")
    wait_for(lambda: len(created_times(services, rid)) == 2)
    settle(services, rid)
    history = recurring_store(services).history(rid)
    assert [(e["kind"], e.get("at") or e.get("from")) for e in history] == [
        ("created", parse_iso_ms("2026-03-02T10:00:00Z")),
        ("skipped", parse_iso_ms("2026-03-02T11:00:00Z")),
        ("created", parse_iso_ms("2026-03-02T12:00:00Z"))]
    assert history[1]["reason"] == "paused" and history[1]["count"] == 1


def test_max_occurrences_and_end_at_end_the_recurrence(services, worker, world):
    capped = new_recurring(services, W0, every="P1D", maxOccurrences=3)
    ending = new_recurring(services, W0, every="P1D", endAt=W0 + 2 * DAY + 1)
    for day in range(1, 6):
        advance_world(services, world, W0 + day * DAY)
        settle(services, capped, ending)
    assert created_times(services, capped) == [W0 + DAY, W0 + 2 * DAY, W0 + 3 * DAY]
    assert created_times(services, ending) == [W0 + DAY, W0 + 2 * DAY]
    for rid, reason in ((capped, "maxOccurrences"), (ending, "endAt")):
        d = definition(services, rid)
        assert (d.state, d.fields["endedReason"], d.cursor, d.tick_job) == ("ended", reason, None, "")
    advance_world(services, world, W0 + 40 * DAY)
    assert len(jobs_of(services)) == 5


# -- crashes and races -----------------------------------------------------------------

def test_a_commit_that_fails_after_the_occurrences_recovers_without_loss_or_double(
        services, worker, world):
    # Given a daily recurrence, and a Redis that fails the record's advance: the occurrences'
    # creates and the next timer's land, then the command that moves the record fails
    # (Redis runs the rest of a transaction when one command fails)
    rid = new_recurring(services, W0, every="P1D", startAt=W0 + 12 * HOUR)
    store = recurring_store(services)
    real_advance = store._advance
    store._advance = services.redis.register_script(
        "return redis.error_reply('simulated failure between the occurrences and the advance')")
    first_tick = definition(services, rid).tick_job
    try:
        # When the world jumps three days, the pass fails and is retried, and fails again
        advance_world(services, world, W0 + 3 * DAY)
        wait_for(lambda: services.jobs.get(first_tick)["attempts"] >= 2, message="retries")
        made = [occurrence_job_id(rid, W0 + 12 * HOUR + k * DAY) for k in range(3)]
        assert all(services.jobs.get(job_id) for job_id in made)  # created, before the crash
        assert created_times(services, rid) == [] and definition(services, rid).seq == 1
        # and the next timer, created too, is released early by a further jump: it finds
        # its record one step behind and tries to complete that step (failing as well)
        early = service.tick_job_id(rid, 2, W0 + 3 * DAY + 12 * HOUR)
        advance_world(services, world, W0 + 10 * DAY)
        wait_for(lambda: services.jobs.get(early)["attempts"] >= 1, message="the early tick")
    finally:
        store._advance = real_advance
    # Then once Redis behaves, the retries complete it: every occurrence once, in order
    wait_for(lambda: len(created_times(services, rid)) == 10, timeout=30)
    settle(services, rid)
    assert created_times(services, rid) == [W0 + 12 * HOUR + k * DAY for k in range(10)]
    history_ids = [e["jobId"] for e in store.history(rid) if e["kind"] == "created"]
    assert history_ids[:3] == made
    assert len(jobs_of(services)) == 10
    assert definition(services, rid).cursor == W0 + 10 * DAY + 12 * HOUR
    ticks = jobs_of(services, "RECURRING_TICK")
    wait_for(lambda: all(services.jobs.get(t["id"])["state"] in ("succeeded", "scheduled")
                         for t in ticks))
    assert sum(services.jobs.get(t["id"])["state"] == "scheduled" for t in ticks) == 1


def test_a_pass_that_dies_before_its_commit_leaves_nothing_and_is_run_again(services, world):
    rid = new_recurring(services, W0, every="P1D", startAt=W0 + 12 * HOUR)
    tick = definition(services, rid).tick_job
    advance_world(services, world, W0 + 2 * DAY)
    store = recurring_store(services)
    real_queue_advance = store.queue_advance

    def crash(*args, **kwargs):
        raise SystemExit("the worker died while preparing the commit")

    store.queue_advance = crash
    with pytest.raises(SystemExit):
        run_pass(services, rid, 1, tick, limit=1000)
    store.queue_advance = real_queue_advance
    assert jobs_of(services) == [] and definition(services, rid).seq == 1
    # The redelivered tick runs the pass again; a second redelivery does nothing
    assert run_pass(services, rid, 1, tick, limit=1000)["created"] == 2
    assert run_pass(services, rid, 1, tick, limit=1000) == {"outcome": "stale", "state": "active"}
    assert created_times(services, rid) == [W0 + 12 * HOUR, W0 + 36 * HOUR]
    assert len(jobs_of(services)) == 2


def test_concurrent_pumps_and_redelivered_ticks_create_each_occurrence_once(services, world):
    # Given 60 world-clock recurrences every 6 hours, and a real worker with 4 threads
    rids = [new_recurring(services, W0, every="PT6H") for _ in range(60)]
    go = threading.Event()
    errors = []

    def pumping():  # four subscribers pumping the same advances
        go.wait()
        for day in (1, 2, 3):
            advance_world(services, world, W0 + day * DAY)

    def redelivering():  # the same ticks run again, at the same time as the worker's
        go.wait()
        for _ in range(3):
            for rid in rids:
                d = definition(services, rid)
                try:
                    run_pass(services, rid, d.seq, d.tick_job, limit=1000)
                except Exception as e:  # noqa: BLE001 - collected for the assertion
                    errors.append(e)

    threads = [threading.Thread(target=pumping) for _ in range(4)]
    threads += [threading.Thread(target=redelivering) for _ in range(2)]
    with running_worker(services, threads=4):
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(60)
        settle(services, *rids)
    # Then each recurrence made its twelve occurrences exactly once
    assert errors == []
    expected = [W0 + 6 * HOUR * k for k in range(1, 13)]
    for rid in rids:
        assert created_times(services, rid) == expected
        assert definition(services, rid).cursor == W0 + 78 * HOUR
    echo_ids, cursor = [], None
    while True:
        items, cursor = services.jobs.list(job_type="SAMPLE_ECHO", limit=500, cursor=cursor)
        echo_ids += [j["id"] for j in items]
        if cursor is None:
            break
    assert len(echo_ids) == 60 * 12
    assert set(echo_ids) == {occurrence_job_id(rid, t) for rid in rids for t in expected}


def test_a_tick_of_a_cancelled_recurrence_does_nothing(services, world):
    rid = new_recurring(services, W0, every="P1D")
    d = definition(services, rid)
    service.cancel(services, rid)
    advance_world(services, world, W0 + 5 * DAY)
    assert services.jobs.get(d.tick_job)["state"] == "cancelled"
    assert run_pass(services, rid, d.seq, d.tick_job, limit=10) == {"outcome": "stale",
                                                                     "state": "cancelled"}
    assert jobs_of(services) == []


def test_the_repair_sweep_gives_a_recurrence_that_lost_its_timer_a_new_one(services, worker, world):
    # Given two daily recurrences, one of whose timers an operator cancelled by hand
    lost = new_recurring(services, W0, every="P1D")
    fine = new_recurring(services, W0, every="P1D")
    gone = definition(services, lost).tick_job
    untouched = definition(services, fine).tick_job
    services.jobs.transition(gone, ("scheduled",), "cancelled", "cancelled by hand")
    # When the repair runs (twice: the second finds nothing to do)
    assert repair_ticks(services) == {"checked": 2, "repaired": 1}
    assert repair_ticks(services) == {"checked": 2, "repaired": 0}
    # Then the lost one waits again at the same occurrence, the other kept its timer
    d = definition(services, lost)
    assert d.tick_job != gone and d.cursor == W0 + DAY
    assert services.jobs.get(d.tick_job)["state"] == "scheduled"
    assert definition(services, fine).tick_job == untouched
    advance_world(services, world, W0 + 2 * DAY)
    settle(services, lost, fine)
    assert created_times(services, lost) == created_times(services, fine) == [W0 + DAY, W0 + 2 * DAY]
