"""Fixtures of the API client tests: clients pointed at the live reference API."""

from __future__ import annotations

import pytest

from scheduler_service.api.client import ApiClient


@pytest.fixture
def make_client(make_settings, reference_api):
    """``make_client(headers=None, **API_* overrides)``: a client of the reference API.

    Defaults for tests: no rate limit and fast retries; every client is closed afterwards.
    """
    made = []

    def make(headers=None, **overrides):
        env = {"API_URL": reference_api.url, "API_SERVICE_ACCOUNT_TOKEN": reference_api.key,
               "API_RATE_LIMIT_PER_SECOND": 0, **overrides}
        client = ApiClient.from_settings(make_settings(**env), headers=headers)
        client.retry = type(client.retry)(max_retries=client.retry.max_retries,
                                          base_delay_s=0.01, max_delay_s=0.05)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()

