"""One HTTP POST of a GraphQL document: the only module that knows ``requests`` exists.

A :class:`Transport` owns one pooled :class:`requests.Session` (its connection pool is shared
safely by threads; the client never touches cookies or per-request session state). Every
``requests`` exception and every unusable answer is translated here into the service's
exception tree, so one attempt either returns the ``data`` member or raises an
:class:`~scheduler_service.errors.UpstreamError`.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import requests
from requests.adapters import HTTPAdapter

from .. import __version__
from ..errors import Transient, UpstreamError
from .failures import error_from_graphql, error_from_http

#: Connections kept open to the API per process (more threads than this just queue).
DEFAULT_POOL_SIZE = 32


def auth_headers(token: str, scheme: str) -> dict[str, str]:
    """The authentication header of ``API_AUTH_SCHEME``: ``api-key`` or ``bearer``."""
    if scheme == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if scheme == "api-key":
        return {"x-api-key": token}
    raise ValueError(f"unknown API auth scheme {scheme!r}")


def _json_default(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime sent to the API; give it a timezone")
        text = value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(query: str, variables: dict | None, operation: str | None) -> bytes:
    """The JSON body of a GraphQL request; aware datetimes become ISO-8601 UTC strings."""
    body = {"query": query, "variables": variables or {}}
    if operation:
        body["operationName"] = operation
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def _never_connected(error: BaseException) -> bool:
    """Whether a connection error happened before a connection existed (nothing was sent).

    ``requests`` wraps urllib3's ``MaxRetryError`` whose ``reason`` is a
    ``NewConnectionError`` (refused, unreachable, unknown host) when the socket never
    connected; a reset or an abort on an open connection may come after the request went out.
    """
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    cause = error.args[0] if error.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    return isinstance(cause, NewConnectionError)


class Transport:
    """POSTs GraphQL documents to one endpoint.

    Args:
        url: the GraphQL endpoint.
        token: the service-account credential.
        auth_scheme: ``api-key`` (``x-api-key`` header) or ``bearer``.
        timeout_s: connect and read timeout of each request.
        headers: extra headers sent with every request.
        pool_size: connections kept alive.
    """

    def __init__(self, url: str, token: str, auth_scheme: str = "api-key", timeout_s: float = 10.0,
                 headers: dict | None = None, pool_size: int = DEFAULT_POOL_SIZE):
        self.url = url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Proxy and CA-bundle variables (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE...) are read
        # once here instead of on every request (requests would also look for ~/.netrc each
        # time, which the explicit auth header makes pointless): a measurable share of a
        # worker's CPU per call.
        found = self.session.merge_environment_settings(url, {}, None, None, None)
        self.session.proxies.update(found["proxies"])
        self.session.verify, self.session.cert = found["verify"], found["cert"]
        self.session.trust_env = False
        self.session.headers.update({
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"scheduler-service/{__version__}",
            **auth_headers(token, auth_scheme),
            **(headers or {}),
        })
        # Every call is the same POST but for its body: prepare it once (headers, URL, auth),
        # then send a copy with the body swapped in; requests' per-call preparation and
        # settings merge were a third of a worker's CPU per call.
        self._template = self.session.prepare_request(requests.Request("POST", url, data=b"{}"))

    def post(self, body: bytes, operation: str | None = None) -> dict:
        """Send one request.

        Returns:
            The ``data`` member of the answer.

        Raises:
            Transient: timeout, connection error, HTTP 5xx/429, ``INTERNAL``, garbled answer.
            UpstreamError: any other error answer (a subclass per GraphQL code).
        """
        request = self._template.copy()
        request.body = body
        request.headers = self.session.headers.copy()  # headers set after start count too
        request.headers["Content-Length"] = str(len(body))
        request.hooks = self.session.hooks
        try:
            response = self.session.send(request, timeout=self.timeout_s, allow_redirects=False)
        except requests.exceptions.ConnectTimeout as e:
            raise Transient(f"cannot connect to the API within {self.timeout_s * 1000:.0f} ms: "
                            f"{e}", operation=operation, code="CONNECT_TIMEOUT",
                            maybe_applied=False) from e
        except requests.Timeout as e:
            raise Transient(f"no answer within {self.timeout_s * 1000:.0f} ms: {e}",
                            operation=operation, code="TIMEOUT") from e
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            raise Transient(f"cannot reach the API: {e}", operation=operation,
                            code="CONNECTION", maybe_applied=not _never_connected(e)) from e
        except requests.RequestException as e:
            raise UpstreamError(f"request failed: {e}", operation=operation) from e
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200:
            raise error_from_http(response.status_code, payload, operation)
        if not isinstance(payload, dict):
            raise Transient("the API answered 200 without a JSON object", operation=operation,
                            code="BAD_RESPONSE")
        errors = payload.get("errors")
        if errors:
            raise error_from_graphql(errors if isinstance(errors, list) else [errors], operation)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise Transient("the API answered without data or errors", operation=operation,
                            code="BAD_RESPONSE")
        return data

    def close(self) -> None:
        self.session.close()
