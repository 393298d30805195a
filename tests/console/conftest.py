"""Fixtures of the console tests: the app on the test's services, and its forms' tokens."""

import re

import pytest

from scheduler_service.web import create_app

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
