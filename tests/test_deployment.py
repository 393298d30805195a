"""The deployment files agree with the code: every role ``run`` starts is a compose service,
commands and health checks are real CLI commands, production's required settings reach
every role, Redis keeps an append-only file, and the demo profile is a complete system.

No Docker engine runs here, so compose's interpolation is done by ``composefile``, as compose
does it, and the commands are run directly (``test_healthcheck`` runs the services).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler_service.config import FIELDS, load_settings
from scheduler_service.errors import ConfigError
from scheduler_service.healthcheck import ROLES as HEALTH_ROLES
from scheduler_service.supervisor import stop_timeout_s
from composefile import (
    COMPOSE, ENV_EXAMPLE, FILLED_IN, VARIABLE, MissingVariable, compose, ours, services,
)

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scheduler_service", *args],
                          capture_output=True, text=True, timeout=60)


def roles_of_run(monkeypatch):
    """``{role: argv after the CLI}`` of every process `scheduler-service run` starts, taken
    from the code itself (its supervisor is replaced by one that only records)."""
    from scheduler_service import cli, supervisor

    started = {}

    class Recorder:
        def __init__(self, commands, **kwargs):
            started.update(commands)

        def run(self):
            return 0

    monkeypatch.setattr(supervisor, "Supervisor", Recorder)
    assert cli._run_group(load_settings({}), env=None) == 0
    prefix = supervisor.self_command()
    assert all(argv[:len(prefix)] == prefix for argv in started.values())
    return {name: argv[len(prefix):] for name, argv in started.items()}


def test_every_role_run_starts_is_a_service_with_the_same_command(monkeypatch):
    roles = roles_of_run(monkeypatch)
    assert {"web", "worker", "cron", "subscriber"} <= set(roles)
    running = ours(services())
    for role, argv in roles.items():
        assert role in running, f"`run` starts {role}, compose does not"
        assert running[role]["command"] == argv, role
        assert "profiles" not in running[role], f"{role} must run without a profile"


def test_every_command_and_health_check_of_a_service_exists_in_the_cli():
    for name, service in ours(services()).items():
        result = run_cli(*service["command"], "--help")
        assert result.returncode == 0, (name, result.stderr)
        test = service["healthcheck"]["test"]
        assert test[:4] == ["CMD", "scheduler-service", "healthcheck", "--role"], name
        assert test[4] in HEALTH_ROLES, name
        assert run_cli(*test[2:], "--help").returncode == 0, name


def test_every_service_has_a_health_check_of_its_own_role_and_waits_for_a_healthy_redis():
    all_services = services()
    assert "healthcheck" in all_services["redis"]
    assert "redis-cli ping" in " ".join(all_services["redis"]["healthcheck"]["test"])
    for name, service in ours(all_services).items():
        role = service["command"][0]
        assert service["healthcheck"]["test"][-1] == role, name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert set(all_services) == {"redis", *ours(all_services)}, "a service without our image"


def production_requirements() -> set[str]:
    """The variables production refuses to start without, as config.load_settings says."""
    with pytest.raises(ConfigError) as refused:
        load_settings({"SCHEDULER_ENV": "production"})
    return {problem.split(" ", 1)[0] for problem in refused.value.problems}


def test_every_setting_production_requires_is_given_to_every_role():
    from scheduler_service.reference_api.app import check_settings

    required = production_requirements()
    assert {"REDIS_URL", "SCHEDULER_API_TOKEN", "API_SERVICE_ACCOUNT_TOKEN"} <= required
    known = {f.env for f in FIELDS}
    for name, service in ours(services()).items():
        env = service["environment"]
        assert set(env) <= known, (name, set(env) - known)
        assert env["SCHEDULER_ENV"] == "production", name
        assert required <= {k for k, v in env.items() if v != ""}, (name, required - set(env))
        settings = load_settings(env)  # raises, naming the variable, if anything is refused
        assert settings.is_production and settings.redis_url.startswith("redis://redis:")
        if service["command"][0] == "reference-api":
            check_settings(settings)
            assert settings.reference_api_key == settings.api_token


def test_compose_refuses_to_start_without_the_secrets_production_requires():
    for secret in ("SCHEDULER_API_TOKEN", "API_SERVICE_ACCOUNT_TOKEN"):
        env = {k: v for k, v in FILLED_IN.items() if k != secret}
        with pytest.raises(MissingVariable) as missing:
            services(env)
        assert missing.value.name == secret
        with pytest.raises(MissingVariable):
            services({**env, secret: ""})  # an .env copied from the example, left empty


def test_the_token_compose_is_given_is_held_to_the_production_rules():
    for token in ("dev-token", "short-token"):
        env = services({**FILLED_IN, "SCHEDULER_API_TOKEN": token})["web"]["environment"]
        with pytest.raises(ConfigError, match="SCHEDULER_API_TOKEN"):
            load_settings(env)


def env_example() -> dict[str, str]:
    """``{variable: the comment block above it}`` of .env.example."""
    documented, comment = {}, []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif "=" in line:
            documented[line.split("=", 1)[0]] = " ".join(comment)
        else:
            comment = []
    return documented


def test_every_variable_compose_reads_is_documented_in_env_example_required_ones_marked():
    text = COMPOSE.read_text()
    used = {m.group(1) or m.group(4) for m in VARIABLE.finditer(text) if m.group(0) != "$$"}
    required = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) in (":?", "?")}
    documented = env_example()
    assert used == set(documented), (used ^ set(documented))
    for name in used:
        assert documented[name].strip(), f"{name} has no comment in .env.example"
        assert documented[name].startswith("REQUIRED.") == (name in required), name
    assert required == {"SCHEDULER_API_TOKEN", "API_SERVICE_ACCOUNT_TOKEN"}


def test_env_example_defaults_are_the_ones_compose_applies():
    documented = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            documented[name] = value
    with_example = services({k: v for k, v in documented.items() if v} | FILLED_IN)
    assert with_example == services(), "a default in .env.example differs from compose's"


def test_redis_keeps_an_append_only_file_on_a_volume():
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    volume, path = redis["volumes"][0].split(":")[:2]
    assert path == "/data" and volume in compose()["volumes"]


def test_two_workers_and_two_cron_replicas_one_subscriber():
    running = services()
    assert running["worker"]["deploy"]["replicas"] == 2
    assert running["cron"]["deploy"]["replicas"] == 2
    assert running["subscriber"].get("deploy", {}).get("replicas", 1) == 1


def test_the_demo_profile_adds_the_seeded_reference_api_the_api_url_points_at():
    running = services()
    demo = {name: s for name, s in running.items() if "demo" in s.get("profiles", [])}
    assert len(demo) == 1
    (name, api), = demo.items()
    command = api["command"]
    assert command[0] == "reference-api"
    assert command[command.index("--seed") + 1] == "demo"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from the others
    port = load_settings(api["environment"]).reference_api_port
    for role in ("web", "worker", "cron", "subscriber"):
        assert running[role]["environment"]["API_URL"] == f"http://{name}:{port}/graphql"
    # the reference API publishes its messages to the Redis the subscriber follows
    assert api["environment"]["REDIS_URL"] == running["subscriber"]["environment"]["REDIS_URL"]
    assert "reference-data" in compose()["volumes"]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_docker_waits_long_enough_for_the_shutdown_grace_before_it_kills():
    for name, service in ours(services()).items():
        settings = load_settings(service["environment"])
        assert _seconds(service["stop_grace_period"]) >= stop_timeout_s(settings), name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_itself_accepts_the_file():
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", **FILLED_IN}
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "--profile", "demo", "config",
                             "--services"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(services())
    refused = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True,
                             text=True, env={"PATH": env["PATH"]}, timeout=60)
    assert refused.returncode != 0 and "API_SERVICE_ACCOUNT_TOKEN" in refused.stderr


def test_dockerfile_is_one_image_for_every_role_listening_on_every_interface():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert "pip install ." in text and "plugins/" in text
    assert 'ENTRYPOINT ["scheduler-service"]' in text
    assert "USER scheduler" in text
    assert re.search(r"^\s+HOST=0\.0\.0\.0", text, re.M)
    assert 'CMD ["scheduler-service", "healthcheck", "--role", "web"]' in text
    assert len(re.findall(r"^FROM ", text, re.M)) == 1
