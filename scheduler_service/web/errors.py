"""One place that turns errors into the JSON error body ``{"error": {...}}``."""

from __future__ import annotations

import logging

import redis
from flask import jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import (
    CircuitOpen, InvalidPayload, SchedulerServiceError, Transient, UnknownJobType, UpstreamError,
)

logger = logging.getLogger(__name__)


class ApiError(SchedulerServiceError):
    """An HTTP error with a code, a message and optional per-field details."""

    def __init__(self, status, code, message, details=()):
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = list(details)


def upstream_unavailable(error, doing: str, consequence: str = "nothing was changed") -> ApiError:
    """The 503 of a request that needed the main API and could not reach it."""
    return ApiError(503, "UPSTREAM_UNAVAILABLE",
                    f"the main API could not be asked {doing} ({error}); {consequence}")


def error_response(status, code, message, details=()):
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return jsonify(body), status


def register_error_handlers(app):
    @app.errorhandler(ApiError)
    def _api_error(e):
        return error_response(e.status, e.code, str(e), e.details)

    @app.errorhandler(InvalidPayload)
    def _invalid_payload(e):
        return error_response(400, "INVALID_PAYLOAD", str(e), e.details)

    @app.errorhandler(UnknownJobType)
    def _unknown_type(e):
        return error_response(400, "UNKNOWN_JOB_TYPE", str(e), [{"field": "type", "message": str(e)}])

    @app.errorhandler(UpstreamError)
    def _upstream(e):
        # The main API failed a call a route made: unreachable or overloaded is 503 (try
        # again later, with Retry-After when the breaker knows when); an answer that was
        # itself an error is 502. Never a 500: nothing in this service went wrong.
        operation = f" ({e.operation})" if e.operation else ""
        if isinstance(e, (Transient, CircuitOpen)):
            response = error_response(503, "UPSTREAM_UNAVAILABLE",
                                      f"the main API is unavailable{operation}: {e}")
            retry_after = getattr(e, "retry_after_s", 0)
            if retry_after:
                response[0].headers["Retry-After"] = str(max(1, round(retry_after)))
            return response
        logger.warning("the main API answered with an error%s: %s", operation, e)
        return error_response(502, "UPSTREAM_ERROR", f"the main API answered with an error{operation}: {e}")

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_unavailable(e):
        # Redis restarting or failing over (a few seconds under Sentinel): the client should
        # try again. A write whose answer was lost may have been applied, hence the caveat.
        logger.warning("Redis unavailable during %s: %s: %s", request.path, type(e).__name__, e)
        response = error_response(503, "REDIS_UNAVAILABLE",
                                  "Redis is unavailable (restarting or failing over); try again. "
                                  "A write may have been applied: repeat it with the same "
                                  "idempotencyKey to be sure it happens once")
        response[0].headers["Retry-After"] = "1"
        return response

    @app.errorhandler(redis.ResponseError)
    def _redis_refused(e):
        # A master with min-replicas-to-write refuses writes while no replica keeps up.
        if "NOREPLICAS" in str(e):  # also when a Lua script's write was refused
            return _redis_unavailable(e)
        return _unexpected(e)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(e):
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = f"over {limit // 1024} KiB ({limit} bytes)"
        return error_response(413, "PAYLOAD_TOO_LARGE", f"the request body is {message}; "
                              "nothing was read or changed", [{"field": "body", "message": message}])

    @app.errorhandler(HTTPException)
    def _http(e):
        code = (e.name or "error").upper().replace(" ", "_")
        response = error_response(e.code, code, e.description or e.name)
        if e.code == 405 and e.valid_methods:
            response[0].headers["Allow"] = ", ".join(e.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(e):
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL", "internal error; see the service logs")
