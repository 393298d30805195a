"""Timeouts, retries, the circuit breaker and authentication, against the live reference API.

The reference API runs with its test hooks on: ``x-test-delay-ms`` delays an answer,
``x-test-fail-status`` answers with an HTTP 5xx and ``x-test-error-code`` with one GraphQL
error of that code. Requests are counted from the responses the client's session receives.
"""

import time

import pytest
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from api_helpers import count_requests
from helpers import wait_for
from scheduler_service.api import use_api_client
from scheduler_service.api.health import api_check
from scheduler_service.embedded_redis import free_port
from scheduler_service.errors import (
    BadInput,
    CircuitOpen,
    Conflict,
    Forbidden,
    NotFound,
    Transient,
    Unauthenticated,
)
from scheduler_service.reference_api.app import DELAY_HEADER, ERROR_CODE_HEADER, FAIL_STATUS_HEADER
from scheduler_service.web import create_app


def test_a_slow_answer_times_out_as_a_transient_error_after_the_retries(make_client):
    # Given a client with a 200 ms timeout and one retry, and a server taking 5 s to answer
    client = make_client(headers={DELAY_HEADER: "5000"}, API_REQUEST_TIMEOUT_MS=200,
                         API_MAX_RETRIES=1)
    started = time.monotonic()
    # When it asks
    with pytest.raises(Transient) as caught:
        client.campaigns(use_cache=False)
    # Then both attempts gave up long before the server would have answered
    assert time.monotonic() - started < 4.5
    assert caught.value.code == "TIMEOUT" and caught.value.operation == "Campaigns"
    assert client.stats.snapshot() == ({("Campaigns", "transient"): 1}, {"Campaigns": 1})


def test_a_slow_answer_within_the_timeout_is_fine(make_client):
    client = make_client(headers={DELAY_HEADER: "300"}, API_REQUEST_TIMEOUT_MS=10000)
    assert isinstance(client.campaigns(use_cache=False), list)


@pytest.mark.parametrize("headers", [{FAIL_STATUS_HEADER: "503"}, {FAIL_STATUS_HEADER: "500"},
                                     {ERROR_CODE_HEADER: "INTERNAL"}])
def test_http_5xx_and_internal_are_retried_then_raised_as_transient(make_client, headers):
    client = make_client(headers=headers, API_MAX_RETRIES=2)
    requests_made = count_requests(client)
    with pytest.raises(Transient) as caught:
        client.campaign("any")
    assert caught.value.code == "INTERNAL" and caught.value.operation == "Campaign"
    assert len(requests_made) == 3
    assert client.breaker.failure_count == 1  # one call, one failure


@pytest.mark.parametrize("code, error", [
    ("NOT_FOUND", NotFound), ("CONFLICT", Conflict), ("BAD_USER_INPUT", BadInput),
    ("UNAUTHENTICATED", Unauthenticated), ("FORBIDDEN", Forbidden),
])
def test_permanent_errors_are_raised_at_once_without_retry(make_client, code, error):
    client = make_client(headers={ERROR_CODE_HEADER: code}, API_MAX_RETRIES=3)
    requests_made = count_requests(client)
    with pytest.raises(error) as caught:
        client.event("any")
    assert type(caught.value) is error and caught.value.code == code
    assert caught.value.operation == "Event" and code in str(caught.value)
    assert len(requests_made) == 1
    assert client.breaker.failure_count == 0


def test_real_not_found_and_conflict_answers_are_not_retried(make_client, reference_api):
    client = make_client(API_MAX_RETRIES=3)
    requests_made = count_requests(client)
    event = reference_api.make_event(reference_api.make_campaign()["id"])
    client.expire_event(event["id"])
    with pytest.raises(Conflict):
        client.expire_event(event["id"])
    with pytest.raises(NotFound):
        client.expire_event("no-such-event")
    assert len(requests_made) == 3
    assert client.stats.snapshot()[1] == {}


def test_a_wrong_key_is_unauthenticated_and_not_retried(make_client):
    client = make_client(API_SERVICE_ACCOUNT_TOKEN="not-the-key", API_MAX_RETRIES=3)
    requests_made = count_requests(client)
    with pytest.raises(Unauthenticated) as caught:
        client.campaigns()
    assert caught.value.code == "UNAUTHENTICATED" and caught.value.operation == "Campaigns"
    assert requests_made == [401]
    assert client.breaker.failure_count == 0


def test_the_bearer_scheme_sends_an_authorization_header(make_client, reference_api):
    client = make_client(API_AUTH_SCHEME="bearer")
    sent = []
    client.transport.session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.headers))
    assert isinstance(client.campaigns(use_cache=False), list)
    assert sent[0]["Authorization"] == f"Bearer {reference_api.key}"
    assert "x-api-key" not in sent[0]


