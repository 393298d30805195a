"""`scheduler-service dev` (what `make dev` runs) and the stand-alone `pump` role, as real
processes: an embedded Redis, the seeded reference API and the whole stack, stopped by Ctrl-C."""

import json
import re
import signal
import subprocess
import sys

import pytest
import redis as redis_lib
import requests

from helpers import port_open, start_role, stop_process, stop_roles, wait_for
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import now_ms
from scheduler_service.wire import queue_stats

pytestmark = pytest.mark.slow


def _ok(url, **kwargs):
    try:
        return requests.request(kwargs.pop("method", "GET"), url, timeout=2, **kwargs).ok
    except requests.ConnectionError:
        return False


def test_dev_serves_the_stack_on_an_embedded_redis_and_the_demo_api_and_ctrl_c_stops_it(
        child_env, tmp_path):
    web_port, api_port = free_port(), free_port()
    env = child_env("sample", DATA_DIR=tmp_path / "data", HOST="127.0.0.1", PORT=web_port,
                    REFERENCE_API_PORT=api_port, QUEUE_PROCESSES=2, LOG_FORMAT="text")
    # no Redis configured: dev brings its own
    for name in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_NAMESPACE", "SCHEDULER_API_TOKEN",
                 "REFERENCE_API_KEY", "API_URL", "API_SERVICE_ACCOUNT_TOKEN"):
        env.pop(name, None)
    log = open(tmp_path / "dev.log", "a+")  # appending: the child shares its offset
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "dev"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{web_port}"
    auth = {"Authorization": "Bearer dev-token"}
    try:
        # Given the banner, which names every URL and the embedded Redis it started
        def banner():
            log.seek(0)
            text = log.read()
            return text if "Press Ctrl-C to stop everything." in text else None

        text = wait_for(banner, timeout=30, interval=0.2, message="the dev banner")
        assert f"health      {base}/health" in text
        assert "(Authorization: Bearer dev-token)" in text
        redis_url = re.search(r"redis +(redis://\S+) +\(embedded, data in (\S+)\)", text)
        assert redis_url and redis_url.group(2).startswith(str(tmp_path / "data"))
        assert f"campaign API http://127.0.0.1:{api_port}/graphql" in text

        # When the stack is up: the web app, and the reference API seeded with the demo
        wait_for(lambda: _ok(f"{base}/health"), timeout=60, interval=0.3, message="/health of dev")
        api = requests.post(f"http://127.0.0.1:{api_port}/graphql",
                            json={"query": "{ campaigns { id name } }"},
                            headers={"x-api-key": "dev-key"}, timeout=10).json()
        campaigns = api["data"]["campaigns"]
        assert len(campaigns) == 2, api

        # Then a job sent over REST runs against that API in one of two worker processes
        job = requests.post(f"{base}/api/v1/jobs", headers=auth, timeout=10, json={
            "type": "EVENT_EXPIRATION", "campaignId": campaigns[0]["id"]}).json()
        wait_for(lambda: requests.get(f"{base}/api/v1/jobs/{job['id']}", headers=auth,
                                      timeout=5).json()["state"] == "succeeded",
                 timeout=60, interval=0.3, message="the dev stack to run a job")
        client = redis_lib.Redis.from_url(redis_url.group(1))
        try:
            workers = wait_for(lambda: [json.loads(v) for v in
                                        client.hgetall("scheduler:workers").values()]
                               if client.hlen("scheduler:workers") >= 2 else None,
                               timeout=30, message="two worker heartbeats")
        finally:
            client.close()
        assert len({w["pid"] for w in workers}) == 2

        # When Ctrl-C reaches dev
        proc.send_signal(signal.SIGINT)
        # Then it exits 0, and the web app, the reference API and the embedded Redis are gone
        assert proc.wait(60) == 0
        redis_port = int(redis_url.group(1).rsplit(":", 1)[1].split("/")[0])
        for port in (web_port, api_port, redis_port):
            wait_for(lambda: not port_open(port), timeout=10, message=f"port {port} to close")
    finally:
        stop_process(proc)
        log.close()


def test_the_pump_role_promotes_a_due_timer_and_stops_on_sigterm(child_env, services, tmp_path):
    # Given a job due in a second, and no pump but the role under test
    job, _ = send_job(services, "SAMPLE_ECHO", "c1", {"text": "later"}, run_at_ms=now_ms() + 1000)
    assert services.jobs.get(job["id"])["state"] == "scheduled"
    pump = start_role(["pump"], child_env("sample", TIMER_PUMP_INTERVAL_MS=100, LOG_FORMAT="text",
                                          REDIS_NAMESPACE=services.settings.redis_namespace),
                      tmp_path / "pump.log")
    try:
        # When its time comes, the pump process moves it into its queue
        wait_for(lambda: services.jobs.get(job["id"])["state"] == "queued", timeout=30,
                 interval=0.1, message="the pump to promote the timer")
        stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
        assert stats["totals"]["ready"] == 1, stats
        # Then SIGTERM stops it cleanly
        pump.send_signal(signal.SIGTERM)
        assert pump.wait(30) == 0
        pump.log.seek(0)
        assert "wall-timer pump running every 100 ms at most" in pump.log.read()
    finally:
        stop_roles([pump])
