"""The deployment files parse and agree with the CLI and the configuration."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from scheduler_service.config import FIELDS

ROOT = Path(__file__).resolve().parent.parent


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_redis_web_and_worker_from_one_image():
    services = compose()["services"]
    assert {"redis", "web", "worker"} <= set(services)
    for role in ("web", "worker"):
        assert services[role]["build"] == "."
        assert services[role]["command"] == [role]
        assert services[role]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["web"]["ports"] == ["9266:9266"]


def test_compose_environment_names_only_known_variables():
    known = {f.env for f in FIELDS}
    for role in ("web", "worker"):
        env = compose()["services"][role]["environment"]
        assert set(env) <= known, set(env) - known
        assert env["SCHEDULER_ENV"] == "production" and env["REDIS_URL"].startswith("redis://redis:")
        # production refuses to start without these, so compose must demand them
        for secret in ("API_SERVICE_ACCOUNT_TOKEN", "SCHEDULER_API_TOKEN"):
            assert ":?" in env[secret], secret


def test_compose_commands_exist_in_the_cli():
    for role in ("web", "worker"):
        command = compose()["services"][role]["command"][0]
        result = subprocess.run([sys.executable, "-m", "scheduler_service", command, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, command


def test_dockerfile_installs_the_service_and_its_plugins_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert "pip install ." in text and "plugins/" in text
    assert 'ENTRYPOINT ["scheduler-service"]' in text
    assert "USER scheduler" in text