def test_connection_errors_open_the_breaker_then_calls_fail_fast(make_client):
    # Given a client of an API nobody listens to
    client = make_client(API_URL=f"http://127.0.0.1:{free_port()}/graphql",
                         API_CIRCUIT_BREAKER_THRESHOLD=2, API_CIRCUIT_BREAKER_DURATION_MS=60000,
                         API_MAX_RETRIES=1)
    # When two calls fail to connect (each after its retry)
    for _ in range(2):
        with pytest.raises(Transient) as caught:
            client.settlement("s1")
        assert caught.value.code == "CONNECTION"
    # Then the breaker is open and the next call is refused without trying
    assert client.breaker.state == STATE_OPEN
    with pytest.raises(CircuitOpen) as caught:
        client.settlement("s1")
    assert 0 < caught.value.retry_after_s <= 60 and caught.value.operation == "Settlement"
    calls, retries = client.stats.snapshot()
    assert calls == {("Settlement", "transient"): 2, ("Settlement", "circuit_open"): 1}
    assert retries == {"Settlement": 2}


def test_the_breaker_opens_fails_fast_half_opens_and_closes(make_client, services):
    # Given a client whose breaker opens after 3 failed calls for 3 s, and a failing API
    client = make_client(API_CIRCUIT_BREAKER_THRESHOLD=3, API_CIRCUIT_BREAKER_DURATION_MS=3000,
                         API_MAX_RETRIES=1)
    use_api_client(services, client)
    web = create_app(services=services).test_client()
    requests_made = count_requests(client)
    headers = client.transport.session.headers
    headers[FAIL_STATUS_HEADER] = "503"

    # When three calls fail (two attempts each)
    for _ in range(3):
        with pytest.raises(Transient):
            client.campaigns(use_cache=False)
    assert len(requests_made) == 6

    # Then it is open: calls fail at once and no request is made
    assert client.breaker.state == STATE_OPEN
    for _ in range(20):
        with pytest.raises(CircuitOpen) as caught:
            client.campaigns(use_cache=False)
        assert 0 < caught.value.retry_after_s <= 3
    assert len(requests_made) == 6
    # and /health says the api component is down (not critical: the service is degraded)
    body = web.get("/health").get_json()
    assert body["components"]["api"]["status"] == "down"
    assert body["status"] == "degraded"
    assert "scheduler_api_circuit_state 2.0" in web.get("/metrics").get_data(as_text=True)

    # When the duration has passed it is half-open: one trial, a single attempt
    wait_for(lambda: client.breaker.state == STATE_HALF_OPEN, timeout=15, message="half-open")
    assert api_check(services).status == "degraded"
    with pytest.raises(Transient):
        client.campaigns(use_cache=False)
    assert len(requests_made) == 7
    # The failed trial opened it again
    assert client.breaker.state == STATE_OPEN
    with pytest.raises(CircuitOpen):
        client.campaigns(use_cache=False)
    assert len(requests_made) == 7

    # When the API recovers, the next trial succeeds and closes the breaker
    del headers[FAIL_STATUS_HEADER]
    wait_for(lambda: client.breaker.state == STATE_HALF_OPEN, timeout=15, message="half-open")
    assert isinstance(client.campaigns(use_cache=False), list)
    assert len(requests_made) == 8
    assert client.breaker.state == STATE_CLOSED and client.breaker.failure_count == 0
    assert isinstance(client.campaigns(use_cache=False), list)
    assert web.get("/health").get_json()["components"]["api"]["status"] == "up"
    metrics = web.get("/metrics").get_data(as_text=True)
    assert "scheduler_api_circuit_state 0.0" in metrics
    assert "scheduler_api_circuit_opened_total 2.0" in metrics
    assert 'scheduler_api_calls_total{operation="Campaigns",outcome="circuit_open"} 21.0' in metrics
    assert 'scheduler_api_calls_total{operation="Campaigns",outcome="ok"} 2.0' in metrics


def test_a_call_stops_retrying_once_other_calls_have_opened_the_breaker(make_client):
    # Given a failing API and a call that would retry 3 times
    client = make_client(headers={FAIL_STATUS_HEADER: "503"}, API_MAX_RETRIES=3,
                         API_CIRCUIT_BREAKER_THRESHOLD=1)
    requests_made = count_requests(client)
    # When, during its first backoff, another thread's failure opens the breaker
    client._sleep = lambda delay: client.breaker.record(Transient("elsewhere"), trial=False)
    with pytest.raises(Transient):
        client.structure("any")
    # Then it gives up after its next attempt instead of spending all its retries
    assert len(requests_made) == 2
    assert client.breaker.state == STATE_OPEN
