"""Turn what the API answered into the service's exception tree.

This is the only place that knows GraphQL error codes and HTTP statuses; above it, callers
see :class:`~scheduler_service.errors.NotFound`, :class:`~scheduler_service.errors.Conflict`
and the rest. Pure functions, so each rule is tested on its own.
"""

from __future__ import annotations

from ..errors import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    Transient,
    Unauthenticated,
    UpstreamError,
)

#: ``extensions.code`` of a GraphQL error -> the exception raised for it.
CODE_ERRORS: dict[str, type[UpstreamError]] = {
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "BAD_USER_INPUT": BadInput,
    "GRAPHQL_VALIDATION_FAILED": BadInput,
    "GRAPHQL_PARSE_FAILED": BadInput,
    "UNAUTHENTICATED": Unauthenticated,
    "FORBIDDEN": Forbidden,
    "INTERNAL": Transient,
    "INTERNAL_SERVER_ERROR": Transient,
}

#: HTTP statuses that are worth another try whatever the body says.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Transient statuses that say the request was refused before anything was done.
REFUSED_STATUSES = frozenset({425, 429})


def error_from_graphql(errors: list, operation: str | None) -> UpstreamError:
    """The exception for a non-empty GraphQL ``errors`` list.

    The first error with a known ``extensions.code`` decides the class; an error without a
    known code becomes a plain :class:`UpstreamError` (permanent, not counted by the breaker),
    because retrying a request the server cannot understand will not help.

    Args:
        errors: the ``errors`` member of the response body.
        operation: the GraphQL operation name, for the exception.
    """
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    for error in errors:
        if not isinstance(error, dict):
            continue
        code = (error.get("extensions") or {}).get("code")
        if code in CODE_ERRORS:
            return CODE_ERRORS[code](_message(error), operation=operation, code=code)
    code = (first.get("extensions") or {}).get("code")
    return UpstreamError(_message(first) if first else "GraphQL error", operation=operation, code=code)


def error_from_http(status: int, body, operation: str | None) -> UpstreamError:
    """The exception for an HTTP answer that is not a usable GraphQL response.

    Args:
        status: the HTTP status code.
        body: the decoded JSON body, or ``None`` when it was not JSON.
        operation: the GraphQL operation name, for the exception.
    """
    if status == 401:
        return Unauthenticated(_body_message(body, "HTTP 401 Unauthorized"),
                               operation=operation, code="UNAUTHENTICATED")
    if status == 403:
        return Forbidden(_body_message(body, "HTTP 403 Forbidden"),
                         operation=operation, code="FORBIDDEN")
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors and isinstance(errors, list):
        mapped = error_from_graphql(errors, operation)
        if type(mapped) is not UpstreamError:
            return mapped
    if status in TRANSIENT_STATUSES or status >= 500:
        return Transient(_body_message(body, f"HTTP {status}"), operation=operation,
                         code=f"HTTP_{status}", maybe_applied=status not in REFUSED_STATUSES)
    if status == 400:
        return BadInput(_body_message(body, "HTTP 400 Bad Request"), operation=operation,
                        code="HTTP_400")
    return UpstreamError(_body_message(body, f"HTTP {status}"), operation=operation,
                         code=f"HTTP_{status}")


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying and counts toward the circuit breaker."""
    return isinstance(error, Transient)


def _message(error: dict) -> str:
    message = error.get("message")
    return str(message) if message else "GraphQL error"


def _body_message(body, fallback: str) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{fallback}: {_message(errors[0])}"
        if isinstance(body.get("message"), str):
            return f"{fallback}: {body['message']}"
    return fallback
