"""Group commit: concurrent creates share Lua calls, and each caller gets its own answer."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from scheduler_service import wire
from scheduler_service.combining import Combiner
from scheduler_service.dispatch import build_job

from helpers import wait_for


class GatedSend:
    """A ``send`` that records each call's items and holds the first call until released."""

    def __init__(self, fail_on=None):
        self.calls: list[list] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items):
        self.calls.append(list(items))
        if len(self.calls) == 1:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_on in items:
            raise ConnectionError(f"refused {self.fail_on}")
        return [item * 10 for item in items]


def test_callers_arriving_during_a_call_go_together_in_the_next_one():
    send = GatedSend()
    combiner = Combiner(send)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(combiner, 1)
        wait_for(lambda: send.calls, message="the first call to start")
        later = [pool.submit(combiner, n) for n in (2, 3, 4)]
        wait_for(lambda: len(combiner._queued) == 3, message="three callers to queue")
        send.gate.set()
        assert first.result(10) == 10
        assert [f.result(10) for f in later] == [20, 30, 40]
    assert send.calls == [[1], [2, 3, 4]]
    # idle again: the next caller sends at once, alone
    assert combiner(5) == 50 and send.calls[-1] == [5]


def test_a_failed_call_fails_its_own_callers_only():
    send = GatedSend(fail_on=3)
    combiner = Combiner(send, limit=2)
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(combiner, 1)
        wait_for(lambda: send.calls, message="the first call to start")
        queued = []
        for n in (2, 3, 4, 5):
            queued.append(pool.submit(combiner, n))
            wait_for(lambda: len(combiner._queued) == len(queued), message=f"caller {n} to queue")
        send.gate.set()
        assert first.result(10) == 10
        for f in queued[:2]:  # the call carrying 3 (limit 2: items 2 and 3)
            with pytest.raises(ConnectionError, match="refused 3"):
                f.result(10)
        assert [f.result(10) for f in queued[2:]] == [40, 50]
    assert send.calls == [[1], [2, 3], [4, 5]]


def test_concurrent_creates_share_calls_and_keys_stay_exactly_once(services, redis_client):
    """32 threads create 200 jobs: 100 with their own keys, 100 on 10 shared keys."""
    store = services.jobs
    calls = []
    send = store._create.send
    store._create.send = lambda items: calls.append(len(items)) or send(items)

    def create(n):
        job = build_job(services.registry, "PING", "c-combine")
        key = f"own-{n}" if n % 2 else f"shared-{n % 20}"
        return store.create(job, idempotency_key=key, key_scope="api")

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(create, range(200)))
    created = [record for record, is_new in answers if is_new]
    assert len(created) == 100 + 10
    assert len({r["id"] for r, _ in answers}) == 110
    by_key: dict = {}
    for record, _ in answers:
        by_key.setdefault(record["idempotencyKey"], set()).add(record["id"])
    assert all(len(ids) == 1 for ids in by_key.values()) and len(by_key) == 110
    for record in created:
        assert store.get(record["id"])["state"] == "queued"
    # every created job's message is in its queue, once
    assert redis_client.zcard(f"{store.prefix}jobs:all") == 110
    (queue,) = store.get_internal(created[0]["id"], "queue")
    rids = [r.decode() for r in redis_client.lrange(wire.queue_key(store.prefix, queue), 0, -1)]
    assert sorted(wire.job_id_of_rid(r) for r in rids) == sorted(r["id"] for r in created)
    assert sum(calls) == 200
    assert len(calls) < 200, "no call carried more than one create"
