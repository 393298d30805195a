"""The worker's state machine on a real Redis: claims in the fetch, outcomes with the
acknowledgement, requeue at shutdown, promotion time, and clocks that only move forward."""

import json
import random
import threading
import time

from dramatiq.broker import MessageProxy

from scheduler_service import wire
from scheduler_service.dispatch import send_job
from scheduler_service.jobstore import JobStore
from scheduler_service.lifecycle import JobMessage, Outcome
from scheduler_service.timers import pump_wall

QUEUE = "jobs.normal"


def records(services):
    return services.broker.records


def test_the_fetch_claims_each_job_and_counts_its_attempt(services):
    jobs = [send_job(services, "PING", "c1")[0] for _ in range(3)]
    fetched = records(services).fetch(services.broker, QUEUE, 10)
    assert sorted(m.job_id for m in fetched) == sorted(j["id"] for j in jobs)
    assert {(m.claim, m.attempt) for m in fetched} == {("run", 1)}
    for job in jobs:
        record = services.jobs.get(job["id"])
        assert (record["state"], record["attempts"]) == ("running", 1)
        assert services.jobs.history(job["id"])[-1]["detail"] == "attempt 1 started"
    assert services.redis.llen(wire.queue_key(services.jobs.prefix, QUEUE)) == 0


def test_a_cancelled_job_is_fetched_as_skip_and_left_cancelled(services):
    job, _ = send_job(services, "PING", "c1")
    assert services.jobs.transition(job["id"], ("queued",), "cancelled", "by test").ok
    (message,) = records(services).fetch(services.broker, QUEUE, 10)
    assert (message.claim, message.previous) == ("skip", "cancelled")
    assert services.jobs.get(job["id"])["state"] == "cancelled"


def test_the_outcome_is_written_with_the_acknowledgement(services):
    job, _ = send_job(services, "PING", "c1")
    (message,) = records(services).fetch(services.broker, QUEUE, 10)
    prefix = services.jobs.prefix
    assert services.redis.hexists(wire.messages_key(prefix, QUEUE), message.options["redis_message_id"])
    message.outcome = Outcome("succeeded", "succeeded", {"result": {"pong": True}})
    records(services).settle(services.broker, QUEUE, message, reject=False)
    record = services.jobs.get(job["id"])
    assert (record["state"], record["result"]) == ("succeeded", {"pong": True})
    # the message is gone from Dramatiq, in the same call
    assert not services.redis.hexists(wire.messages_key(prefix, QUEUE), message.options["redis_message_id"])


def test_a_retry_waits_on_a_wall_timer_and_the_pump_enqueues_it(services):
    job, _ = send_job(services, "PING", "c1")
    (message,) = records(services).fetch(services.broker, QUEUE, 10)
    now = services.jobs.clock()
    message.outcome = Outcome("failed", "will retry", {"lastError": "boom"}, wall_due=now + 5000)
    records(services).settle(services.broker, QUEUE, message, reject=False)
    assert services.jobs.get(job["id"])["state"] == "failed"
    assert services.redis.zscore(services.jobs.wall_timers, job["id"]) == now + 5000
    assert pump_wall(services.jobs, now=now + 4999) == 0
    assert pump_wall(services.jobs, now=now + 5000) == 1
    (again,) = records(services).fetch(services.broker, QUEUE, 10)
    assert (again.job_id, again.claim, again.attempt) == (job["id"], "run", 2)


def test_a_stopping_worker_puts_unrun_messages_and_their_records_back(services):
    jobs = [send_job(services, "PING", "c1")[0] for _ in range(2)]
    fetched = records(services).fetch(services.broker, QUEUE, 10)
    returned = records(services).requeue(services.broker, QUEUE,
                                         [m.options["redis_message_id"] for m in fetched])
    assert returned == 2
    for job in jobs:
        record = services.jobs.get(job["id"])
        assert (record["state"], record["attempts"]) == ("queued", 0)
    # and the next fetch claims them as first attempts again
    again = records(services).fetch(services.broker, QUEUE, 10)
    assert {(m.claim, m.attempt) for m in again} == {("run", 1)}


