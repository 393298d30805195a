"""Fixtures of the console and operator CLI tests: the app on the test's services with its
forms' tokens, and a live ``scheduler-service web`` process for real HTTP."""

import re

import pytest

from scheduler_service.web import create_app
from helpers import live_web

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


@pytest.fixture(scope="module")
def live(redis_server, plugin_paths, reference_api, tmp_path_factory):
    """``scheduler-service web`` (one gunicorn worker) on the session Redis and reference API,
    with the sample plugin, in a namespace of this test module; stopped at the module's end."""
    env = {"QUEUE_RETRY_BACKOFF_MS": "100", "QUEUE_MAX_BACKOFF_MS": "1000",
           **reference_api.client_env()}
    log_path = tmp_path_factory.mktemp("live-web") / "web.log"
    with live_web(redis_server.url, env, [plugin_paths["sample"]], log_path, LIVE_TOKEN) as web:
        yield web
