"""The error codes of the contract, carried as GraphQL ``extensions.code``."""

from __future__ import annotations

from graphql import GraphQLError

NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
BAD_USER_INPUT = "BAD_USER_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
INTERNAL = "INTERNAL"


class ApiError(GraphQLError):
    """An error a resolver raises on purpose; its code is the contract's ``extensions.code``."""

    def __init__(self, message: str, code: str):
        super().__init__(message, extensions={"code": code})
        self.code = code


def not_found(entity_type: str, entity_id, field: str | None = None) -> ApiError:
    """``NOT_FOUND`` for an entity, naming the input field that referred to it."""
    where = f" ({field})" if field else ""
    return ApiError(f"{entity_type} {entity_id!r} not found{where}", NOT_FOUND)


def bad_input(message: str) -> ApiError:
    """``BAD_USER_INPUT`` with a message that names the field."""
    return ApiError(message, BAD_USER_INPUT)


def conflict(message: str) -> ApiError:
    """``CONFLICT``: a stale version or an already completed entity."""
    return ApiError(message, CONFLICT)


def error_body(message: str, code: str) -> dict:
    """A GraphQL response body holding one error (for errors outside execution)."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
