"""``scheduler-service healthcheck --role ROLE``, the check compose runs in every container,
run for real: against every compose service started as a process on this machine (no Docker
engine runs here), on the real Redis, and against the real reference API."""

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

import composefile
from scheduler_service.config import FIELDS
from scheduler_service.embedded_redis import free_port
from scheduler_service.healthcheck import check
from helpers import start_role, stop_process, stop_roles, wait_for

pytestmark = pytest.mark.slow

SETTINGS = {f.env for f in FIELDS}


def run_check(env, argv):
    """Run a health check command (``healthcheck --role ROLE``): ``(exit code, its line)``."""
    result = subprocess.run([sys.executable, "-m", "scheduler_service", *argv], env=env,
                            capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and not result.stderr, (result.stdout, result.stderr)
    return result.returncode, lines[0]


def healthcheck(env, role):
    return run_check(env, ["healthcheck", "--role", role])


def local(service, *, redis_url, namespace, web_port, api_port, db_path):
    """A compose service's environment and command for a process on this machine: the same
    values, with the containers' addresses replaced by local ones (loopback only)."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS and not k.startswith("CRON_")}
    env.update(service["environment"])
    env.update({
        "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace,
        "API_URL": env["API_URL"].replace("reference-api:9264", f"127.0.0.1:{api_port}"),
        # the image sets HOST=0.0.0.0 and PORT=9266; here the web app binds loopback only
        "HOST": "127.0.0.1", "PORT": str(web_port), "REFERENCE_API_PORT": str(api_port),
        "LOG_LEVEL": "warning",
    })
    if "REFERENCE_API_DB" in env:
        env["REFERENCE_API_DB"] = str(db_path)
    command = ["127.0.0.1" if arg == "0.0.0.0" else arg for arg in service["command"]]
    return env, command


def test_the_compose_services_run_directly_are_healthy_work_and_stop_cleanly(services, tmp_path):
    """``docker compose --profile demo up`` without Docker: every service of the file, as many
    replicas as it declares, with its own command, environment and health check."""
    web_port, api_port = free_port(), free_port()
    declared = {name: s for name, s in composefile.services().items() if name != "redis"}
    assert "reference-api" in declared
    started = []  # (name, process, env, health check argv)
    try:
        for name, service in declared.items():
            env, command = local(service, redis_url=services.settings.redis_url,
                                 namespace=services.settings.redis_namespace, web_port=web_port,
                                 api_port=api_port, db_path=tmp_path / "reference.sqlite3")
            check_argv = service["healthcheck"]["test"][2:]  # after CMD scheduler-service
            for replica in range(service.get("deploy", {}).get("replicas", 1)):
                # Given nothing of it runs yet, its health check fails
                if replica == 0:
                    assert run_check(env, check_argv)[0] == 1, name
                proc = start_role(command, env, tmp_path / f"{name}-{replica}.log")
                started.append((name, proc, env, check_argv))
        # When they have started, every health check passes
        for name, proc, env, check_argv in started:
            wait_for(lambda: proc.poll() is None and run_check(env, check_argv)[0] == 0,
                     timeout=90, interval=0.5, message=f"{name} to be healthy")
        lines = {name: run_check(env, argv)[1] for name, _, env, argv in started}
        print("\n" + "\n".join(f"{n}: {line}" for n, line in lines.items()))
        assert "/health answered 200" in lines["web"]
        assert "2 worker process(es) alive" in lines["worker"]
        assert " is leader" in lines["cron"] or " is standby (leader: " in lines["cron"]
        assert "is connected" in lines["subscriber"]
        # and the system works: a job sent over the REST API with compose's token reads the
        # demo campaigns from the reference API and expires their overdue events
        base = f"http://127.0.0.1:{web_port}"
        auth = {"Authorization": f"Bearer {composefile.FILLED_IN['SCHEDULER_API_TOKEN']}"}
        job = requests.post(f"{base}/api/v1/jobs", headers=auth, timeout=10,
                            json={"type": "EVENT_EXPIRATION", "campaignId": "SYSTEM"}).json()
        wait_for(lambda: requests.get(f"{base}/api/v1/jobs/{job['id']}", headers=auth,
                                      timeout=10).json()["state"] == "succeeded",
                 timeout=60, interval=0.3, message="the expiration job")

        def expired_for_a_campaign():
            items = requests.get(f"{base}/api/v1/jobs", headers=auth, timeout=10,
                                 params={"type": "EVENT_EXPIRATION"}).json()["items"]
            return [j for j in items if j["campaignId"] != "SYSTEM" and j["state"] == "succeeded"
                    and j["result"].get("expired", 0) > 0]

        wait_for(expired_for_a_campaign, timeout=60, interval=0.3,
                 message="a campaign's events to be expired")
        # When every service gets SIGTERM, each exits 0
        for _, proc, _, _ in started:
            proc.send_signal(signal.SIGTERM)
        for name, proc, _, _ in started:
            assert proc.wait(60) == 0, (name, tail(proc))
        # and every health check fails again
        for name, _, env, check_argv in started:
            assert run_check(env, check_argv)[0] == 1, name
    finally:
        stop_roles([proc for _, proc, _, _ in started])


def tail(proc):
    proc.log.seek(0)
    return proc.log.read()[-2000:]


def test_a_heartbeat_past_its_age_or_of_another_host_is_not_healthy(child_env, services, tmp_path):
    port = free_port()
    env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace, PORT=port,
                    HOST="127.0.0.1", LOG_FORMAT="json", SHUTDOWN_GRACE_S=2)
    log = open(tmp_path / "run.log", "a+")  # appending: the child shares its offset
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        # Given every role running and healthy on this host
        for role in ("worker", "cron", "subscriber"):
            wait_for(lambda: check(role, services.settings).healthy, timeout=60, interval=0.3,
                     message=f"{role} to be healthy")
            # When the clock has moved on a minute without a heartbeat, it is not healthy
            later = lambda: int(time.time() * 1000) + 60_000  # noqa: E731
            verdict = check(role, services.settings, now=later)
            assert not verdict.healthy and "last heartbeat 6" in verdict.reason, verdict
            # and another host's check does not count this host's process
            verdict = check(role, services.settings, host="another-host")
            assert not verdict.healthy and "another-host" in verdict.reason
    finally:
        assert stop_process(proc, timeout=30) == 0
        log.close()


def test_the_reference_api_check_asks_its_health_endpoint(child_env, reference_api):
    code, line = healthcheck(child_env(REFERENCE_API_PORT=reference_api.port), "reference-api")
    assert code == 0 and "answered 200" in line
    code, line = healthcheck(child_env(REFERENCE_API_PORT=free_port()), "reference-api")
    assert code == 1 and "did not answer" in line


def test_a_configuration_the_role_would_refuse_is_unhealthy_in_one_line(child_env):
    env = child_env(SCHEDULER_ENV="production")
    env.pop("REDIS_URL")
    code, line = healthcheck(env, "worker")
    assert code == 1 and "REDIS_URL is required in production" in line
