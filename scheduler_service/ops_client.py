"""The operator command line's HTTP client of the REST API, and the exit codes it ends with.

Every failure becomes an :class:`OperatorError` carrying the exit code a script can trust and
one line for standard error:

* ``0`` done;
* ``1`` (partly) failed: the service refused some or all of the work (404, 409, 500), each
  refusal named;
* ``2`` bad usage: the command line, or what it asked for, is invalid (the service's 400, 413,
  415 included, with the field it names);
* ``3`` the service is unreachable or refuses the caller: no connection, a time-out, 401/403,
  502/503/504, or an answer that is not the scheduler API's.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import requests

from . import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

#: Where ``--url`` points without ``SCHEDULER_URL``: a local ``dev`` or ``run``.
DEFAULT_URL = "http://127.0.0.1:9266"

_USAGE_STATUSES = (400, 413, 415, 422)
_UNAVAILABLE_STATUSES = (502, 503, 504)


class OperatorError(Exception):
    """A command that cannot finish: its exit code and one line saying why.

    Attributes:
        exit_code: 1, 2 or 3 (see the module's docstring).
        status: the HTTP status, when the service answered.
        code: the error code of the service's body (``WRONG_STATE``...), when it sent one.
    """

    def __init__(self, exit_code: int, message: str, status: int | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.code = code


def check_url(url: str) -> str:
    """``url`` without a trailing slash.

    Raises:
        OperatorError: (exit 2) when it is not an http(s) URL with a host.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OperatorError(EXIT_USAGE, f"--url (or SCHEDULER_URL) must be an http(s) URL with a "
                                        f"host, e.g. {DEFAULT_URL}; got {url!r}")
    return url.rstrip("/")


def path(*parts: str) -> str:
    """An API path with each part quoted (job ids and sweep names come from the user)."""
    return "/api/v1/" + "/".join(quote(p, safe="") for p in parts)


class ServiceClient:
    """Calls the scheduler's REST API.

    Args:
        url: the service's base URL (``http://host:9266``).
        token: the bearer token (``SCHEDULER_API_TOKEN``); None sends none.
        timeout: seconds to wait for each answer.
        actor: sent as ``X-Actor``, recorded in the history of schedule changes.
    """

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 actor: str | None = None):
        self.url = check_url(url)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"scheduler-service-cli/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if actor:
            self.session.headers["X-Actor"] = actor.encode()  # UTF-8 (requests sends str as Latin-1)
        self.has_token = bool(token)

    def call(self, method: str, api_path: str, *, json=None, params=None):
        """One request; returns the JSON body of a 2xx answer.

        Raises:
            OperatorError: every other outcome, with its exit code.
        """
        target = self.url + api_path
        try:
            response = self.session.request(method, target, json=json, params=params,
                                            timeout=self.timeout)
        except requests.Timeout:
            raise OperatorError(EXIT_UNAVAILABLE, f"the scheduler at {self.url} did not answer "
                                                  f"within {self.timeout:g} s") from None
        except requests.ConnectionError as e:
            raise OperatorError(EXIT_UNAVAILABLE, f"cannot reach the scheduler at {self.url} "
                                                  f"({_reason(e)})") from None
        except requests.RequestException as e:
            raise OperatorError(EXIT_UNAVAILABLE, f"request to {self.url} failed: {e}") from None
        return self._answer(method, api_path, response)

    def _answer(self, method, api_path, response):
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if 200 <= status < 300 and body is not None:
            return body
        if status in (401, 403):
            hint = ("give --token or set SCHEDULER_API_TOKEN" if not self.has_token
                    else "check --token or SCHEDULER_API_TOKEN")
            raise OperatorError(EXIT_UNAVAILABLE, f"the scheduler at {self.url} refused the "
                                                  f"request ({status}): {hint}", status,
                                "UNAUTHENTICATED")
        if not isinstance(error, dict):
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise OperatorError(EXIT_UNAVAILABLE, f"{method} {self.url}{api_path} answered HTTP "
                                                  f"{status} ({kind}), not the scheduler API's "
                                                  "JSON: is --url the scheduler service?", status)
        code = error.get("code") or "ERROR"
        message = f"{status} {code}: {error.get('message') or 'no message'}"
        if status in _USAGE_STATUSES:
            raise OperatorError(EXIT_USAGE, message, status, code)
        if status in _UNAVAILABLE_STATUSES:
            raise OperatorError(EXIT_UNAVAILABLE, message, status, code)
        raise OperatorError(EXIT_FAILED, message, status, code)

    def pages(self, api_path: str, params: dict, page_size: int = 500):
        """Every item of a listing, following ``nextCursor`` page after page."""
        cursor = None
        while True:
            query = {**params, "limit": page_size, **({"cursor": cursor} if cursor else {})}
            body = self.call("GET", api_path, params=query)
            yield from body["items"]
            cursor = body.get("nextCursor")
            if not cursor:
                return

    def close(self):
        self.session.close()


def _reason(error: requests.ConnectionError) -> str:
    """What went wrong with a connection, in a few words (``connection refused``)."""
    text = str(error)
    for marker, reason in (("Connection refused", "connection refused"),
                           ("Name or service not known", "unknown host"),
                           ("Temporary failure in name resolution", "unknown host"),
                           ("timed out", "connection timed out"),
                           ("Connection reset", "connection reset"),
                           ("RemoteDisconnected", "the connection closed without an answer")):
        if marker in text:
            return reason
    return text[-200:] or type(error).__name__
