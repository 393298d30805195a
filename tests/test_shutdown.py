"""SIGTERM, as a container runtime or a rolling upgrade sends it, to every role: real
processes on the real Redis. The work in hand finishes within SHUTDOWN_GRACE_S, what cannot
is handed back (never lost, never run twice), the cron lock is released at once, and each
process exits 0.

Jobs here are ``SAMPLE_GATE`` jobs of the sample plugin: each waits until the test opens its
gate, and counts its starts and finishes in Redis, so "finished within the grace" and
"still running at the end of it" are decided by the test, not by sleeps.
"""

import json
import signal
import time

import pytest
import requests

from scheduler_service.cron.schedules import ScheduleStore
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.subscriber.status import read_instances
from scheduler_service.supervisor import STOP_MARGIN_S
from helpers import port_open, start_role, stop_process, stop_roles, wait_for

pytestmark = pytest.mark.slow

GRACE_S = 3


@pytest.fixture
def role(child_env, services, tmp_path):
    """``start(command, **env)``: a role process on the test's namespace, logging JSON."""
    procs = []

    def start(*command, **env):
        env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace,
                        LOG_FORMAT="json", SHUTDOWN_GRACE_S=GRACE_S, **env)
        proc = start_role(command, env, tmp_path / f"{command[0]}-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    stop_roles(procs)


def messages(proc):
    proc.log.seek(0)
    return [json.loads(line)["message"] for line in proc.log if line.startswith("{")]


def ns(services):
    return services.settings.redis_namespace


def runs(services, job_id) -> dict:
    raw = services.redis.hgetall(f"{ns(services)}:sample:runs:{job_id}")
    return {k.decode(): int(v) for k, v in raw.items()}


def open_gate(services, gate):
    services.redis.rpush(f"{ns(services)}:sample:gate:{gate}", "open")


def gate_job(services, gate):
    job, _ = send_job(services, "SAMPLE_GATE", "c1", {"gate": gate})
    return job["id"]


def in_a_queue(services, job_id) -> bool:
    (rid,) = services.jobs.get_internal(job_id, "rid")
    return any(rid.encode() in services.redis.lrange(f"{ns(services)}:{queue}", 0, -1)
               for queue in services.queue_names)


def succeeded_entries(services, job_id):
    return [e for e in services.jobs.history(job_id) if e["to"] == "succeeded"]


def test_a_stopping_worker_finishes_what_fits_in_the_grace_and_hands_back_the_rest(role, services):
    # Given a worker with two jobs in progress
    first = role("worker", QUEUE_CONCURRENCY=2)
    short, long = gate_job(services, "short"), gate_job(services, "long")
    wait_for(lambda: runs(services, short).get("started") == 1 == runs(services, long).get("started"),
             timeout=30, message="both jobs to start")
    # and a third fetched (claimed) but waiting for a free thread
    waiting = gate_job(services, "waiting")
    wait_for(lambda: services.jobs.get(waiting)["state"] == "running", timeout=30,
             message="the third job to be fetched")
    assert runs(services, waiting) == {}
    # When it gets SIGTERM; a job sent then is not taken; once it is stopping, the short
    # job's gate opens (within the grace), the long job's never does
    first.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    late = gate_job(services, "late")
    wait_for(lambda: any(m.startswith("stopping: 2 job(s) in progress") and "; 1 fetched" in m
                         for m in messages(first)),
             timeout=GRACE_S, message="the worker to start stopping")
    # the waiting job went back to its queue at once
    assert services.jobs.get(waiting)["state"] == "queued" and in_a_queue(services, waiting)
    assert runs(services, short) == {"started": 1}
    open_gate(services, "short")
    # Then it exits 0, after the grace (a job was still running) and well before a kill
    assert first.wait(GRACE_S + STOP_MARGIN_S) == 0
    stopped_s = time.monotonic() - signalled
    assert GRACE_S <= stopped_s < GRACE_S + STOP_MARGIN_S
    # the short job finished and was recorded once
    record = services.jobs.get(short)
    assert record["state"] == "succeeded" and record["attempts"] == 1
    assert runs(services, short) == {"started": 1, "finished": 1}
    # the long one was handed back: its record queued, the attempt not spent, its message
    # back in the queue
    record = services.jobs.get(long)
    assert record["state"] == "queued" and record["attempts"] == 0
    assert in_a_queue(services, long)
    assert runs(services, long) == {"started": 1}
    assert services.jobs.history(long)[-1]["detail"].startswith("returned to the queue")
    # and neither the waiting job nor one sent during the shutdown was started there
    for job in (waiting, late):
        record = services.jobs.get(job)
        assert record["state"] == "queued" and record["attempts"] == 0 and runs(services, job) == {}
        assert in_a_queue(services, job)
    assert any("handed back" in m and long in m for m in messages(first))
    assert not any("thread died" in m for m in messages(first))

    # When a second worker starts (the gates now open)
    for gate in ("long", "waiting", "late"):
        open_gate(services, gate)
    second = role("worker")
    wait_for(lambda: all(services.jobs.get(j)["state"] == "succeeded" for j in (long, waiting, late)),
             timeout=30, message="the second worker to run the three jobs")
    assert stop_process(second) == 0
    # Then the handed-back job ran to its end exactly once, and is succeeded once
    assert runs(services, long) == {"started": 2, "finished": 1}
    assert len(succeeded_entries(services, long)) == 1
    assert services.jobs.get(long)["attempts"] == 1
    for job in (waiting, late):
        assert runs(services, job) == {"started": 1, "finished": 1}
        assert len(succeeded_entries(services, job)) == 1


def store_of(services):
    return ScheduleStore(services.redis, ns(services), services.registry, services.settings)


def leader_pid(store):
    holder, _ = store.leader()
    return int(holder.split(":")[-2]) if holder else None


def test_a_stopped_cron_leader_releases_its_lock_at_once_and_the_standby_takes_over(role, services):
    ttl_s = 12
    store = store_of(services)
    # Given a leader and a standby
    procs = [role("cron", CRON_LEADER_TTL_S=ttl_s) for _ in range(2)]
    wait_for(lambda: leader_pid(store) in {p.pid for p in procs}, timeout=30,
             message="a cron leader")
    wait_for(lambda: len(store.replicas(60_000)) == 2, timeout=30, message="both replicas")
    leader = next(p for p in procs if p.pid == leader_pid(store))
    standby = next(p for p in procs if p is not leader)
    # When the leader gets SIGTERM
    leader.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Then the standby leads, long before the lock could have expired: a leader renews
    # every third of the TTL, so an unreleased lock still had two thirds of it to live
    wait_for(lambda: leader_pid(store) == standby.pid, timeout=2 * ttl_s, interval=0.05,
             message="the standby to take the lock")
    took_over_s = time.monotonic() - signalled
    unreleased_floor_s = ttl_s * (1 - 1 / 3)
    assert took_over_s < unreleased_floor_s, took_over_s
    # and the old leader said it released the lock, and exited 0
    assert leader.wait(GRACE_S + STOP_MARGIN_S) == 0
    assert any("released cron leadership" in m for m in messages(leader))
    assert leader_pid(store) == standby.pid
    print(f"\ncron hand-over after SIGTERM: {took_over_s:.2f}s (lock TTL {ttl_s}s)")


def test_a_stopped_subscriber_exits_0_promptly_and_leaves_no_connection(role, services):
    # Given a connected subscriber
    proc = role("subscriber")

    def entry():
        return next((e for e in read_instances(services.redis, f"{ns(services)}:").values()
                     if e["pid"] == proc.pid and e["state"] == "connected"), None)

    wait_for(entry, timeout=30, message="the subscriber to connect")
    def named(client):
        name = client.get("name", "")
        return name.startswith("subscriber:") and f":{proc.pid}:" in name

    assert any(named(c) for c in services.redis.client_list())
    # When it gets SIGTERM
    proc.send_signal(signal.SIGTERM)
    # Then it exits 0 within the grace, having closed its subscription and removed its entry
    assert proc.wait(GRACE_S) == 0
    assert entry() is None
    assert not any(named(c) for c in services.redis.client_list())
    assert "subscriber stopped" in messages(proc)


def test_run_forwards_sigterm_and_waits_for_its_worker_to_hand_back(role, services):
    # Given `run` (every role under one supervisor) with a job in progress
    port = free_port()
    proc = role("run", PORT=port, HOST="127.0.0.1")
    wait_for(lambda: port_open(port) and requests.get(f"http://127.0.0.1:{port}/health",
                                                      timeout=2).ok, timeout=60, message="/health")
    job = gate_job(services, "never")
    wait_for(lambda: runs(services, job).get("started") == 1, timeout=30, message="the job")
    # When the supervisor gets SIGTERM
    proc.send_signal(signal.SIGTERM)
    # Then it waits for its worker's grace and hand-back (not killing it), and exits 0
    assert proc.wait(GRACE_S + 2 * STOP_MARGIN_S) == 0
    assert services.jobs.get(job)["state"] == "queued" and in_a_queue(services, job)
    assert not any("killing it" in m for m in messages(proc))
    assert not port_open(port)
