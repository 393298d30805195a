"""`scheduler-service cron` as operators run it: several real processes on the real Redis."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from scheduler_service.cron.schedules import ScheduleStore
from scheduler_service.web import create_app
from helpers import start_role, stop_process, stop_roles, wait_for

pytestmark = pytest.mark.slow

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture
def cron_processes(child_env, services, tmp_path):
    """``start(n, **env)``: n cron processes on the test's namespace, each logging JSON to a file."""
    procs = []

    def start(n=1, **env):
        env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace,
                        LOG_FORMAT="json", **env)
        for _ in range(n):
            procs.append(start_role(["cron"], env, tmp_path / f"cron-{len(procs)}.log"))
        return procs[-n:]

    yield start
    stop_roles(procs)


def log_entries(proc):
    proc.log.seek(0)
    return [json.loads(line) for line in proc.log if line.startswith("{")]


def enqueued_ticks(procs, sweep):
    """``[(pid, tick)]`` of every tick the processes logged as enqueued."""
    return [(p.pid, e["tick"]) for p in procs for e in log_entries(p)
            if e.get("sweep") == sweep and e.get("outcome") == "enqueued"]


def store_of(services):
    return ScheduleStore(services.redis, services.settings.redis_namespace, services.registry,
                         services.settings)


def tick_jobs(services, sweep, job_type):
    items, _ = services.jobs.list(job_type=job_type, limit=500)
    return [j for j in items if (j["idempotencyKey"] or "").startswith(f"sweep:{sweep}:")]


def leader_pid(store):
    holder, _ = store.leader()
    return int(holder.split(":")[-2]) if holder else None


def test_three_cron_processes_enqueue_each_tick_once(cron_processes, services):
    store = store_of(services)
    store.update("sample-tick", actor="test", overlap="allow")  # nobody runs the jobs here
    # Given three cron processes, one sweep ticking every second
    procs = cron_processes(3, CRON_SAMPLE_TICK="* * * * * *", CRON_LEADER_TTL_S=5)
    # When they have run for several ticks
    wait_for(lambda: len(tick_jobs(services, "sample-tick", "SAMPLE_ECHO")) >= 6, timeout=60,
             interval=0.2, message="six ticks")
    # (the standbys stop first: a leader that stops hands its lock to a standby at once)
    leader = leader_pid(store)
    for proc in sorted(procs, key=lambda p: p.pid == leader):
        assert stop_process(proc) == 0
    # Then every tick was enqueued by one process only, once, and is one job
    logged = enqueued_ticks(procs, "sample-tick")
    ticks = [tick for _, tick in logged]
    assert len(ticks) == len(set(ticks)) >= 6
    assert len({pid for pid, _ in logged}) == 1
    jobs = tick_jobs(services, "sample-tick", "SAMPLE_ECHO")
    assert sorted(j["idempotencyKey"] for j in jobs) == sorted(f"sweep:sample-tick:{t}" for t in ticks)
    # and exactly one process ever led; the others stood by
    leaders = [p.pid for p in procs if any("became cron leader" in e["message"] for e in log_entries(p))]
    assert leaders == [logged[0][0]]
    assert store.stats().get(("sample-tick", "duplicate"), 0) == 0


def test_sigkill_of_the_leader_lets_a_standby_fire_the_next_tick(cron_processes, services):
    store = store_of(services)
    store.update("sample-tick", actor="test", overlap="allow")
    procs = cron_processes(2, CRON_SAMPLE_TICK="* * * * * *", CRON_LEADER_TTL_S=2)
    # Given a leader that has enqueued ticks
    wait_for(lambda: len(tick_jobs(services, "sample-tick", "SAMPLE_ECHO")) >= 2, timeout=60,
             interval=0.2, message="ticks from the first leader")
    old = leader_pid(store)
    standby = next(p for p in procs if p.pid != old)
    # When the leader is killed without a chance to release its lock
    os.kill(old, signal.SIGKILL)
    killed_at = time.time()
    # Then the standby takes the lock once it expires
    wait_for(lambda: leader_pid(store) == standby.pid, timeout=30, interval=0.1,
             message="the standby to take the lock")
    took_over_s = time.time() - killed_at
    # and enqueues the next ticks itself
    def fired_by_standby():
        return [t for _, t in enqueued_ticks([standby], "sample-tick")
                if datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() > killed_at]

    wait_for(fired_by_standby, timeout=30, interval=0.2, message="a tick fired by the new leader")
    assert took_over_s < 30
    # and no tick became two jobs, whoever fired it
    ticks = [t for _, t in enqueued_ticks(procs, "sample-tick")]
    assert len(ticks) == len(set(ticks))
    jobs = tick_jobs(services, "sample-tick", "SAMPLE_ECHO")
    assert len(jobs) == len({j["idempotencyKey"] for j in jobs})
    # /health names the new leader
    cron = create_app(services=services).test_client().get("/health").get_json()["components"]["cron"]
    assert cron["status"] == "up" and cron["details"]["leader"].split(":")[-2] == str(standby.pid)


