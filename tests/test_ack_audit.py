"""A worker gives back what its acknowledgement set lists but it no longer holds.

The state a failover leaves when the old master answered an acknowledgement and died
before passing it on: the worker has moved on, the new master still lists the message as
the worker's, and the record says ``running``.
"""

import time

from scheduler_service import wire
from scheduler_service.dispatch import send_job
from scheduler_service.lifecycle import REQUEUED_ORPHAN

from helpers import wait_for


def fetched(services, queue):
    consumer = services.broker.consume(queue, prefetch=4, timeout=100)
    message = wait_for(lambda: next(consumer), message="the job to be fetched")
    return consumer, message


def audits(consumer, *offsets):
    """Audit at times past the interval (the consumer's clock is passed in)."""
    base = time.monotonic()
    return [consumer.audit(base + offset) for offset in offsets]


def test_a_lost_acknowledgement_is_found_and_the_job_runs_again(services, redis_client):
    record, _ = send_job(services, "PING", "SYSTEM")
    job_id = record["id"]
    (queue,) = services.jobs.get_internal(job_id, "queue")
    consumer, message = fetched(services, queue)
    rid = message.options["redis_message_id"]
    prefix = services.jobs.prefix
    acks = wire.acks_key(prefix, services.broker.broker_id, queue)
    assert services.jobs.get(job_id)["state"] == "running"
    assert redis_client.sismember(acks, rid)
    # In the worker's hands: never given back, however many audits
    assert audits(consumer, 100, 200, 300) == [0, 0, 0]

    # The worker acknowledges; then Redis "loses" the acknowledgement (a failover)
    stored = redis_client.hget(wire.messages_key(prefix, queue), rid)
    consumer.ack(message)
    wait_for(lambda: not redis_client.sismember(acks, rid), message="the acknowledgement")
    redis_client.sadd(acks, rid)
    redis_client.hset(wire.messages_key(prefix, queue), rid, stored)
    assert services.jobs.get(job_id)["state"] == "running"

    # The first audit only suspects it; the second gives it back, the attempt counted
    assert audits(consumer, 1000, 1001, 2000) == [0, 0, 1]
    job = services.jobs.get(job_id)
    assert job["state"] == "queued" and job["attempts"] == 1
    assert services.jobs.history(job_id)[-1]["detail"] == REQUEUED_ORPHAN
    assert not redis_client.sismember(acks, rid)
    assert rid.encode() in redis_client.lrange(wire.queue_key(prefix, queue), 0, -1)

    # and it runs again: fetched anew, its record running for a second attempt
    again = wait_for(lambda: next(consumer), message="the job to be fetched again")
    assert again.options["redis_message_id"] == rid
    assert services.jobs.get(job_id)["state"] == "running"
    consumer.close()


def test_acknowledgements_waiting_or_being_written_count_as_held():
    """The audit must not give back a message whose acknowledgement is on its way."""
    import threading
    from types import SimpleNamespace

    from scheduler_service.broker import _Settler

    release, writing = threading.Event(), threading.Event()

    def settle_many(broker, queue, batch):
        writing.set()
        assert release.wait(10)

    broker = SimpleNamespace(records=SimpleNamespace(settle_many=settle_many))
    settler = _Settler(broker, "jobs.normal")
    settler.add(("j1", "succeeded", ["rid-1", "j1"], None))
    assert writing.wait(10)  # rid-1 is being written, and is held
    settler.add(("j2", "dead", ["rid-2", "j2"], None))  # rid-2 waits its turn
    assert settler.pending() == {"rid-1", "rid-2"}
    release.set()
    wait_for(lambda: not settler.pending(), message="both writes")
    settler.stop()
