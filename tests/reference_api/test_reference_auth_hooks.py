"""API-key authentication, and the test-only hooks (off by default, refused in production)."""

import subprocess
import sys
import time

import pytest
import requests

from scheduler_service.config import load_settings
from scheduler_service.errors import ConfigError

QUERY = "{ campaigns { id } }"
#: Everything production requires except what a test is about.
PRODUCTION = {"SCHEDULER_ENV": "production", "REDIS_URL": "redis://127.0.0.1:1/0",
              "API_SERVICE_ACCOUNT_TOKEN": "t", "SCHEDULER_API_TOKEN": "t" * 16,
              "ADMIN_DASHBOARD_ENABLED": "false", "REFERENCE_API_KEY": "k"}


@pytest.mark.parametrize("headers", [
    {},
    {"x-api-key": "wrong"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Basic dGVzdA=="},
])
def test_missing_or_wrong_key_is_401_unauthenticated(reference_api, headers):
    response = requests.post(reference_api.url, json={"query": QUERY},
                             headers=headers, timeout=10)
    assert response.status_code == 401
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "x-api-key" in error["message"]


def test_key_accepted_as_header_or_bearer_token(reference_api):
    for headers in ({"x-api-key": reference_api.key},
                    {"Authorization": f"Bearer {reference_api.key}"}):
        response = requests.post(reference_api.url, json={"query": QUERY}, headers=headers, timeout=10)
        assert response.status_code == 200
        assert "errors" not in response.json()


def test_delay_hook_delays_the_answer(reference_api):
    started = time.monotonic()
    body = reference_api.gql(QUERY, headers={"x-test-delay-ms": "600"})
    assert time.monotonic() - started >= 0.6 and "errors" not in body
    # A client timeout shorter than the delay fails as a timeout
    with pytest.raises(requests.Timeout):
        reference_api.post(QUERY, headers={"x-test-delay-ms": "1500"}, timeout=0.3)


def test_failure_hooks(reference_api):
    response = reference_api.post(QUERY, headers={"x-test-fail-status": "503"})
    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL"
    response = reference_api.post(QUERY, headers={"x-test-error-code": "CONFLICT"})
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "CONFLICT"
    for header, value in (("x-test-delay-ms", "soon"), ("x-test-fail-status", "404"),
                          ("x-test-error-code", "OOPS")):
        response = reference_api.post(QUERY, headers={header: value})
        assert response.status_code == 400 and header in response.json()["errors"][0]["message"]


def test_hooks_are_ignored_when_not_enabled(spawn_reference_api):
    api = spawn_reference_api("--seed", "none", key="other-key")
    started = time.monotonic()
    response = api.post(QUERY, headers={"x-test-delay-ms": "2000", "x-test-fail-status": "503"})
    assert response.status_code == 200 and time.monotonic() - started < 1.5
    # Its own key, not the session server's
    assert api.post(QUERY, key="test-reference-key").status_code == 401


def test_test_hooks_are_refused_in_production():
    with pytest.raises(ConfigError) as e:
        load_settings({**PRODUCTION, "REFERENCE_API_TEST_HOOKS": "true"})
    assert load_settings(PRODUCTION).reference_api_key == "k"
    assert "REFERENCE_API_TEST_HOOKS must not be enabled in production" in str(e.value)


def test_server_refuses_to_start_with_hooks_in_production(spawn_reference_api):
    api = spawn_reference_api(
        "--seed", "none", wait=False,
        env={**PRODUCTION, "REFERENCE_API_TEST_HOOKS": "true"})
    assert api.process.wait(30) == 2
    assert "REFERENCE_API_TEST_HOOKS must not be enabled in production" in api.log_path.read_text()


def test_server_refuses_to_start_in_production_without_a_key(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "REFERENCE_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "scheduler_service", "reference-api", "--db",
         str(tmp_path / "db.sqlite3")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "REFERENCE_API_KEY is required in production" in done.stderr


def test_reference_settings_defaults():
    s = load_settings({})
    assert s.reference_api_key == "dev-key" and s.reference_api_port == 9264
    assert s.reference_api_db is None and s.reference_api_test_hooks is False
    assert s.reference_api_db_path.endswith("reference.sqlite3")
    assert load_settings({"DATA_DIR": "/srv/x"}).reference_api_db_path == "/srv/x/reference.sqlite3"
    assert load_settings({"REFERENCE_API_DB": "/tmp/r.db"}).reference_api_db_path == "/tmp/r.db"
    assert "k3y" not in repr(load_settings({"REFERENCE_API_KEY": "k3y"}))
