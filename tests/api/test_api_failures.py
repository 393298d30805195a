"""Mapping GraphQL codes and HTTP statuses to the service's exceptions."""

import pytest

from scheduler_service.api.failures import error_from_graphql, error_from_http, is_transient
from scheduler_service.errors import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    Transient,
    Unauthenticated,
    UpstreamError,
)


def gql_error(code, message="it went wrong"):
    return {"message": message, "extensions": {"code": code}}


@pytest.mark.parametrize("code, cls, transient", [
    ("NOT_FOUND", NotFound, False),
    ("CONFLICT", Conflict, False),
    ("BAD_USER_INPUT", BadInput, False),
    ("GRAPHQL_VALIDATION_FAILED", BadInput, False),
    ("UNAUTHENTICATED", Unauthenticated, False),
    ("FORBIDDEN", Forbidden, False),
    ("INTERNAL", Transient, True),
    ("INTERNAL_SERVER_ERROR", Transient, True),
])
def test_each_graphql_code_has_its_exception(code, cls, transient):
    error = error_from_graphql([gql_error(code, "Settlement s1 not here")], "Settlement")
    assert type(error) is cls
    assert str(error) == "Settlement s1 not here"
    assert error.operation == "Settlement" and error.code == code
    assert is_transient(error) is transient


def test_an_error_without_a_known_code_is_permanent_and_not_transient():
    error = error_from_graphql([{"message": "Cannot query field 'x'"}], "Op")
    assert type(error) is UpstreamError and not is_transient(error)
    assert str(error) == "Cannot query field 'x'"


def test_the_first_error_with_a_known_code_decides():
    error = error_from_graphql([{"message": "odd"}, gql_error("CONFLICT", "stale")], "Op")
    assert isinstance(error, Conflict) and str(error) == "stale"


@pytest.mark.parametrize("status, body, cls", [
    (401, None, Unauthenticated),
    (401, {"errors": [gql_error("UNAUTHENTICATED", "bad key")]}, Unauthenticated),
    (403, None, Forbidden),
    (500, None, Transient),
    (502, "not json", Transient),
    (503, {"errors": [gql_error("INTERNAL")]}, Transient),
    (429, None, Transient),
    (408, None, Transient),
    (400, {"errors": [gql_error("BAD_USER_INPUT", "bad")]}, BadInput),
    (400, {"errors": [{"message": "Syntax Error"}]}, BadInput),
    (400, None, BadInput),
    (500, {"errors": [gql_error("NOT_FOUND", "gone")]}, NotFound),
    (404, None, UpstreamError),
])
def test_http_statuses(status, body, cls):
    error = error_from_http(status, body, "Op")
    assert type(error) is cls
    assert error.operation == "Op"


def test_http_401_names_the_reason_given_by_the_server():
    error = error_from_http(401, {"errors": [gql_error("UNAUTHENTICATED", "missing x-api-key")]}, "Op")
    assert "missing x-api-key" in str(error) and error.code == "UNAUTHENTICATED"