def test_a_message_of_an_older_version_is_claimed_by_the_middleware(services):
    # A message whose Redis id does not carry its job id (as enqueued before this version)
    job, _ = send_job(services, "PING", "c1")
    (fetched,) = records(services).fetch(services.broker, QUEUE, 10)
    assert services.jobs.transition(job["id"], ("running",), "queued", "test: back").ok
    plain = JobMessage(fetched._message)  # no claim from the fetch
    records(services).before_process_message(services.broker, plain)
    assert (plain.claim, plain.attempt) == ("run", 2)
    assert services.jobs.get(job["id"])["state"] == "running"


def test_a_message_without_a_job_passes_through(services):
    from dramatiq import Message

    message = MessageProxy(Message(queue_name=QUEUE, actor_name="PING.normal", args=(), kwargs={},
                                   options={}))
    records(services).before_process_message(services.broker, message)
    records(services).after_process_message(services.broker, message, result=None)


def test_a_promoted_message_carries_its_promotion_time(services):
    from scheduler_service.dispatch import build_job

    now = [4_102_444_800_000]
    store = JobStore(services.redis, services.settings.redis_namespace, clock=lambda: now[0])
    job = build_job(services.registry, "PING", "c1")
    store.create(job, run_at_ms=now[0] + 3_600_000)
    now[0] += 3_600_000  # an hour later, the pump promotes it
    assert pump_wall(store) == 1
    (raw,) = services.redis.hvals(wire.messages_key(services.jobs.prefix, QUEUE))
    promoted = json.loads(raw)
    assert promoted["args"][0]["id"] == job["id"]
    assert promoted["message_timestamp"] == 4_102_444_800_000 + 3_600_000  # not creation time


def test_the_store_stamps_changes_with_the_clock_it_is_given(services):
    store = JobStore(services.redis, services.settings.redis_namespace, clock=lambda: 4_102_444_800_000)
    job, _ = send_job(services, "PING", "c1", run_at_ms=4_102_444_800_000 + 60_000)
    assert pump_wall(store) == 0  # the store's clock, not the machine's
    store.clock = lambda: 4_102_444_800_000 + 60_000
    assert pump_wall(store) == 1
    assert services.jobs.history(job["id"])[-1]["at"] == "2100-01-01T00:01:00.000Z"


