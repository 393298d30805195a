"""Faults: Redis not there when the processes start, Redis lost while they run, Redis lost
while a worker stops. Real role processes on a redis-server of their own (the test starts
and stops it), logging JSON lines that the tests read.
"""

import json
import signal
import time
from datetime import datetime, timezone

import pytest
import requests

from scheduler_service.config import load_settings
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import EmbeddedRedis, free_port
from scheduler_service.healthcheck import check
from scheduler_service.services import build_services
from scheduler_service.worker import EXIT_ABANDONED
from helpers import start_role, stop_roles, wait_for
from reference_fixtures import start_reference_api, stop_reference_api

pytestmark = pytest.mark.slow

PASSWORD = "pw-never-logged"
#: The long-running roles of ``scheduler-service`` (``run`` starts the first four).
ROLES = ["web", "worker", "cron", "subscriber", "pump"]


def records(proc) -> list[dict]:
    """Every JSON line the process wrote so far."""
    proc.log.seek(0)
    out = []
    for line in proc.log:
        if line.startswith("{") and line.endswith("\n"):  # not a line being written
            out.append(json.loads(line))
    return out


def attempts(proc) -> list[dict]:
    return [r for r in records(proc) if r.get("logger") == "scheduler_service.redis_client"
            and "next_attempt_s" in r]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own, not started: ``server.start()`` / ``.stop()``."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True, password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def procs():
    started = []
    yield started
    stop_roles(started)


def since(proc, moment: datetime) -> list[dict]:
    """The JSON lines the process wrote at or after ``moment``."""
    return [r for r in records(proc) if datetime.fromisoformat(r["timestamp"]) >= moment]


@pytest.fixture
def own_reference_api(tmp_path):
    """A reference API of the test's own, empty: the cron's sweeps find no campaign of
    another test, so the only jobs the roles run are the test's."""
    api = start_reference_api(tmp_path / "reference-api", "--seed", "none")
    yield api
    stop_reference_api(api)


