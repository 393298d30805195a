"""Every role on Redis Sentinel, through a real failover: the master SIGKILLed while jobs flow.

One master, one replica and one sentinel (:mod:`redis_sentinel`); ``scheduler-service run``
starts web, worker, cron and subscriber, all finding Redis through the sentinel; this
process creates jobs in a loop through the same settings. The test kills the master,
empties the promoted replica's script cache (so every Lua script of every role must be
loaded again on a ``NOSCRIPT``), and checks that each role carries on without a restart.
It also counts what the failover lost: jobs the old master acknowledged that the promoted
replica never received (asynchronous replication).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
import redis as redis_lib
import requests

from scheduler_service.config import load_settings
from scheduler_service.cron.leader import _ACQUIRE, _RENEW
from scheduler_service.cron.status import schedule_store
from scheduler_service.dispatch import new_job_id, send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobscripts import CREATE, FETCH, OUTCOMES, PUMP
from scheduler_service.jobstore import JobStore, now_ms
from scheduler_service.services import build_services
from scheduler_service.subscriber.status import read_instances, read_stats
from helpers import running_worker, stop_process, wait_for
from redis_sentinel import MASTER_NAME, SentinelDeployment

pytestmark = pytest.mark.slow

DB = 5
ROLES = {"web", "worker", "cron", "subscriber"}


class Producer(threading.Thread):
    """Creates SAMPLE_ECHO jobs one after another; remembers which creates were answered."""

    def __init__(self, services):
        super().__init__(daemon=True, name="producer")
        self.services = services
        self.stopping = threading.Event()
        #: ``(job id, monotonic time the create was answered)`` of every acknowledged create.
        self.acked: list[tuple[str, float]] = []
        #: ids of creates that failed (Redis away); each may or may not have been applied.
        self.refused: list[str] = []

    def run(self):
        while not self.stopping.is_set():
            job_id = new_job_id()
            try:
                send_job(self.services, "SAMPLE_ECHO", "failover", {"text": job_id}, job_id=job_id)
                self.acked.append((job_id, time.monotonic()))
                time.sleep(0.002)
            except redis_lib.RedisError:
                self.refused.append(job_id)
                self.stopping.wait(0.05)

    def acked_between(self, start: float, end: float = float("inf")) -> list[str]:
        return [job_id for job_id, at in list(self.acked) if start <= at < end]


def answering(fn):
    """``fn()``, or None while Redis cannot answer (for polling across the failover)."""
    def call():
        try:
            return fn()
        except (redis_lib.RedisError, requests.RequestException):
            return None
    return call


def states(services, job_ids) -> dict[str, str | None]:
    return {job_id: (services.jobs.get(job_id) or {}).get("state") for job_id in job_ids}


@pytest.fixture
def deployment(tmp_path):
    started = SentinelDeployment(tmp_path / "redis").start()
    yield started
    started.stop()


def test_every_role_follows_a_failover_to_the_promoted_replica_without_a_restart(
        deployment, base_env, child_env, tmp_path, record_property):
    sentinel_env = {**deployment.env(DB), "CRON_LEADER_TTL_S": "3",
                    "CRON_SAMPLE_TICK": "* * * * * *"}
    settings = load_settings({**{k: v for k, v in base_env.items() if k != "REDIS_URL"},
                              **sentinel_env})
    prefix = f"{settings.redis_namespace}:"
    services = build_services(settings)
    sched = schedule_store(services)
    port = free_port()
    env = child_env("sample", **sentinel_env, PORT=port, HOST="127.0.0.1", LOG_FORMAT="text",
                    QUEUE_CONCURRENCY=4, SUBSCRIBER_RECONNECT_MAX_MS=1000,
                    API_URL=f"http://127.0.0.1:{free_port()}/graphql", API_MAX_RETRIES=0)
    env.pop("REDIS_URL")
    log_path = tmp_path / "run.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    producer = Producer(services)
    new_master = None
    try:
        # Given every role up on the master the sentinel names: web healthy, a cron leader,
        # a subscriber listening, and a worker running the jobs created in a loop
        wait_for(answering(lambda: requests.get(f"http://127.0.0.1:{port}/health",
                                                timeout=2).status_code == 200),
                 timeout=40, interval=0.2, message="/health of `run` on Sentinel")
        wait_for(answering(lambda: sched.leader()[0]), timeout=20, message="a cron leader")
        wait_for(answering(lambda: any(e["state"] == "connected"
                                       for e in read_instances(services.redis, prefix).values())),
                 timeout=20, message="the subscriber to listen")
        producer.start()
        wait_for(lambda: len(producer.acked) >= 300, timeout=20, message="300 jobs created")
        first = [job_id for job_id, _ in producer.acked[:100]]
        wait_for(lambda: set(states(services, first).values()) == {"succeeded"}, timeout=20,
                 message="the worker to run the first jobs")
        leader_before = sched.leader()[0]

        # When the master is SIGKILLed while jobs are being created
        killed_at = time.monotonic()
        deployment.master.kill()
        dead_at = time.monotonic()
        wait_for(lambda: deployment.sentinel.master_port_now() == deployment.replica.port,
                 timeout=30, message="the sentinel to promote the replica")
        promoted_at = time.monotonic()
        # and the promoted replica knows none of the Lua scripts (every role must load them again)
        new_master = deployment.node(deployment.replica, DB)
        new_master.script_flush()

        # Then the jobs created after the promotion are all stored and all run
        wait_for(lambda: len(producer.acked_between(promoted_at)) >= 300, timeout=30,
                 message="300 jobs created on the promoted replica")
        producer.stopping.set()
        producer.join(10)
        after = producer.acked_between(promoted_at)
        wait_for(lambda: set(states(services, after).values()) == {"succeeded"}, timeout=30,
                 message="every job created after the failover to succeed")
        # and the cron leader still leads on the new master and fires ticks that run
        wait_for(answering(lambda: sched.leader()[0] is not None), timeout=20,
                 message="a cron leader on the new master")
        assert sched.leader()[0] == leader_before  # the same process took its lock back
        tick_floor = now_ms()

        def tick_run_after_failover():
            items, _ = services.jobs.list(job_type="SAMPLE_ECHO", campaign_id="sample", limit=50)
            return [j for j in items if (j["idempotencyKey"] or "").startswith("sweep:sample-tick:")
                    and _tick_ms(j["idempotencyKey"]) >= tick_floor and j["state"] == "succeeded"]

        wait_for(tick_run_after_failover, timeout=20, message="a sweep tick fired and run")
        # and a wall-clock timer is promoted by the pump and run
        timed, _ = send_job(services, "SAMPLE_ECHO", "failover", {"text": "timer"},
                            run_at_ms=now_ms() + 500)
        assert timed["state"] == "scheduled"
        wait_for(lambda: services.jobs.get(timed["id"])["state"] == "succeeded", timeout=20,
                 message="the timer's job to run")
        # and the subscriber reconnected and receives what is published on the new master
        wait_for(lambda: read_stats(services.redis, prefix).get("reconnects", 0) >= 1,
                 timeout=20, message="the subscriber to reconnect")
        received = read_stats(services.redis, prefix).get("received:worldTimeAdvanced", 0)

        def published_and_received():
            new_master.publish("campaign.c-failover.worldTimeAdvanced",
                               '{"campaignId":"c-failover","previousTime":null,'
                               '"newTime":"1600-01-01T00:00:00.000Z"}')
            return read_stats(services.redis, prefix).get("received:worldTimeAdvanced", 0) > received

        wait_for(published_and_received, timeout=20, interval=0.5,
                 message="the subscriber to receive a message")
        # and the web app answers healthy, and so does each role's health check command
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        for role in ("worker", "cron", "subscriber"):
            check = subprocess.run([sys.executable, "-m", "scheduler_service", "healthcheck",
                                    "--role", role], env=env, capture_output=True, text=True,
                                   timeout=60)
            assert check.returncode == 0, (role, check.stdout, check.stderr)
        # and every role loaded its Lua scripts again on the promoted replica (NOSCRIPT)
        scripts = {"create": CREATE, "pump": PUMP, "fetch": FETCH, "outcomes": OUTCOMES,
                   "leader acquire": _ACQUIRE, "leader renew": _RENEW}
        loaded = new_master.script_exists(*(_sha(text) for text in scripts.values()))
        assert dict(zip(scripts, loaded)) == dict.fromkeys(scripts, True)
        # and all of it lives in REDIS_DB, not in database 0
        db0 = deployment.node(deployment.replica, 0)
        assert new_master.dbsize() > 0 and db0.dbsize() == 0
        db0.close()
        # and nothing was restarted: the group runs on, each role started once
        assert proc.poll() is None
        started = re.findall(r"started ([\w-]+) \(pid \d+\)", log_path.read_text())
        assert sorted(started) == sorted(ROLES)

        # What the failover lost: acknowledged creates the promoted replica never got
        acked = [job_id for job_id, _ in producer.acked]
        present = states(services, acked)
        lost = [job_id for job_id, state in present.items() if state is None]
        # (answers the old master sent before it died may be read just after: the bound is
        # the promotion, before which nothing else could acknowledge a create)
        assert set(lost) <= set(producer.acked_between(0, promoted_at)), \
            "only jobs acknowledged by the old master can be lost"
        acked_at = dict(producer.acked)
        # Every stored job ends: none stays queued or running after the failover
        before = [job_id for job_id in acked if present[job_id] is not None]
        wait_for(lambda: set(states(services, before).values()) == {"succeeded"}, timeout=30,
                 message="every stored job to succeed")
        refused_present = sum(1 for s in states(services, producer.refused).values() if s)
        figures = {"acknowledged": len(acked), "lost": len(lost), "refused": len(producer.refused),
                   "refused_but_stored": refused_present,
                   "lost_acked_ms_from_kill": [round((acked_at[j] - dead_at) * 1000, 1)
                                               for j in lost],
                   "failover_s": round(promoted_at - killed_at, 2),
                   "acknowledged_per_s_before_kill":
                       round(len(producer.acked_between(killed_at - 1, killed_at)), 0)}
        record_property("failover", figures)
        print("failover figures:", figures)
    finally:
        producer.stopping.set()
        stop_process(proc)
        log.close()
        services.close()
        if new_master is not None:
            new_master.close()


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def _tick_ms(key: str) -> int:
    """Epoch ms of the tick in a sweep job's idempotency key ``sweep:{name}:{ISO tick}``."""
    tick = key.split(":", 2)[2]
    return int(datetime.fromisoformat(tick.replace("Z", "+00:00"))
               .astimezone(timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize("min_replicas", [None, 1], ids=["async", "min-replicas-to-write"])
def test_a_failover_loses_the_jobs_the_replica_never_received_unless_the_master_refused_them(
        tmp_path, base_env, min_replicas):
    # Given a master (with or without min-replicas-to-write 1), its replica and a sentinel
    extra = [] if min_replicas is None else ["--min-replicas-to-write", min_replicas,
                                             "--min-replicas-max-lag", 1]
    deployment = SentinelDeployment(tmp_path / "redis", master_args=extra).start()
    settings = load_settings({**{k: v for k, v in base_env.items() if k != "REDIS_URL"},
                              **deployment.env(DB)})
    services = build_services(settings)
    master = deployment.node(deployment.master, DB)
    try:
        # and 50 jobs the replica is known to have (WAIT: one replica acknowledged them)
        replicated = [send_job(services, "SAMPLE_ECHO", "loss", {"text": "before"})[0]["id"]
                      for _ in range(50)]
        assert master.execute_command("WAIT", 1, 5000) == 1
        # When the replica is cut off and 50 more jobs are created on the master alone
        deployment.cut_replication()
        wait_for(lambda: master.info("replication")["connected_slaves"] == 0, timeout=10,
                 message="the master to lose its replica")
        acked, refused = [], []
        for _ in range(50):
            try:
                acked.append(send_job(services, "SAMPLE_ECHO", "loss", {"text": "cut off"})[0]["id"])
            except redis_lib.ResponseError as e:
                assert "NOREPLICAS" in str(e), str(e)
                refused.append(e)
        # and the master dies, so that the sentinel promotes the replica
        deployment.master.kill()
        wait_for(lambda: deployment.sentinel.master_port_now() == deployment.replica.port,
                 timeout=30, message="the sentinel to promote the replica")

        # Then the jobs the replica had are there, and every job acknowledged after the cut is lost
        present = wait_for(answering(lambda: states(services, replicated + acked)), timeout=20,
                           message="the promoted replica to answer")
        assert all(present[job_id] for job_id in replicated)
        lost = [job_id for job_id in acked if present[job_id] is None]
        assert lost == acked
        if min_replicas is None:
            assert len(lost) == 50 and not refused
        else:  # or, with min-replicas-to-write, none was acknowledged: each create was refused
            assert len(refused) == 50 and not lost
    finally:
        master.close()
        services.close()
        deployment.stop()


@pytest.mark.parametrize("min_replicas", [None, 1], ids=["async", "min-replicas-to-write"])
def test_a_planned_failover_moves_every_client_to_the_new_master_before_the_old_one_is_demoted(
        tmp_path, base_env, subscribers, min_replicas, record_property):
    # Given jobs created in a loop and run through the sentinel (worker and subscriber in
    # this process); the master with or without min-replicas-to-write
    extra = [] if min_replicas is None else ["--min-replicas-to-write", min_replicas,
                                             "--min-replicas-max-lag", 1]
    deployment = SentinelDeployment(tmp_path / "redis", master_args=extra).start()
    settings = load_settings({**{k: v for k, v in base_env.items() if k != "REDIS_URL"},
                              **deployment.env(DB)})
    prefix = f"{settings.redis_namespace}:"
    services = build_services(settings)
    old_master = deployment.node(deployment.master, DB)
    new_master = deployment.node(deployment.replica, DB)
    on_new = JobStore(new_master, settings.redis_namespace, settings.job_retention_hours)
    producer = Producer(services)
    try:
        subscribers.start(services)
        with running_worker(services, threads=2):
            producer.start()
            wait_for(lambda: len(producer.acked) >= 100, timeout=20, message="100 jobs created")
            # When an operator asks the sentinel for a failover: the old master stays up, and
            # the sentinel demotes it only when it next hears from it (up to 10 s later)
            sentinel = deployment.sentinel.client()
            failover_at = time.monotonic()
            assert sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            sentinel.close()
            wait_for(lambda: deployment.sentinel.master_port_now() == deployment.replica.port,
                     timeout=30, message="the sentinel to promote the replica")
            promoted_at = time.monotonic()
            # Then within seconds the jobs created land on the new master
            wait_for(lambda: any(on_new.get(j) for j in producer.acked_between(promoted_at)),
                     timeout=5, message="a job created on the new master")
            moved_at = time.monotonic()
            # and the subscriber listens on the new master
            received = read_stats(services.redis, prefix).get("received:worldTimeAdvanced", 0)

            def published_and_received():
                new_master.publish("campaign.c-planned.worldTimeAdvanced",
                                   '{"campaignId":"c-planned","previousTime":null,'
                                   '"newTime":"1600-01-01T00:00:00.000Z"}')
                return read_stats(services.redis, prefix).get("received:worldTimeAdvanced",
                                                              0) > received

            wait_for(published_and_received, timeout=5, interval=0.2,
                     message="the subscriber to hear the new master")
            wait_for(lambda: len(producer.acked_between(moved_at)) >= 100, timeout=20,
                     message="100 jobs created after the move")
            producer.stopping.set()
            producer.join(10)
            # and what the old master took meanwhile is on it alone, to be thrown away when the
            # sentinel demotes it: job creations (counted here) and outcomes of attempts (such
            # a job stays `running` until its worker restarts). With min-replicas-to-write the
            # old master refuses writes once the promoted replica has left it.
            acked = [job_id for job_id, _ in producer.acked]
            stranded = [j for j in acked if on_new.get(j) is None]
            assert set(stranded) <= set(producer.acked_between(failover_at, moved_at))
            figures = {"acknowledged": len(acked), "stranded_on_old_master": len(stranded),
                       "refused": len(producer.refused),
                       "promoted_s_after_request": round(promoted_at - failover_at, 2),
                       "moved_s_after_promotion": round(moved_at - promoted_at, 2)}
            record_property("planned_failover", figures)
            print("planned failover figures:", min_replicas, figures)
    finally:
        producer.stopping.set()
        old_master.close()
        new_master.close()
        services.close()
        deployment.stop()
