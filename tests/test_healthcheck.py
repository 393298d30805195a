"""``scheduler-service healthcheck --role ROLE``, the check compose runs in every container,
run for real: against live role processes on the real Redis and the real reference API."""

import subprocess
import sys
import time

import pytest

from scheduler_service.embedded_redis import free_port
from scheduler_service.healthcheck import check
from helpers import stop_process, wait_for

pytestmark = pytest.mark.slow

ROLES = ("web", "worker", "cron", "subscriber")


def healthcheck(env, role, *extra):
    """``(exit code, the one line printed)``."""
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "healthcheck", "--role",
                             role, *extra], env=env, capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and not result.stderr, (result.stdout, result.stderr)
    return result.returncode, lines[0]


def test_every_role_is_healthy_while_it_runs_and_unhealthy_when_it_does_not(child_env, services,
                                                                            tmp_path):
    port = free_port()
    env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace, PORT=port,
                    HOST="127.0.0.1", LOG_FORMAT="json", SHUTDOWN_GRACE_S=2)
    # Given nothing runs: every role is unhealthy, and says why
    for role in ROLES:
        code, line = healthcheck(env, role)
        assert code == 1 and line.startswith(f"unhealthy: {role}: "), line
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        # When `run` starts every role, each becomes healthy
        for role in ROLES:
            wait_for(lambda: healthcheck(env, role)[0] == 0, timeout=60, interval=0.5,
                     message=f"{role} to be healthy")
        lines = {role: healthcheck(env, role)[1] for role in ROLES}
        assert "/health answered 200" in lines["web"]
        assert "worker process(es) alive" in lines["worker"]
        assert " is leader" in lines["cron"]
        assert "is connected" in lines["subscriber"]
        # A heartbeat older than its limit is a dead process (the clock moved on a minute)
        later = lambda: int(time.time() * 1000) + 60_000  # noqa: E731
        for role in ("worker", "cron", "subscriber"):
            verdict = check(role, services.settings, now=later)
            assert not verdict.healthy and "last heartbeat 6" in verdict.reason, verdict
            # and another host's process is not this host's
            assert not check(role, services.settings, host="another-host").healthy
        # When the group stops
        assert stop_process(proc, timeout=30) == 0
        # Then every role is unhealthy again (each removed its heartbeat on the way out)
        for role in ROLES:
            code, line = healthcheck(env, role)
            assert code == 1, line
            assert "did not answer" in line if role == "web" else "has written a heartbeat" in line
    finally:
        stop_process(proc)
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
