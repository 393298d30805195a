"""Listing job records: keyset pages that neither repeat nor skip while the index changes."""

from scheduler_service.dispatch import build_job
from scheduler_service.jobstore import JobStore


def make_store(services, now):
    return JobStore(services.redis, services.settings.redis_namespace, clock=lambda: now[0])


def create(services, store, now, n, step=0):
    ids = []
    for _ in range(n):
        job = build_job(services.registry, "PING", "c1")
        store.create(job, run_at_ms=now[0] + 3_600_000)
        ids.append(job["id"])
        now[0] += step
    return ids


def test_jobs_created_during_a_listing_neither_repeat_nor_push_others_out(services):
    # Given 250 jobs, many sharing a creation time
    now = [4_102_444_800_000]
    store = make_store(services, now)
    created = create(services, store, now, 250, step=0) + create(services, store, now, 50, step=1)
    # When new jobs arrive while one call reads the index in batches
    real = store.redis.zrevrangebyscore
    calls = []

    def arriving(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            now[0] += 1000
            create(services, store, now, 30)
        return real(*args, **kwargs)

    store.redis = _Proxy(services.redis, zrevrangebyscore=arriving)
    items, cursor = store.list(limit=280, batch=100)
    store.redis = services.redis
    # Then every item is there once, newest first, none of the latecomers in this listing
    ids = [i["id"] for i in items]
    assert len(calls) >= 2  # the newcomers arrived between two reads of one listing
    assert len(ids) == len(set(ids)) == 280 and set(ids) <= set(created)
    # and the next page goes on below the cursor, over what is left
    rest, end = store.list(limit=100, cursor=cursor)
    assert set(i["id"] for i in rest) == set(created) - set(ids) and end is None


def test_a_page_continues_when_the_cursors_own_job_left_the_index(services):
    now = [4_102_444_800_000]
    store = make_store(services, now)
    created = create(services, store, now, 10, step=1)
    first, cursor = store.list(state="scheduled", limit=4)
    # The job the cursor names is cancelled: it leaves the scheduled index
    assert store.transition(first[-1]["id"], ("scheduled",), "cancelled", "test").ok
    rest, end = store.list(state="scheduled", cursor=cursor, limit=50)
    assert [i["id"] for i in first + rest] == list(reversed(created))[:4] + list(reversed(created))[4:]
    assert end is None


class _Proxy:
    def __init__(self, client, **overrides):
        self._client, self._overrides = client, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._client, name)


def test_waiting_timers_counts_by_state_and_many_records_in_one_read(services):
    now = [4_102_444_800_000]
    store = make_store(services, now)
    wall = [build_job(services.registry, "PING", "c1") for _ in range(3)]
    for i, job in enumerate(wall):
        store.create(job, run_at_ms=now[0] + (3 - i) * 60_000)
    world = build_job(services.registry, "PING", "c2")
    store.create(world, run_at_world_ms=1_000)
    store.create(build_job(services.registry, "PING", "c1"))  # due now: queued, no timer
    # Then the wall timers come soonest first, each clock on its own
    total, first = store.waiting_timers(limit=2)
    assert total == 3 and first == [(wall[2]["id"], now[0] + 60_000), (wall[1]["id"], now[0] + 120_000)]
    assert store.waiting_timers(limit=0) == (3, [])
    assert store.waiting_timers("c2") == (1, [(world["id"], 1_000)])
    assert store.count_by_state() == {"scheduled": 4, "queued": 1, "running": 0, "succeeded": 0,
                                      "failed": 0, "dead": 0, "cancelled": 0}
    records = store.get_many([wall[0]["id"], "missing", world["id"]])
    assert set(records) == {wall[0]["id"], world["id"]}
    assert records[world["id"]]["campaignId"] == "c2"
