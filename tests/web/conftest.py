"""Fixtures of the web tests: the Flask app's test client on the test's services."""

import pytest

from scheduler_service.web import create_app


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()
