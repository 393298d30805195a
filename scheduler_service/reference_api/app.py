"""The WSGI app: ``POST /graphql`` with an API key, and ``GET /health``.

Requests carry ``{"query", "variables", "operationName"}`` as JSON. The key comes in an
``x-api-key`` header or as ``Authorization: Bearer <key>``; a missing or wrong key is HTTP 401
with a GraphQL-style error (``UNAUTHENTICATED``). Every other error is a GraphQL error with the
contract's ``extensions.code``: syntax, validation and variable errors are ``BAD_USER_INPUT``,
anything unexpected is ``INTERNAL`` (logged with its traceback, never shown to the caller).

Test hooks (only when ``REFERENCE_API_TEST_HOOKS`` is on, which production refuses):

* ``x-test-delay-ms: N``: sleep N milliseconds (at most 60000) before answering;
* ``x-test-fail-status: 5xx``: answer with that HTTP status and an ``INTERNAL`` error;
* ``x-test-error-code: CODE``: answer HTTP 200 with one error of that code, executing nothing.
* ``GET /test-hooks/operations``: how many requests were served per ``operationName`` since
  the start (benchmarks count the API calls of each side with it);
* ``POST /test-hooks/stall`` ``{"field": "executeEffect", "ms": 3000, "times": 1}``: the next
  ``times`` requests that resolve that root field are executed and committed, then held ``ms``
  milliseconds before the answer; a client that dies meanwhile never learns of its success
  (this is how tests kill a worker between an effect's execution and its acknowledgement).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter
from functools import lru_cache

from flask import Flask, jsonify, request
from graphql import GraphQLError, GraphQLSyntaxError, execute_sync, parse, validate

from ..errors import ConfigError
from . import errors
from ..redis_client import connect
from .publisher import Publisher
from .resolvers import Context
from .schema import executable_schema
from .storage import Store

logger = logging.getLogger(__name__)

DELAY_HEADER = "x-test-delay-ms"
FAIL_STATUS_HEADER = "x-test-fail-status"
ERROR_CODE_HEADER = "x-test-error-code"
#: Longest delay the delay hook honours.
MAX_TEST_DELAY_MS = 60_000
_CODES = (errors.NOT_FOUND, errors.CONFLICT, errors.BAD_USER_INPUT, errors.UNAUTHENTICATED,
          errors.FORBIDDEN, errors.INTERNAL)


def check_settings(settings) -> None:
    """Refuse settings the reference API must not run with.

    Raises:
        ConfigError: no key in production, or test hooks in production.
    """
    problems = []
    if settings.reference_api_key is None:
        problems.append("REFERENCE_API_KEY is required in production")
    if settings.is_production and settings.reference_api_test_hooks:
        problems.append("REFERENCE_API_TEST_HOOKS must not be enabled in production")
    if problems:
        raise ConfigError(problems)


@lru_cache(maxsize=256)
def _document(query: str):
    """Parse and validate a query once; returns ``(document, errors)``."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as e:
        return None, [e]
    return document, validate(executable_schema(), document)


def _formatted(error: GraphQLError) -> dict:
    body = error.formatted
    code = (error.extensions or {}).get("code")
    if code is None:
        if error.path is None:
            code = errors.BAD_USER_INPUT  # the request itself: syntax, validation, variables
        else:
            logger.error("internal error at %s", ".".join(map(str, error.path)),
                         exc_info=error.original_error)
            body["message"] = "internal error"
            code = errors.INTERNAL
    body["extensions"] = {**body.get("extensions", {}), "code": code}
    return body


def _error(message: str, code: str, status: int):
    return jsonify(errors.error_body(message, code)), status


def _presented_key() -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _test_hooks():
    """Honour the test-only headers; returns a response to send instead, or None."""
    raw = request.headers.get(DELAY_HEADER)
    if raw is not None:
        try:
            delay_ms = int(raw)
        except ValueError:
            delay_ms = -1
        if not 0 <= delay_ms <= MAX_TEST_DELAY_MS:
            return _error(f"{DELAY_HEADER} must be an integer from 0 to {MAX_TEST_DELAY_MS}, "
                          f"got {raw!r}", errors.BAD_USER_INPUT, 400)
        time.sleep(delay_ms / 1000)
    raw = request.headers.get(FAIL_STATUS_HEADER)
    if raw is not None:
        if not (raw.isdigit() and 500 <= int(raw) <= 599):
            return _error(f"{FAIL_STATUS_HEADER} must be an HTTP status from 500 to 599, got {raw!r}",
                          errors.BAD_USER_INPUT, 400)
        return _error("failure requested by the test hook", errors.INTERNAL, int(raw))
    code = request.headers.get(ERROR_CODE_HEADER)
    if code is not None:
        if code not in _CODES:
            return _error(f"{ERROR_CODE_HEADER} must be one of {', '.join(_CODES)}, got {code!r}",
                          errors.BAD_USER_INPUT, 400)
        return _error(f"{code} requested by the test hook", code, 200)
    return None


