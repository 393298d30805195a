"""Plugins load through their entry points; broken and clashing plugins stop start-up."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler_service import hookspecs
from scheduler_service.plugins import load_registry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.rst"


def plugins_cli(env):
    return subprocess.run([sys.executable, "-m", "scheduler_service", "plugins", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_installed_plugin_is_discovered_through_its_entry_point():
    registry = load_registry()
    assert registry.job_types["PING"].plugin == "core"
    assert registry.job_types["SAMPLE_ECHO"].plugin == "sample"
    assert "scheduler-sample-plugin 1.0.0" in registry.plugins["sample"]
    assert [c.name for c in registry.health_checks][:2] == ["redis", "queue"]


def test_cli_lists_plugins_of_a_pip_installed_distribution(child_env):
    result = plugins_cli(child_env("sample"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["jobTypes"]["SAMPLE_FLAKY"]["plugin"] == "sample"
    assert data["jobTypes"]["PING"]["plugin"] == "core"


def test_plugin_that_fails_to_import_stops_startup_naming_it(child_env):
    result = plugins_cli(child_env("sample", "broken"))
    assert result.returncode == 3
    assert "plugin 'broken'" in result.stderr
    assert "scheduler-broken-plugin 0.0.1" in result.stderr
    assert "a_module_that_does_not_exist" in result.stderr


def test_duplicate_job_type_stops_startup_naming_both_plugins(child_env):
    result = plugins_cli(child_env("duplicate"))
    assert result.returncode == 3
    assert "job type 'PING' is registered twice: by plugin 'core' and by plugin 'duplicate'" in result.stderr


def test_worker_refuses_to_start_with_a_broken_plugin(child_env):
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "worker"],
                            env=child_env("broken"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "plugin 'broken'" in result.stderr


def test_every_hook_is_documented():
    text = DOCS.read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert hooks, "no hooks found"
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, f"{name} lacks a docstring"
        assert f"``{name}" in text, f"{name} is not in docs/plugins.rst"


def test_every_job_type_is_described():
    for name, jt in load_registry().job_types.items():
        assert jt.description.strip(), f"job type {name} has no description"


@pytest.mark.parametrize("bad", [dict(name="lower"), dict(name="OK", priority=11)])
def test_job_type_value_object_rejects_bad_definitions(bad):
    from scheduler_service.jobtypes import JobType

    with pytest.raises(ValueError):
        JobType(handler=lambda ctx: None, **{"name": "OK", **bad})


def test_cli_lists_plugins_and_job_types_as_a_table(child_env):
    result = subprocess.run([sys.executable, "-m", "scheduler_service", "plugins"],
                            env=child_env("sample"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plugins:"
    assert any(line.split()[:2] == ["sample", "scheduler-sample-plugin"] for line in lines)
    types = lines[lines.index("job types:") + 1:]
    rows = {line.split()[0]: line.split()[1:] for line in types}
    assert rows["PING"][0] == "plugin=core"
    assert rows["SAMPLE_ECHO"][0] == "plugin=sample"
    assert list(rows) == sorted(rows), "job types are listed by name"
