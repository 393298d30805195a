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


def test_type_and_campaign_filters_read_their_own_index_so_a_miss_reads_no_record(services):
    # Given 300 jobs of one type and campaign, and a few of others, through both create paths
    now = [4_102_444_800_000]
    store = make_store(services, now)
    many = [build_job(services.registry, "PING", "c1") for _ in range(300)]
    store.create_many((job, now[0] + 3_600_000, None) for job in many)
    other = create(services, store, now, 3, step=1)  # PING, c1
    echo = build_job(services.registry, "SAMPLE_ECHO", "c2", {"text": "x"})
    store.create(echo)
    read = []
    real = store.redis.zrevrangebyscore

    def counting(*args, **kwargs):
        ids = real(*args, **kwargs)
        read.append(len(ids))
        return ids

    store.redis = _Proxy(services.redis, zrevrangebyscore=counting)
    # When a filter matches nothing, then no id is read, however many jobs there are
    assert store.list(job_type="NOPE") == ([], None) and sum(read) == 0
    assert store.list(campaign_id="nope") == ([], None) and sum(read) == 0
    # and the smallest index of several filters is read: the one job of c2
    items, _ = store.list(job_type="PING", campaign_id="c2")
    assert items == [] and sum(read) == 1
    items, _ = store.list(campaign_id="c2", state="queued")
    assert [i["id"] for i in items] == [echo["id"]]
    store.redis = services.redis
    # The filters still combine right, newest first, with the cursor across pages
    first, cursor = store.list(job_type="PING", campaign_id="c1", state="scheduled", limit=200)
    rest, end = store.list(job_type="PING", campaign_id="c1", state="scheduled", cursor=cursor,
                           limit=500)
    assert len(first) == 200 and cursor and end is None
    assert {i["id"] for i in first + rest} == {j["id"] for j in many} | set(other)
    assert [i["id"] for i in first[:2]] == list(reversed(other))[:2]  # the later two


def test_pruning_empties_a_type_or_campaign_index_and_forgets_it(services):
    now = [4_102_444_800_000]
    store = make_store(services, now)
    job = build_job(services.registry, "SAMPLE_ECHO", "gone", {"text": "x"})
    store.create(job)
    registry = store.key("jobs", "indexes")
    assert {store.key("jobs", "type", "SAMPLE_ECHO"), store.key("jobs", "campaign", "gone")} <= {
        m.decode() for m in services.redis.smembers(registry)}
    services.redis.delete(store.key("job", job["id"]))  # as if retention had passed
    store.retention_s = -10
    assert store.prune_indexes() == 4  # all, queued, its type and its campaign
    assert services.redis.smembers(registry) == set()
    assert store.list(campaign_id="gone") == ([], None)