def test_every_role_waits_for_redis_at_start_up_then_works_and_logs_an_outage_once(
        own_redis, procs, child_env, own_reference_api, tmp_path):
    reference_api = own_reference_api
    web_port = free_port()
    env = child_env("sample", REDIS_URL=own_redis.url, LOG_FORMAT="json", LOG_LEVEL="INFO",
                    **reference_api.client_env(),
                    CRON_LEADER_TTL_S=3, SUBSCRIBER_RECONNECT_MAX_MS=1000)
    commands = {"worker": ["worker", "--threads", "2"], "cron": ["cron"],
                "subscriber": ["subscriber"], "pump": ["pump"],
                "web": ["web", "--host", "127.0.0.1", "--port", str(web_port),
                        "--workers", "1", "--threads", "2"]}
    # Given every role started while nothing listens on Redis's port
    by_role = {}
    for role in ROLES:
        by_role[role] = start_role(commands[role], env, tmp_path / f"{role}.log")
        procs.append(by_role[role])
    # Then each retries, one WARNING line per attempt naming the role, where Redis is
    # (without its password), the attempt and the next wait
    for role, proc in by_role.items():
        wait_for(lambda: len(attempts(proc)) >= 3, timeout=30, message=f"{role} to retry 3 times")
    for role, proc in by_role.items():
        lines = attempts(proc)
        assert [r["attempt"] for r in lines] == list(range(1, len(lines) + 1))
        for r in lines:
            assert r["level"] == "WARNING" and r["role"] == role
            assert f"127.0.0.1:{own_redis.port}" in r["redis"] and PASSWORD not in r["redis"]
            assert r["next_attempt_s"] > 0 and f"attempt {r['attempt']}" in r["message"]
        assert [r["next_attempt_s"] for r in lines[:3]] == [0.5, 1.0, 2.0]
        # and nothing else at WARNING or above: one line per attempt, no tracebacks
        noisy = [r for r in records(proc) if r["level"] in ("WARNING", "ERROR", "CRITICAL")
                 and r not in lines]
        assert noisy == [], (role, noisy)
        assert all(PASSWORD not in json.dumps(r) for r in records(proc))
        assert proc.poll() is None

    # When Redis starts on that port
    own_redis.start()
    began = time.monotonic()
    settings = load_settings({**{k: v for k, v in env.items() if k.isupper()}})
    services = build_services(settings)
    try:
        # Then every role starts working, without a restart
        for role in ("worker", "cron", "subscriber"):
            wait_for(lambda: check(role, settings, max_age_s=15).healthy, timeout=30,
                     message=f"{role}'s health check")
        wait_for(lambda: _get(f"http://127.0.0.1:{web_port}/api/v1/jobs?limit=1",
                              settings.scheduler_api_token) == 200,
                 timeout=30, message="the web API to answer")
        job, _ = send_job(services, "PING", "SYSTEM")
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=30,
                 message="a PING job to run")
        # a due timer is promoted (by the cron's or the pump's pump) and runs
        timed, _ = send_job(services, "PING", "SYSTEM", run_at_ms=int(time.time() * 1000) + 500)
        wait_for(lambda: services.jobs.get(timed["id"])["state"] == "succeeded", timeout=30,
                 message="a timed PING job to run")
        working_s = time.monotonic() - began
        print(f"\nstart-up attempts by role: { {r: len(attempts(p)) for r, p in by_role.items()} }")
        for role, proc in by_role.items():
            assert proc.poll() is None, role
            assert any("reachable after" in r["message"] for r in records(proc)), role
        print(f"\nroles working {working_s:.1f}s after Redis started")

        # When Redis goes away for 6 s (longer than a worker heartbeat) while they run
        outage_began = datetime.now(timezone.utc)
        own_redis.stop()
        down_at = time.monotonic()
        wait_for(lambda: any("lost Redis" in r["message"] for r in records(by_role["worker"])),
                 timeout=10, message="the worker to notice")
        time.sleep(max(0.0, 6 - (time.monotonic() - down_at)))  # the outage itself
        own_redis.start()
        for role in ("worker", "pump"):
            wait_for(lambda: any("Redis is back" in r["message"]
                                 for r in since(by_role[role], outage_began)),
                     timeout=30, message=f"the {role} to say Redis is back")
        job, _ = send_job(services, "PING", "SYSTEM")
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=30,
                 message="a PING job after the outage")
        # Then the worker and the pump each said so once: one line lost, one line back
        # (lines about the jobs run meanwhile, such as the subscriber's catch-up, aside)
        counts = {}
        for role, proc in by_role.items():
            during = [r for r in since(proc, outage_began) if "job_id" not in r]
            counts[role] = len(during)
            if role in ("worker", "pump"):
                lost = [r for r in during if "lost Redis" in r["message"]]
                back = [r for r in during if "Redis is back" in r["message"]]
                assert len(lost) == 1 and len(back) == 1, (role, during)
                assert len(during) <= 4, (role, [r["message"] for r in during])
        print(f"log lines written over a 6 s Redis outage, by role: {counts}")
    finally:
        services.close()


def _get(url, token):
    try:
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=3).status_code
    except requests.RequestException:
        return None


def test_a_worker_that_cannot_hand_back_a_job_at_shutdown_names_it_and_exits_non_zero(
        own_redis, procs, child_env, tmp_path):
    own_redis.start()
    env = child_env("sample", REDIS_URL=own_redis.url, LOG_FORMAT="json", SHUTDOWN_GRACE_S=2)
    settings = load_settings({k: v for k, v in env.items() if k.isupper()})
    services = build_services(settings)
    try:
        # Given a worker running a job that outlasts the shutdown grace
        worker = start_role(["worker", "--threads", "1"], env, tmp_path / "worker.log")
        procs.append(worker)
        job, _ = send_job(services, "SAMPLE_SLEEP", "c1", {"seconds": 20})
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "running", timeout=30,
                 message="the job to start")
        # When it is told to stop, and Redis goes away during the grace
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: any(r["message"].startswith("stopping: 1 job(s) in progress")
                             for r in records(worker)), timeout=10, message="the stop to begin")
        own_redis.stop()
        # Then it cannot hand the job back, says which job it left, and exits non-zero
        assert worker.wait(30) == EXIT_ABANDONED
        errors = [r for r in records(worker) if r["level"] == "ERROR" and "abandoned" in r]
        assert len(errors) == 1 and errors[0]["abandoned"] == [job["id"]]
        assert job["id"] in errors[0]["message"]
    finally:
        services.close()
