"""Bad input to the REST API, case by case, through a live ``scheduler-service web``.

Each row sends one bad request over real HTTP (gunicorn in front of the app) and asserts
the exact status, that the error body names the field, header or parameter at fault, and
that the namespace's Redis keys (job records, indexes, timers, Dramatiq queues, schedules,
recurring jobs, world clocks) are the same before and after: nothing was enqueued, stored
or changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import requests

from helpers import live_web, over_long_request_line, redis_state

TOKEN = "bad-input-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OVER_LIMIT = b'{"type": "PING", "campaignId": "c1", "payload": {"pad": "' + b"x" * 70_000 + b'"}}'
DEEP = b'{"type": "PING", "campaignId": "c1", "payload": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}"
NESTED_40 = {"type": "PING", "campaignId": "c1", "payload": {}}
_inner: dict = NESTED_40["payload"]
for _ in range(40):
    _inner["a"] = {}
    _inner = _inner["a"]


@dataclass
class Case:
    """One bad request: ``path`` may name ``{job}`` (a scheduled job) or ``{rid}``."""

    name: str
    method: str
    path: str
    status: int
    names: str
    json: object = None
    data: object = None
    headers: dict = field(default_factory=dict)
    auth: bool = True

    def __str__(self):
        return self.name


def chunks(body: bytes, size: int = 8192):
    for start in range(0, len(body), size):
        yield body[start:start + size]


ECHO = {"type": "SAMPLE_ECHO", "campaignId": "c1"}
RECURRING = {"type": "PING", "campaignId": "c1", "clock": "wall", "cron": "0 0 1 1 *"}
CASES = [
    # -- bodies: types, formats, shapes ---------------------------------------------------
    Case("priority as a string", "POST", "/jobs", 400, "priority",
         json={"type": "PING", "campaignId": "c1", "priority": "5"}),
    Case("priority as a boolean", "POST", "/jobs", 400, "priority",
         json={"type": "PING", "campaignId": "c1", "priority": True}),
    Case("priority as a fraction", "POST", "/jobs", 400, "priority",
         json={"type": "PING", "campaignId": "c1", "priority": 5.5}),
    Case("priority out of range", "POST", "/jobs", 400, "priority",
         json={"type": "PING", "campaignId": "c1", "priority": 11}),
    Case("type missing", "POST", "/jobs", 400, "type", json={"campaignId": "c1"}),
    Case("type unknown", "POST", "/jobs", 400, "type", json={"type": "NOPE", "campaignId": "c1"}),
    Case("payload field missing", "POST", "/jobs", 400, "payload.text", json={**ECHO, "payload": {}}),
    Case("payload field a number for a string", "POST", "/jobs", 400, "payload.text",
         json={**ECHO, "payload": {"text": 5}}),
    Case("campaign id reaching into another key", "POST", "/jobs", 400, "campaignId",
         json={"type": "PING", "campaignId": "c1:history"}),
    Case("unknown field", "POST", "/jobs", 400, "surprise",
         json={"type": "PING", "campaignId": "c1", "surprise": 1}),
    Case("runAt not a timestamp", "POST", "/jobs", 400, "runAt",
         json={"type": "PING", "campaignId": "c1", "runAt": "tomorrow"}),
    Case("body an array", "POST", "/jobs", 400, "body", json=[{"type": "PING"}]),
    Case("body malformed JSON", "POST", "/jobs", 400, "body", data=b'{"type": "PING",',
         headers={"Content-Type": "application/json"}),
    Case("body nested 20,000 deep", "POST", "/jobs", 400, "body", data=DEEP,
         headers={"Content-Type": "application/json"}),
    Case("payload nested 40 deep", "POST", "/jobs", 400, "body", json=NESTED_40),
    Case("body over 64 KiB with Content-Length", "POST", "/jobs", 413, "body", data=OVER_LIMIT,
         headers={"Content-Type": "application/json"}),
    Case("body over 64 KiB chunked", "POST", "/jobs", 413, "body", data=OVER_LIMIT,
         headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}),
    Case("patch priority as a string", "PATCH", "/jobs/{job}", 400, "priority", json={"priority": "5"}),
    Case("patch both clocks", "PATCH", "/jobs/{job}", 400, "body",
         json={"runAt": "2030-01-01T00:00:00Z", "runAtWorldTime": "2030-01-01T00:00:00Z"}),
    Case("schedule enabled null", "PATCH", "/schedules/sample-tick", 400, "enabled",
         json={"enabled": None}),
    Case("schedule enabled 1", "PATCH", "/schedules/sample-tick", 400, "enabled", json={"enabled": 1}),
    Case("schedule overlap null", "PATCH", "/schedules/sample-tick", 400, "overlap",
         json={"overlap": None}),
    Case("recurring maxOccurrences a string", "POST", "/recurring", 400, "maxOccurrences",
         json={**RECURRING, "maxOccurrences": "3"}),
    Case("recurring paused 0", "PATCH", "/recurring/{rid}", 400, "paused", json={"paused": 0}),
    # -- headers ---------------------------------------------------------------------------
    Case("Content-Type text/plain", "POST", "/jobs", 415, "Content-Type",
         data=b'{"type": "PING", "campaignId": "c1"}', headers={"Content-Type": "text/plain"}),
    Case("Content-Type missing", "POST", "/jobs", 415, "Content-Type",
         data=b'{"type": "PING", "campaignId": "c1"}'),
    Case("Authorization missing", "POST", "/jobs", 401, "Authorization",
         json={"type": "PING", "campaignId": "c1"}, auth=False),
    Case("Authorization Basic", "POST", "/jobs", 401, "Authorization",
         json={"type": "PING", "campaignId": "c1"}, auth=False,
         headers={"Authorization": f"Basic {TOKEN}"}),
    Case("Authorization Bearer without a token", "DELETE", "/jobs/{job}", 401, "Authorization",
         auth=False, headers={"Authorization": "Bearer"}),
    Case("Authorization with the token only", "PATCH", "/schedules/sample-tick", 401,
         "Authorization", json={"enabled": False}, auth=False, headers={"Authorization": TOKEN}),
    Case("X-Actor reserved", "PATCH", "/schedules/sample-tick", 400, "X-Actor",
         json={"enabled": False}, headers={"X-Actor": "cron"}),
    Case("X-Actor reserved, other case", "POST", "/schedules/sample-tick/run", 400, "X-Actor",
         headers={"X-Actor": "System"}),
    Case("X-Actor reserved, on a job create", "POST", "/jobs", 400, "X-Actor",
         json={"type": "PING", "campaignId": "c1"}, headers={"X-Actor": "cron"}),
    Case("X-Actor reserved, on a job cancel", "DELETE", "/jobs/{job}", 400, "X-Actor",
         headers={"X-Actor": "worker"}),
    Case("X-Actor too long", "PATCH", "/schedules/sample-tick", 400, "X-Actor",
         json={"enabled": False}, headers={"X-Actor": "a" * 65}),
    Case("X-Actor not UTF-8", "PATCH", "/schedules/sample-tick", 400, "X-Actor",
         json={"enabled": False}, headers={"X-Actor": b"ops\xff\xfe"}),
    Case("X-Actor with a slash", "PATCH", "/schedules/sample-tick", 400, "X-Actor",
         json={"enabled": False}, headers={"X-Actor": "ops/../cron"}),
    # -- ids in paths and filters ----------------------------------------------------------
    Case("job id naming its history key", "GET", "/jobs/{job}:history", 404, "job_id"),
    Case("job id not a UUID", "DELETE", "/jobs/not-a-uuid", 404, "job_id"),
    Case("job id naming its history key, patch", "PATCH", "/jobs/{job}:history", 404, "job_id",
         json={"priority": 1}),
    Case("dead letter id not a UUID", "POST", "/dead-letters/x/requeue", 404, "job_id"),
    Case("recurring id with a colon", "DELETE", "/recurring/{rid}:history", 404, "rid"),
    Case("schedule name not kebab-case", "PATCH", "/schedules/Sample_Tick", 404, "name",
         json={"enabled": False}),
    Case("campaign id with a colon", "POST", "/world-clocks/c1:history/reset", 404, "campaign_id"),
    Case("campaign id with a colon, preview", "POST", "/campaigns/a:b/preview", 404, "campaign_id",
         json={"until": "2030-01-01T00:00:00Z"}),
    Case("filter campaignId with a colon", "GET", "/jobs?campaignId=c1:history", 400, "campaignId"),
    Case("filter type not a type name", "GET", "/jobs?type=ping%20pong", 400, "type"),
    Case("limit zero", "GET", "/jobs?limit=0", 400, "limit"),
    Case("cursor not one the API gave", "GET", "/jobs?cursor=abc", 400, "cursor"),
    Case("request line over 4 KiB", "GET", "/jobs?campaignId=" + "a" * 5000, 414, "request-line"),
]


@pytest.fixture(scope="module")
def live(redis_server, plugin_paths, reference_api, tmp_path_factory):
    """The live web process, with a scheduled job and a recurring job to aim changes at."""
    log = tmp_path_factory.mktemp("bad-input-web") / "web.log"
    with live_web(redis_server.url, reference_api.client_env(), [plugin_paths["sample"]], log,
                  TOKEN) as web:
        url, services = web.url, web.services
        api = f"{url}/api/v1"
        job = requests.post(f"{api}/jobs", json={"type": "PING", "campaignId": "c1",
                                                 "runAt": "2099-01-01T00:00:00Z"},
                            headers=AUTH, timeout=10).json()["id"]
        rid = requests.post(f"{api}/recurring", json=RECURRING, headers=AUTH,
                            timeout=10).json()["id"]
        yield api, services, {"job": job, "rid": rid}


def send(api, case: Case, ids: dict) -> requests.Response:
    headers = {**(AUTH if case.auth else {}), **case.headers}
    data = case.data
    if headers.get("Transfer-Encoding") == "chunked":
        headers.pop("Transfer-Encoding")
        data = chunks(data)  # requests sends a generator chunked, with no Content-Length
    return requests.request(case.method, api + case.path.format(**ids), json=case.json, data=data,
                            headers=headers, timeout=20)


def test_the_table_has_the_rows_it_promises():
    assert len(CASES) >= 28 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_rest_input_is_refused_naming_it_and_changes_nothing(live, case):
    api, services, ids = live
    namespace = services.settings.redis_namespace
    before = redis_state(services.redis, namespace)
    response = send(api, case, ids)
    assert response.status_code == case.status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    error = response.json()["error"]
    named = [d["field"] for d in error["details"]]
    assert case.names in named, error
    assert redis_state(services.redis, namespace) == before


def test_an_actor_is_stored_as_sent_in_utf8(live):
    from scheduler_service.ops_client import ServiceClient

    api, services, _ = live
    # Given a UTF-8 X-Actor, sent as its bytes over HTTP
    r = requests.patch(f"{api}/schedules/sample-ping", json={"enabled": False},
                       headers={**AUTH, "X-Actor": "José Ñandú".encode()}, timeout=10)
    assert r.status_code == 200, r.text
    # and another through the operator CLI's client
    cli = ServiceClient(api.removesuffix("/api/v1"), TOKEN, actor="Zoë (cli)")
    cli.call("PATCH", "/api/v1/schedules/sample-ping", json={"enabled": True})
    # Then the history has both names intact, over the API and in Redis
    history = requests.get(f"{api}/schedules/sample-ping/history", headers=AUTH, timeout=10).json()
    assert [h["actor"] for h in history["items"]] == ["José Ñandú", "Zoë (cli)"]
    key = f"{services.settings.redis_namespace}:cron:history:sample-ping"
    stored = [json.loads(raw)["actor"] for raw in services.redis.lrange(key, 0, -1)]
    assert stored == ["José Ñandú", "Zoë (cli)"]


def test_a_request_line_over_the_limit_gets_the_json_error_body(live):
    # gunicorn refuses it before the app; its answer still has the API's error body.
    api, _, _ = live
    head, body = over_long_request_line(api)
    assert head.startswith(b"HTTP/1.1 414 ") and b"Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "URI_TOO_LONG" and error["details"][0]["field"] == "request-line"
