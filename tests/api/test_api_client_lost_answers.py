"""Mutations whose answer is lost are checked, never re-sent blindly (live reference API).

The reference API's stall hook commits a mutation, then holds its answer past the client's
timeout: the client sees a ``TIMEOUT`` although the change is stored. Requests are counted
by operation from the bodies the client's session sends.
"""

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
import requests

from scheduler_service.api.client import _confirm_update
from scheduler_service.embedded_redis import free_port
from scheduler_service.errors import Conflict, Transient
from scheduler_service.reference_api.app import FAIL_STATUS_HEADER

PATCH = [{"op": "replace", "path": "/variables/morale", "value": 7}]


def stall(reference_api, field, ms, times=1):
    requests.post(f"{reference_api.base_url}/test-hooks/stall",
                  json={"field": field, "ms": ms, "times": times},
                  headers={"x-api-key": reference_api.key}, timeout=5).raise_for_status()


def sent_operations(client) -> list:
    """The operationName of every request the client sends, in order (a growing list).

    Counted as they go out, so a request whose answer never comes is counted too.
    """
    sent = []
    post = client.transport.post

    def counting(body, operation=None):
        sent.append(json.loads(body)["operationName"])
        return post(body, operation)

    client.transport.post = counting
    return sent


def executions(reference_api, effect_id):
    return reference_api.data("query($id: ID!) { getEffect(id: $id) { executions { id context } } }",
                              {"id": effect_id})["getEffect"]["executions"]


@pytest.fixture
def effect(reference_api):
    world = reference_api.make_world(settlement_variables={"morale": 1})
    return reference_api.make_effect("Settlement", world["settlements"][0]["id"], PATCH)


@pytest.fixture
def slow_client(make_client):
    """A client that gives up on an answer after 300 ms, with three retries."""
    return make_client(API_REQUEST_TIMEOUT_MS=300, API_MAX_RETRIES=3)


def test_an_effect_whose_answer_is_lost_is_found_executed_and_not_sent_again(
        reference_api, slow_client, effect):
    # Given the API commits the next executeEffect but answers only after the client's timeout
    stall(reference_api, "executeEffect", 1500)
    sent = sent_operations(slow_client)
    # When the scheduler executes it for a job
    result = slow_client.execute_effect(effect["id"], context={"schedulerJobId": "job-1"})
    # Then the client looked the execution up instead of sending the mutation again
    runs = executions(reference_api, effect["id"])
    assert len(runs) == 1 and runs[0]["context"]["schedulerJobId"] == "job-1"
    assert result.success and result.execution_id == runs[0]["id"]
    assert result.affected_fields == ("/variables/morale",)
    assert sent.count("ExecuteEffect") == 1 and "GetEffect" in sent


def test_a_lost_effect_answer_without_a_job_id_is_raised_not_resent(
        reference_api, slow_client, effect):
    stall(reference_api, "executeEffect", 1500)
    sent = sent_operations(slow_client)
    with pytest.raises(Transient) as caught:
        slow_client.execute_effect(effect["id"], context={"note": "by hand"})
    assert caught.value.code == "TIMEOUT" and caught.value.maybe_applied
    assert sent == ["ExecuteEffect"]
    assert len(executions(reference_api, effect["id"])) == 1


def test_an_effect_refused_with_a_5xx_before_it_ran_is_sent_again(make_client, reference_api,
                                                                   effect):
    # Given a server that answers 503 without running anything, for every request
    client = make_client(headers={FAIL_STATUS_HEADER: "503"}, API_MAX_RETRIES=2)
    sent = sent_operations(client)
    # When the job's mutation fails, the check before each resend fails too
    with pytest.raises(Transient):
        client.execute_effect(effect["id"], context={"schedulerJobId": "job-2"})
    # Then it never got as far as a second executeEffect without a check in between
    assert sent[:2] == ["ExecuteEffect", "GetEffect"]
    assert executions(reference_api, effect["id"]) == []


def test_a_dry_run_is_simply_retried(make_client, reference_api, effect):
    client = make_client(headers={FAIL_STATUS_HEADER: "500"}, API_MAX_RETRIES=2)
    sent = sent_operations(client)
    with pytest.raises(Transient):
        client.execute_effect(effect["id"], dry_run=True)
    assert sent == ["ExecuteEffect"] * 3


def test_an_expiry_whose_answer_is_lost_returns_the_completed_event(reference_api, slow_client):
    camp = reference_api.make_campaign(world_time=datetime(2026, 3, 1, tzinfo=timezone.utc))
    event = reference_api.make_event(camp["id"], datetime(2026, 2, 1, tzinfo=timezone.utc))
    stall(reference_api, "expireEvent", 1500)
    sent = sent_operations(slow_client)
    expired = slow_client.expire_event(event["id"])
    assert expired.is_completed and expired.id == event["id"]
    assert sent == ["ExpireEvent", "Event"]


def test_an_update_whose_answer_is_lost_is_recognised_by_its_version(reference_api, slow_client):
    world = reference_api.make_world(settlement_variables={"population": 100})
    settlement = world["settlements"][0]
    stall(reference_api, "updateSettlement", 1500)
    sent = sent_operations(slow_client)
    updated = slow_client.update_settlement(settlement["id"], expected_version=settlement["version"],
                                            variables={"population": 120})
    assert updated.version == settlement["version"] + 1
    assert updated.variables["population"] == 120
    assert sent == ["UpdateSettlement", "Settlement"]


def test_a_mutation_that_never_reached_the_api_is_sent_again(make_client):
    # Given nothing listens on the API's port (connection refused: nothing was sent)
    client = make_client(API_URL=f"http://127.0.0.1:{free_port()}/graphql", API_MAX_RETRIES=2)
    with pytest.raises(Transient) as caught:
        client.expire_event("e1")
    # Then each retry simply sent it again
    assert caught.value.code == "CONNECTION" and not caught.value.maybe_applied
    assert client.stats.snapshot()[1] == {"ExpireEvent": 2}


def _entity(version, level=1, **variables):
    return SimpleNamespace(version=version, level=level, variables=variables)


@pytest.mark.parametrize("stored, expected", [
    (None, None),                                   # gone: resending gives NOT_FOUND
    (_entity(4, population=100), None),             # not stored: send again
    (_entity(5, population=120), "ours"),           # stored: that is our write
])
def test_confirm_update_reads_the_version(stored, expected):
    found = _confirm_update(stored, 4, None, {"population": 120})
    assert found is (stored if expected == "ours" else None)


@pytest.mark.parametrize("stored", [_entity(5, population=99), _entity(6, population=120),
                                    _entity(5, level=2, population=120)])
def test_confirm_update_calls_another_writers_change_a_conflict(stored):
    with pytest.raises(Conflict):
        _confirm_update(stored, 4, 1 if stored.level == 2 else None, {"population": 120})
