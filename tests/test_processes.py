"""The command line as an operator uses it: real processes, real HTTP, real signals."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from helpers import stop_process, wait_for

pytestmark = pytest.mark.slow


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def start_run_group(child_env, services, tmp_path, log_format):
    """``scheduler-service run`` on a free port, logging to a file; ``(process, port, log)``."""
    port = free_port()
    log = open(tmp_path / "run.log", "a+")  # appending: the child shares its offset
    env = child_env("sample", PORT=port, HOST="127.0.0.1",
                    REDIS_NAMESPACE=services.settings.redis_namespace, LOG_FORMAT=log_format)
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, port, log


def test_run_serves_http_runs_jobs_and_stops_everything_on_sigint(child_env, services, tmp_path):
    proc, port, log = start_run_group(child_env, services, tmp_path, "json")
    try:
        # Given the group is up: /health answers over HTTP
        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # not up, or slow to start
                return False

        wait_for(healthy, timeout=30, interval=0.2, message="/health of `run`")
        assert requests.get(f"http://127.0.0.1:{port}/admin/queues/", timeout=5).status_code == 200
        # and the group's cron process leads (its lock is the cron component of /health)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                 .json()["components"]["cron"]["status"] == "up",
                 timeout=30, interval=0.2, message="a cron leader in `run`")

        # When a job is sent, the worker process runs it (its JSON log says so)
        job, _ = send_job(services, "SAMPLE_ECHO", "c9", {"text": "over the wire"})

        def succeeded():
            log.seek(0)
            for line in log:
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("message") == "job succeeded" and entry.get("job_id") == job["id"]:
                        return entry
            return None

        entry = wait_for(succeeded, timeout=20, interval=0.2, message="the job's log line")
        assert entry["job_type"] == "SAMPLE_ECHO" and entry["campaign_id"] == "c9"

        # When SIGINT (Ctrl-C) reaches the group leader
        log.seek(0)
        started = dict(re.findall(r"started ([\w-]+) \(pid (\d+)\)", log.read()))
        assert {"web", "worker", "cron", "subscriber"} <= set(started)
        pgids = [int(p) for p in started.values()]
        proc.send_signal(signal.SIGINT)
        # Then it exits 0 and every process it started is gone
        assert proc.wait(40) == 0
        for pgid in pgids:
            wait_for(lambda: not group_alive(pgid), timeout=10, message=f"group {pgid} to end")
    finally:
        stop_process(proc)
        log.close()


def test_web_exits_nonzero_naming_every_bad_variable(child_env):
    env = child_env(SCHEDULER_ENV="production", QUEUE_CONCURRENCY="abc", PORT="x")
    env.pop("REDIS_URL")
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "web"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    for name in ("QUEUE_CONCURRENCY", "PORT", "REDIS_URL", "API_SERVICE_ACCOUNT_TOKEN"):
        assert name in result.stderr
    assert result.stderr.count("invalid configuration") == 1


@pytest.mark.parametrize("command", ["web", "worker", "run", "dev", "plugins", "subscriber", "cron"])
def test_every_command_has_help(command):
    result = subprocess.run([sys.executable, "-m", "scheduler_service", command, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 3


def test_children_of_a_killed_run_group_stop_by_themselves(child_env, services, tmp_path):
    proc, port, log = start_run_group(child_env, services, tmp_path, "text")
    try:
        # Given a run group whose roles have all started
        def started():
            log.seek(0)
            found = dict(re.findall(r"started ([\w-]+) \(pid (\d+)\)", log.read()))
            return found if {"web", "worker", "cron", "subscriber"} <= set(found) else None

        pgids = [int(p) for p in wait_for(started, timeout=30, message="every role").values()]
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok
                 if _listening(port) else False, timeout=30, message="/health")
        # When the supervisor is SIGKILLed (it cannot stop anything)
        proc.kill()
        proc.wait(10)
        # Then every role notices and stops, and the port is free again
        for pgid in pgids:
            wait_for(lambda: not group_alive(pgid), timeout=45, interval=0.2,
                     message=f"group {pgid} to end after its supervisor died")
        assert not _listening(port)
    finally:
        for pgid in locals().get("pgids", []):
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        stop_process(proc)
        log.close()


def _listening(port):
    from helpers import port_open

    return port_open(port)


@pytest.mark.parametrize("command", ["web", "worker", "cron", "subscriber"])
@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport/0", "redis:typo"])
def test_every_role_refuses_a_bad_redis_url_naming_it(child_env, command, url):
    env = child_env(REDIS_URL=url)
    result = subprocess.run([sys.executable, "-m", "scheduler_service", command], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "REDIS_URL must be a URL" in result.stderr and "Traceback" not in result.stderr


def test_web_refuses_a_host_it_cannot_listen_on_naming_it(child_env):
    env = child_env(HOST="999.1.1.1")
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "web"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "HOST must be an IP address" in result.stderr


def test_web_refuses_a_taken_port_at_once_naming_host_and_port(child_env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = child_env(HOST="127.0.0.1", PORT=port)
        result = subprocess.run([sys.executable, "-m", "scheduler_service", "web"], env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on HOST='127.0.0.1' PORT={port}" in result.stderr
    assert "web listening" not in result.stderr


def test_an_embedded_redis_stops_when_the_process_that_started_it_is_killed(tmp_path):
    code = ("import sys, time\n"
            "from scheduler_service.embedded_redis import EmbeddedRedis\n"
            "server = EmbeddedRedis(sys.argv[1], persist=False).start()\n"
            "print(server.process.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "redis")],
                              stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _running(pid)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not _running(pid), timeout=10, message="redis-server to stop")
    finally:
        stop_process(parent)
        parent.stdout.close()


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_mid_job_lets_the_job_finish_and_exits_0(child_env, services):
    env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace,
                    LOG_FORMAT="text")
    worker = subprocess.Popen([sys.executable, "-m", "scheduler_service", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Given a worker in the middle of a 2-second job
        job, _ = send_job(services, "SAMPLE_SLEEP", "c1", {"seconds": 2})
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "running", timeout=30,
                 message="the job to start")
        # When it is told to stop
        worker.send_signal(signal.SIGTERM)
        # Then it finishes the job first, records it once, and exits 0
        assert worker.wait(40) == 0
    finally:
        stop_process(worker)
    done = services.jobs.get(job["id"])
    assert done["state"] == "succeeded" and done["attempts"] == 1
    assert done["result"] == {"slept": 2}


def test_no_secret_reaches_the_logs_health_or_metrics(child_env, services, tmp_path,
                                                      reference_api):
    secrets = {"SCHEDULER_API_TOKEN": "sched-token-7f3a9c", "ADMIN_DASHBOARD_PASSWORD": "dash-pw-51e0",
               "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook-secret-93b1"}
    port = free_port()
    log = open(tmp_path / "run.log", "a+")  # appending: the child shares its offset
    env = child_env("sample", PORT=port, HOST="127.0.0.1", LOG_LEVEL="DEBUG",
                    REDIS_NAMESPACE=services.settings.redis_namespace, ADMIN_DASHBOARD_USER="ops",
                    **reference_api.client_env(), **secrets)
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {secrets['SCHEDULER_API_TOKEN']}"}
    try:
        wait_for(lambda: _listening(port) and requests.get(f"{base}/health", timeout=2).ok,
                 timeout=30, message="/health")
        # Given a stack that has done some work, refused a wrong token and called the API
        camp = reference_api.make_campaign()["id"]
        job = requests.post(f"{base}/api/v1/jobs", json={"type": "EVENT_EXPIRATION",
                                                         "campaignId": camp}, headers=auth).json()
        assert requests.get(f"{base}/api/v1/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=30,
                 message="the job")
        bodies = [requests.get(f"{base}/health", timeout=5).text,
                  requests.get(f"{base}/metrics", timeout=5).text]
    finally:
        stop_process(proc)
        log.seek(0)
        written = log.read()
        log.close()
    # Then none of the secrets appears anywhere a person or a scraper reads
    assert "job succeeded" in written or "expired" in written
    for value in [*secrets.values(), reference_api.key]:
        for text in [written, *bodies]:
            assert value not in text
