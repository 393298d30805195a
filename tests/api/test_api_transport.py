"""The transport against a real HTTP server that answers what the reference API never would:
a 200 whose body is not a GraphQL answer, a lone error object, and the two auth schemes."""

import json
import threading
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scheduler_service.api.transport import Transport, auth_headers, encode
from scheduler_service.errors import NotFound, Transient, UpstreamError


class CannedServer:
    """Answers every POST with ``self.answer`` (a body); keeps the headers it received."""

    def __init__(self):
        self.answer = b"{}"
        self.headers = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.answer)))
                self.end_headers()
                self.wfile.write(server.answer)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/graphql"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def canned():
    server = CannedServer()
    yield server
    server.stop()


@pytest.fixture
def transport(canned):
    made = Transport(canned.url, "the-token", timeout_s=5)
    yield made
    made.close()


@pytest.mark.parametrize("answer, message", [
    (b"<html>proxy error</html>", "the API answered 200 without a JSON object"),
    (b"[1, 2]", "the API answered 200 without a JSON object"),
    (b"{}", "the API answered without data or errors"),
    (b'{"data": null}', "the API answered without data or errors"),
    (b'{"data": [1]}', "the API answered without data or errors"),
])
def test_a_200_that_is_no_graphql_answer_is_transient(canned, transport, answer, message):
    canned.answer = answer
    with pytest.raises(Transient, match=message) as raised:
        transport.post(b'{"query": "{ campaigns { id } }"}', "Campaigns")
    assert raised.value.code == "BAD_RESPONSE" and raised.value.operation == "Campaigns"


def test_a_lone_error_object_is_read_like_a_list_of_one(canned, transport):
    canned.answer = json.dumps({"errors": {"message": "no such settlement",
                                           "extensions": {"code": "NOT_FOUND"}}}).encode()
    with pytest.raises(NotFound, match="no such settlement"):
        transport.post(b"{}", "Settlement")


def test_the_data_of_an_answer_is_returned(canned, transport):
    canned.answer = b'{"data": {"campaigns": []}}'
    assert transport.post(b"{}") == {"campaigns": []}


@pytest.mark.parametrize("scheme, header, value", [
    ("api-key", "x-api-key", "the-token"),
    ("bearer", "Authorization", "Bearer the-token"),
])
def test_each_auth_scheme_sends_its_header(canned, scheme, header, value):
    canned.answer = b'{"data": {}}'
    made = Transport(canned.url, "the-token", auth_scheme=scheme, timeout_s=5)
    try:
        made.post(b"{}")
    finally:
        made.close()
    sent = {k.lower(): v for k, v in canned.headers[-1].items()}
    assert sent[header.lower()] == value
    assert ("authorization" in sent) is (scheme == "bearer")


def test_an_unknown_auth_scheme_is_refused_naming_it():
    with pytest.raises(ValueError, match="unknown API auth scheme 'basic'"):
        auth_headers("t", "basic")


def test_a_request_that_cannot_be_made_is_a_permanent_error():
    made = Transport("ftp://127.0.0.1/graphql", "t", timeout_s=5)
    try:
        with pytest.raises(UpstreamError, match="request failed") as raised:
            made.post(b"{}", "Campaigns")
    finally:
        made.close()
    assert not isinstance(raised.value, Transient)


def test_the_body_carries_aware_datetimes_as_utc_and_dates_as_iso():
    paris = timezone(timedelta(hours=2))
    body = json.loads(encode("query Q { x }", {"at": datetime(2026, 3, 1, 14, 0, 0, 123456, paris),
                                               "on": date(2026, 3, 1)}, "Q"))
    assert body == {"query": "query Q { x }", "operationName": "Q",
                    "variables": {"at": "2026-03-01T12:00:00.123Z", "on": "2026-03-01"}}
    assert json.loads(encode("{ x }", None, None)) == {"query": "{ x }", "variables": {}}


@pytest.mark.parametrize("value, message", [
    (datetime(2026, 3, 1, 12, 0), "naive datetime sent to the API; give it a timezone"),
    ({1, 2}, "set is not JSON serialisable"),
])
def test_a_value_json_cannot_carry_is_refused_before_sending(value, message):
    with pytest.raises(TypeError, match=message):
        encode("{ x }", {"v": value}, None)
