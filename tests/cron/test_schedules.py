"""The schedule store on a real Redis: the last tick a sweep dealt with only moves forward."""

import random
import threading

import pytest
import redis as redis_lib

from scheduler_service.cron.schedules import ScheduleStore
from scheduler_service.jobstore import iso_ms

SWEEP = "sample-ping"
#: 2026-03-01T12:00:00Z; the race's ticks are whole seconds after it, as real ticks are.
FIRST_TICK_MS = 1_772_366_400_000


def store_on(client, services):
    return ScheduleStore(client, services.settings.redis_namespace, services.registry,
                         services.settings)


@pytest.fixture
def second_client(redis_server):
    """Another connection pool, as a second cron process would have."""
    client = redis_lib.Redis.from_url(redis_server.url)
    yield client
    client.close()


def test_racing_advances_never_move_the_last_tick_backwards(services, second_client):
    # Given two cron processes (two clients) and eight threads between them; in each of 100
    # rounds every thread gets four of the round's 32 ticks, shuffled, all later than the
    # last round's, so that every call of a round finds the stored tick behind its own
    stores = [store_on(services.redis, services), store_on(second_client, services)]
    threads, rounds, per_thread = 8, 100, 4
    rng = random.Random(20260301)
    deals = []
    for r in range(rounds):
        ticks = [FIRST_TICK_MS + 1000 * (r * threads * per_thread + i)
                 for i in range(threads * per_thread)]
        rng.shuffle(ticks)
        deals.append([ticks[i::threads] for i in range(threads)])
    calls: list[list[tuple[int, bool, int]]] = [[] for _ in range(threads)]
    after_rounds: list[tuple[int, int | None]] = []  # (the round's greatest tick, stored tick)
    reads: list[int] = []
    done = threading.Event()

    def check_round():
        """Runs once all threads finished a round, before any starts the next."""
        finished = len(after_rounds) - 1
        if finished >= 0:
            after_rounds[finished] = (after_rounds[finished][0], stores[1].run_info(SWEEP)[0])
        if finished + 1 < rounds:
            after_rounds.append((max(max(d) for d in deals[finished + 1]), None))

    barrier = threading.Barrier(threads, action=check_round)

    def advance(index):
        store = stores[index % 2]
        for deal in deals:
            barrier.wait()
            for tick in deal[index]:
                moved = store.advance_tick(SWEEP, tick)
                calls[index].append((tick, moved, store.run_info(SWEEP)[0]))
        barrier.wait()

    def watch():
        while not done.is_set():
            tick, _ = stores[0].run_info(SWEEP)
            if tick is not None:
                reads.append(tick)

    workers = [threading.Thread(target=advance, args=(i,)) for i in range(threads)]
    watcher = threading.Thread(target=watch)
    for thread in [watcher] + workers:
        thread.start()
    # When they all advance the same sweep's tick at once
    for thread in workers:
        thread.join(120)
    done.set()
    watcher.join(10)
    assert not any(thread.is_alive() for thread in workers + [watcher])

    # Then after every round the stored tick is the round's greatest
    assert len(after_rounds) == rounds
    wrong = [(r, best, stored) for r, (best, stored) in enumerate(after_rounds) if stored != best]
    assert not wrong, f"{len(wrong)} of {rounds} rounds ended below their greatest tick: {wrong[:3]}"
    # and no read in between ever saw it go back
    went_back = [(a, b) for a, b in zip(reads, reads[1:]) if b < a]
    assert reads and not went_back, f"{len(went_back)} of {len(reads)} reads went backwards"
    for mine in calls:
        # nor did a thread, right after its own call, read a tick below the one it gave
        assert all(after >= tick for tick, _, after in mine)
        # and a call moved the tick only past every tick its thread had given before
        seen = 0
        for tick, moved, _ in mine:
            assert not moved or tick > seen
            seen = max(seen, tick)
    # and each round's greatest tick was moved to by its own call
    greatest = {best for best, _ in after_rounds}
    assert all(moved for mine in calls for tick, moved, _ in mine if tick in greatest)


def test_advance_says_whether_it_moved_and_an_older_run_leaves_the_tick_alone(services):
    store = store_on(services.redis, services)
    assert store.advance_tick(SWEEP, FIRST_TICK_MS + 2000) is True
    assert store.advance_tick(SWEEP, FIRST_TICK_MS + 2000) is False
    assert store.advance_tick(SWEEP, FIRST_TICK_MS) is False
    # When a stale leader records the run of an older tick
    run = {"start": FIRST_TICK_MS, "durationMs": 1, "outcome": "enqueued", "error": None,
           "tick": FIRST_TICK_MS + 1000, "trigger": "cron", "detail": None}
    store.record_run(SWEEP, run, job_id="old-job", tick_ms=FIRST_TICK_MS + 1000)
    # Then the run is shown as the last run, but the last tick dealt with stays where it was
    assert store.last_run(SWEEP)["tick"] == iso_ms(FIRST_TICK_MS + 1000)
    assert store.run_info(SWEEP) == (FIRST_TICK_MS + 2000, "old-job")
    # and a newer tick's run moves it on
    store.record_run(SWEEP, {**run, "tick": FIRST_TICK_MS + 3000}, tick_ms=FIRST_TICK_MS + 3000)
    assert store.run_info(SWEEP)[0] == FIRST_TICK_MS + 3000


def test_the_run_log_keeps_the_latest_runs_newest_first(services):
    from scheduler_service.cron.schedules import RUNS_KEPT

    store = store_on(services.redis, services)
    for i in range(RUNS_KEPT + 5):
        store.record_run(SWEEP, {"start": FIRST_TICK_MS + i * 1000, "durationMs": i, "outcome": "enqueued",
                                 "error": None, "tick": FIRST_TICK_MS + i * 1000, "trigger": "cron",
                                 "detail": None}, job_id=f"job-{i}")
    runs = store.recent_runs(SWEEP)
    assert len(runs) == RUNS_KEPT
    assert [r["jobId"] for r in runs[:2]] == [f"job-{RUNS_KEPT + 4}", f"job-{RUNS_KEPT + 3}"]
    assert runs[0] == store.last_run(SWEEP)
    assert store.recent_runs(SWEEP, 3)[-1]["jobId"] == f"job-{RUNS_KEPT + 2}"