def create_app(settings, store: Store | None = None, publisher: Publisher | None = None) -> Flask:
    """Build the reference API's WSGI app.

    Args:
        settings: the service settings (key, database, Redis, test hooks).
        store: the storage; opened at ``settings.reference_api_db_path`` when omitted.
        publisher: the Redis publisher; built from the settings' Redis (``REDIS_URL`` or the
            sentinels) when omitted, and publishing nothing when neither is configured.

    Raises:
        ConfigError: see :func:`check_settings`.
    """
    check_settings(settings)
    schema = executable_schema()
    store = store or Store(settings.reference_api_db_path)
    publisher = publisher or Publisher(
        connect(settings, socket_connect_timeout=2, socket_timeout=2)
        if settings.redis_configured else None)
    expected_key = settings.reference_api_key.encode()
    hooks = settings.reference_api_test_hooks
    if hooks:
        logger.warning("reference API test hooks are ON (%s, %s, %s)",
                       DELAY_HEADER, FAIL_STATUS_HEADER, ERROR_CODE_HEADER)

    app = Flask(__name__)
    app.json.sort_keys = False  # keep the field order of the query, as GraphQL asks
    app.extensions["reference_api"] = {"store": store, "publisher": publisher}

    stalls: dict[str, list[int]] = {}
    stall_lock = threading.Lock()
    served: Counter = Counter()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    if hooks:
        @app.get("/test-hooks/operations")
        def operations():
            presented = _presented_key()
            if presented is None or not hmac.compare_digest(presented.encode(), expected_key):
                return _error("missing or wrong API key", errors.UNAUTHENTICATED, 401)
            with stall_lock:
                return dict(served)

        @app.post("/test-hooks/stall")
        def stall():
            presented = _presented_key()
            if presented is None or not hmac.compare_digest(presented.encode(), expected_key):
                return _error("missing or wrong API key", errors.UNAUTHENTICATED, 401)
            body = request.get_json(silent=True) or {}
            field, ms, times = body.get("field"), body.get("ms"), body.get("times", 1)
            if not isinstance(field, str) or not isinstance(ms, int) or not 0 <= ms <= MAX_TEST_DELAY_MS \
                    or not isinstance(times, int) or times < 1:
                return _error(f'give {{"field": str, "ms": 0-{MAX_TEST_DELAY_MS}, "times": >= 1}}',
                              errors.BAD_USER_INPUT, 400)
            with stall_lock:
                stalls[field] = [ms, times]
            return {"field": field, "ms": ms, "times": times}

    def _stall_after(data):
        if not stalls or not isinstance(data, dict):
            return
        for field in data:
            with stall_lock:
                entry = stalls.get(field)
                if entry is None:
                    continue
                entry[1] -= 1
                if entry[1] <= 0:
                    del stalls[field]
            time.sleep(entry[0] / 1000)

    @app.post("/graphql")
    def graphql_endpoint():
        presented = _presented_key()
        if presented is None or not hmac.compare_digest(presented.encode(), expected_key):
            return _error("missing or wrong API key (send x-api-key or Authorization: Bearer)",
                          errors.UNAUTHENTICATED, 401)
        if hooks:
            early = _test_hooks()
            if early is not None:
                return early
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return _error('the body must be a JSON object with a "query" string',
                          errors.BAD_USER_INPUT, 400)
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return _error('"variables" must be a JSON object', errors.BAD_USER_INPUT, 400)
        operation = body.get("operationName")
        if operation is not None and not isinstance(operation, str):
            return _error('"operationName" must be a string', errors.BAD_USER_INPUT, 400)
        if hooks:
            with stall_lock:
                served[operation or "anonymous"] += 1

        document, problems = _document(body["query"])
        if problems:
            return jsonify({"errors": [_formatted(e) for e in problems]})
        result = execute_sync(schema, document, variable_values=variables,
                              operation_name=operation,
                              context_value=Context(store=store, publisher=publisher))
        if hooks:
            _stall_after(result.data)
        response = {"data": result.data}
        if result.errors:
            response["errors"] = [_formatted(e) for e in result.errors]
        return jsonify(response)

    return app
