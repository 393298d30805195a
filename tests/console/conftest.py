"""Fixtures of the console and operator CLI tests: the app on the test's services with its
forms' tokens, and a live ``scheduler-service web`` process for real HTTP."""

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass

import pytest
import requests

from scheduler_service.config import load_settings
from scheduler_service.embedded_redis import free_port
from scheduler_service.services import build_services
from scheduler_service.web import create_app
from helpers import stop_process, wait_for

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


def page(client, path, status=200, **kwargs):
    """GET a console page, check its status, return its HTML."""
    response = client.get(path, **kwargs)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:500])
    return response.get_data(as_text=True)


def token_of(html):
    """The CSRF token of the page's forms."""
    found = TOKEN.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def submit(client, form_page, action, data=None, **kwargs):
    """POST a form the way a browser would: with the token of the page it was on."""
    token = token_of(page(client, form_page, **kwargs))
    return client.post(action, data={"csrf_token": token, **(data or {})}, **kwargs)


# -- a live web process ---------------------------------------------------------------
#: The REST API token of the live web process.
LIVE_TOKEN = "console-test-token-0123456789"


@dataclass
class LiveStack:
    """A ``scheduler-service web`` process on a free port, and services on its namespace."""

    url: str
    token: str
    services: object
    process: subprocess.Popen
    env: dict
    log_path: object


@pytest.fixture(scope="module")
def live(redis_server, plugin_paths, reference_api, tmp_path_factory):
    """``scheduler-service web`` (one gunicorn worker) on the session Redis and reference API,
    with the sample plugin, in a namespace of this test module; stopped at the module's end."""
    variables = {
        "SCHEDULER_ENV": "test", "REDIS_URL": redis_server.url,
        "REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:12]}", "SCHEDULER_API_TOKEN": LIVE_TOKEN,
        "QUEUE_RETRY_BACKOFF_MS": "100", "QUEUE_MAX_BACKOFF_MS": "1000",
        "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING", "HOST": "127.0.0.1",
        **{k: str(v) for k, v in reference_api.client_env().items()},
    }
    services = build_services(load_settings(variables))
    port = free_port()
    env = {**os.environ, **variables,
           "PYTHONPATH": os.pathsep.join([str(plugin_paths["sample"]), os.environ.get("PYTHONPATH", "")])}
    log_path = tmp_path_factory.mktemp("live-web") / "web.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler_service", "web", "--port", str(port),
             "--workers", "1", "--threads", "8"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return requests.get(f"{url}/health", timeout=2).status_code in (200, 503)
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=60, interval=0.2, message="the live web process")
        yield LiveStack(url, LIVE_TOKEN, services, process, env, log_path)
    finally:
        stop_process(process)
        for key in services.redis.scan_iter(f"{variables['REDIS_NAMESPACE']}:*", count=1000):
            services.redis.delete(key)
        services.close()