def test_disabling_a_sweep_over_rest_stops_its_ticks_and_enabling_resumes_them(cron_processes, services):
    client = create_app(services=services).test_client()
    store = store_of(services)
    for name in ("sample-tick", "sample-ping"):
        store.update(name, actor="test", overlap="allow")
    # Given a cron process with sample-ping ticking every second as a clock
    (proc,) = cron_processes(1, CRON_SAMPLE_PING="* * * * * *", CRON_LEADER_TTL_S=2)
    wait_for(lambda: leader_pid(store) == proc.pid, timeout=30, message="the process to lead")

    def count(sweep, job_type):
        return len(tick_jobs(services, sweep, job_type))

    def applied():
        """True once the running process has applied the latest schedule change."""
        info = store.replicas(60_000).get(store.leader()[0]) or {}
        return (info.get("appliedVersion") or 0) >= store.version()

    # When sample-tick's cron is changed over REST from once a minute to every second
    r = client.patch("/api/v1/schedules/sample-tick", json={"cron": "* * * * * *"},
                     headers={**AUTH, "X-Actor": "ops"})
    assert r.status_code == 200
    # Then the leader picks it up and ticks every second
    wait_for(lambda: count("sample-tick", "SAMPLE_ECHO") >= 2, timeout=30, interval=0.2,
             message="ticks on the new cron")

    # When it is disabled over REST
    r = client.patch("/api/v1/schedules/sample-tick", json={"enabled": False}, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["enabled"] is False
    wait_for(applied, timeout=15, interval=0.1, message="the change to reach the leader")
    before, pings = count("sample-tick", "SAMPLE_ECHO"), count("sample-ping", "PING")
    # Then the next ticks pass without a run (the clock sweep ticks twice meanwhile)
    wait_for(lambda: count("sample-ping", "PING") >= pings + 2, timeout=30, interval=0.2,
             message="two more clock ticks")
    assert count("sample-tick", "SAMPLE_ECHO") == before

    # When it is enabled again, it runs on the next tick
    r = client.patch("/api/v1/schedules/sample-tick", json={"enabled": True}, headers=AUTH)
    assert r.status_code == 200
    wait_for(lambda: count("sample-tick", "SAMPLE_ECHO") > before, timeout=30, interval=0.2,
             message="a tick after re-enabling")
    history = client.get("/api/v1/schedules/sample-tick/history", headers=AUTH).get_json()["items"]
    assert [(h["field"], h["to"], h["actor"]) for h in history[-3:]] == [
        ("cron", "* * * * * *", "ops"), ("enabled", False, "api"), ("enabled", True, "api")]
    listed = {s["name"]: s for s in client.get("/api/v1/schedules", headers=AUTH).get_json()["items"]}
    assert listed["sample-tick"]["lastRun"]["outcome"] == "enqueued"
    assert stop_process(proc) == 0


def test_invalid_cron_variable_stops_startup_naming_it(child_env):
    env = child_env("sample", CRON_SAMPLE_TICK="61 * * * *", CRON_EVENT_EXPIRATION="*/5 * *")
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "cron"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "CRON_SAMPLE_TICK must be a cron expression" in result.stderr
    assert "minute field '61'" in result.stderr
    assert "CRON_EVENT_EXPIRATION must be a cron expression" in result.stderr