class SlowReads:
    """A Redis client whose reads return late, as a subscriber that stalls between its read
    and its write would: any read-compare-write outside Redis loses the race here."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name in ("hget", "hmget", "get"):
            def slow(*args, **kwargs):
                value = attr(*args, **kwargs)
                time.sleep(0.002)
                return value
            return slow
        return attr


def test_racing_subscribers_never_move_a_world_clock_backwards(services):
    # Given 8 subscribers remembering shuffled world times of one campaign at once
    store = JobStore(SlowReads(services.redis), services.settings.redis_namespace)
    values = list(range(1_000_000, 1_000_200))
    random.shuffle(values)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            current = services.jobs.remembered_world_time("race")
            if current is not None:
                seen.append(current)

    def remember(chunk):
        for v in chunk:
            store.remember_world_time("race", v)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=remember, args=(values[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    # Then it ends at the newest, and no reader ever saw it go back
    assert services.jobs.remembered_world_time("race") == max(values)
    assert seen and seen == sorted(seen)
    assert store.remember_world_time("race", max(values) - 1) is False


def test_create_many_stores_each_kind_of_job_as_create_does(services):
    from scheduler_service.dispatch import build_job

    store = services.jobs
    now = store.clock()
    store.remember_world_time("w-known", 5_000)
    jobs = [build_job(services.registry, "PING", c) for c in ("c1", "c1", "w-known", "w-known")]
    entries = [(jobs[0], None, None),             # due now
               (jobs[1], now + 60_000, None),     # a wall timer
               (jobs[2], None, 4_000),            # a world time the campaign has passed
               (jobs[3], None, 9_000)]            # a world time still ahead
    assert store.create_many(entries, batch=3) == 4  # two batches
    states = [store.get(j["id"])["state"] for j in jobs]
    assert states == ["queued", "scheduled", "queued", "scheduled"]
    assert store.redis.zscore(store.wall_timers, jobs[1]["id"]) == now + 60_000
    assert store.redis.zscore(store.world_timers("w-known"), jobs[3]["id"]) == 9_000
    queued = {json.loads(m)["args"][0]["id"]
              for m in store.redis.hvals(wire.messages_key(store.prefix, QUEUE))}
    assert queued == {jobs[0]["id"], jobs[2]["id"]}
    assert store.redis.llen(wire.queue_key(store.prefix, QUEUE)) == 2
    for state in ("queued", "scheduled"):
        ids = {i.decode() for i in store.redis.zrange(store.key("jobs", "state", state), 0, -1)}
        assert ids == {j["id"] for j, s in zip(jobs, states) if s == state}
    assert [h["detail"] for h in store.history(jobs[0]["id"])] == ["created, due now"]
    # and the queued ones run through the fetch like any other
    fetched = records(services).fetch(services.broker, QUEUE, 10)
    assert {m.job_id for m in fetched} == {jobs[0]["id"], jobs[2]["id"]}


def test_acknowledgements_are_written_in_groups_and_flushed_when_the_worker_stops(services):
    from dramatiq import Worker

    # Given 300 jobs and a worker of 8 threads
    jobs = [send_job(services, "PING", "c1")[0] for _ in range(300)]
    calls = []
    settle_many = records(services).settle_many

    def counting(broker, queue, settlements):
        calls.append(len(settlements))
        return settle_many(broker, queue, settlements)

    records(services).settle_many = counting
    worker = Worker(services.broker, worker_threads=8, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while sum(calls) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        # When it stops (whatever was still pending is written on the way out)
        worker.stop(timeout=10_000)
        del records(services).settle_many
    # Then every job succeeded and nothing is left unacknowledged
    states = {services.jobs.get(j["id"])["state"] for j in jobs}
    assert states == {"succeeded"}
    prefix = services.jobs.prefix
    assert services.redis.hlen(wire.messages_key(prefix, QUEUE)) == 0
    assert sum(calls) == 300


def test_acknowledgements_that_arrive_during_a_write_share_the_next_call(services):
    from scheduler_service.broker import _Settler

    jobs = [send_job(services, "PING", "c1")[0] for _ in range(11)]
    fetched = records(services).fetch(services.broker, QUEUE, 11)
    for m in fetched:
        m.outcome = Outcome("succeeded", "succeeded", {"result": {}})
    calls, entered, release = [], threading.Event(), threading.Event()
    settle_many = records(services).settle_many

    def held(broker, queue, settlements):
        calls.append(len(settlements))
        entered.set()
        release.wait(10)
        return settle_many(broker, queue, settlements)

    records(services).settle_many = held
    try:
        settler = _Settler(services.broker, QUEUE)
        settler.add(records(services).settlement(fetched[0], reject=False))
        assert entered.wait(10)  # the first write is under way, held
        for m in fetched[1:]:
            settler.add(records(services).settlement(m, reject=False))
        release.set()
        settler.stop()
    finally:
        del records(services).settle_many
    assert calls == [1, 10]
    assert {services.jobs.get(j["id"])["state"] for j in jobs} == {"succeeded"}


def test_the_record_a_create_answers_is_the_one_stored(services):
    now = services.jobs.clock()
    for kwargs in ({}, {"run_at_ms": now + 60_000}, {"idempotency_key": "same-as-stored"}):
        job, created = send_job(services, "SAMPLE_ECHO", "c1", {"text": "hi"}, priority=7, **kwargs)
        assert created and job == services.jobs.get(job["id"])
