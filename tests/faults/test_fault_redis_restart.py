"""Fault: Redis restarted (append-only file on, ``appendfsync everysec``) under work.

A redis-server of the test's own holds 1,000 timers due a few seconds ahead and 200 queued
jobs that a worker is busy with; worker, cron and subscriber processes run. The test shuts
Redis down (SHUTDOWN: it writes its append-only file and exits) and starts it again on the
same port and data directory. Every job is a SAMPLE_MARK, which appends its job id to a
file: executions are counted there, outside the Redis that restarts.
"""

import time
from collections import Counter

import pytest
import redis as redis_lib

from scheduler_service.config import load_settings
from scheduler_service.dispatch import build_job
from scheduler_service.embedded_redis import EmbeddedRedis, free_port
from scheduler_service.healthcheck import check
from scheduler_service.jobstore import now_ms
from scheduler_service.services import build_services
from helpers import start_role, stop_roles, wait_for

pytestmark = pytest.mark.slow

TIMERS = 1000
QUEUED = 200
ROLES = ("worker", "cron", "subscriber")


def restart(server: EmbeddedRedis) -> float:
    """SHUTDOWN (the append-only file flushed), then the same server again; seconds down."""
    client = redis_lib.Redis(port=server.port)
    began = time.monotonic()
    client.shutdown()  # redis-py takes the closed connection for the answer
    client.close()
    server.process.wait(30)
    server.start()
    return time.monotonic() - began


def make(services, count, payload, run_at_ms) -> list[str]:
    """``count`` SAMPLE_MARK jobs created in a few Lua calls; their ids."""
    jobs = [build_job(services.registry, "SAMPLE_MARK", "c1", payload) for _ in range(count)]
    assert services.jobs.create_many((job, run_at_ms, None) for job in jobs) == count
    return [job["id"] for job in jobs]


def test_a_redis_restart_loses_no_timer_or_job_and_runs_none_twice(
        child_env, reference_api, tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True,
                           args=["--appendfsync", "everysec"]).start()
    marks = tmp_path / "marks.txt"
    marks.touch()
    env = child_env("sample", REDIS_URL=server.url, LOG_FORMAT="json",
                    **reference_api.client_env())
    settings = load_settings(env)
    services = build_services(settings)
    procs = []
    try:
        # Given a worker, a cron (its timer pump) and a subscriber running
        for role in ROLES:
            command = [role, "--threads", "4"] if role == "worker" else [role]
            procs.append(start_role(command, env, tmp_path / f"{role}.log"))
        for role in ROLES:
            wait_for(lambda: check(role, settings, max_age_s=15).healthy, timeout=30,
                     message=f"{role} to be healthy")
        # 1,000 timers due a few seconds from now
        due = now_ms() + 4000
        timed = make(services, TIMERS, {"path": str(marks)}, due)
        # and 200 jobs queued, which the worker is part-way through (4 threads, 50 ms each)
        queued = make(services, QUEUED, {"path": str(marks), "seconds": 0.05}, None)
        wait_for(lambda: len(marks.read_text().splitlines()) >= 20, timeout=30,
                 message="the worker to be under way")
        # When Redis restarts, the timers still pending and queued jobs not yet run
        pipe = services.redis.pipeline(transaction=False)
        for job_id in timed:
            pipe.zscore(services.jobs.wall_timers, job_id)
        pending_timers = sum(score is not None for score in pipe.execute())
        states = Counter(services.jobs.get(j)["state"] for j in queued)
        assert pending_timers == TIMERS and states["queued"] > 0, (pending_timers, states)
        pids = [p.pid for p in procs]
        down_s = restart(server)
        restarted = time.monotonic()
        # Then every process reconnects by itself and every job runs, once
        jobs = timed + queued
        succeeded = lambda ids: all(services.jobs.get(j)["state"] == "succeeded"  # noqa: E731
                                    for j in ids)
        wait_for(lambda: succeeded(queued), timeout=60, interval=0.1,
                 message="the 200 queued jobs to succeed")
        queued_done_s = time.monotonic() - restarted
        wait_for(lambda: succeeded(timed), timeout=60, interval=0.1,
                 message="the 1,000 timed jobs to succeed")
        timers_done_s = (now_ms() - due) / 1000
        for role in ROLES:
            wait_for(lambda: check(role, settings, max_age_s=15).healthy, timeout=30,
                     message=f"{role} to be healthy again")
        recovery_s = time.monotonic() - restarted
        assert [p.pid for p in procs] == pids and all(p.poll() is None for p in procs)
    finally:
        stop_roles(procs)
        services.close()
        server.stop()

    runs = Counter(line.split()[0] for line in marks.read_text().splitlines())
    lost = [j for j in jobs if runs[j] == 0]
    twice = [j for j in jobs if runs[j] > 1]
    print(f"\nRedis restart (down {down_s:.2f}s) with {pending_timers} timers and "
          f"{states['queued']} of {QUEUED} jobs still queued: executed once "
          f"{sum(runs[j] == 1 for j in jobs)}, lost {len(lost)}, duplicated {len(twice)}; "
          f"the queued jobs all done {queued_done_s:.1f}s after the restart, the timers "
          f"{timers_done_s:.1f}s after they fell due, every process healthy "
          f"{recovery_s:.1f}s after the restart")
    assert lost == [] and twice == []
    assert set(runs) == set(jobs)
