"""The pieces the create request path is made of: ids, the held Redis connection, JSON out."""

import datetime
import json
import os
import uuid

import pytest
import redis
from flask import Flask, jsonify

from scheduler_service import ids
from scheduler_service.redis_client import HeldConnection
from scheduler_service.web.jsonio import OrjsonProvider


# -- ids ---------------------------------------------------------------------------------
def test_new_uuid_is_a_version_4_rfc_4122_uuid():
    seen = set()
    for _ in range(20_000):
        text = ids.new_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 20_000
    # every variant nibble (8, 9, a, b) is made
    assert {t[19] for t in seen} == set("89ab")


def test_random_hex_has_the_length_asked():
    for n in (1, 8, 16):
        text = ids.random_hex(n)
        assert len(text) == 2 * n and int(text, 16) >= 0 and text == text.lower()


def test_a_forked_child_makes_other_ids_than_its_parent():
    # The generator is reseeded in the child: without it, both would make the same next id.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids.new_uuid().encode())
        os._exit(0)
    os.close(write)
    parent_next = ids.new_uuid()
    os.waitpid(pid, 0)
    child_next = os.read(read, 64).decode()
    os.close(read)
    assert uuid.UUID(child_next) and child_next != parent_next


# -- HeldConnection ----------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _client_id(client) -> int:
    return client.client_id()


def test_held_connection_is_kept_between_calls_and_given_back_after_its_hold(redis_client):
    pool_client = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    clock = Clock()
    held = HeldConnection(pool_client, hold_s=1.0, clock=clock)
    first = _client_id(held.client())
    clock.now += 0.5
    assert _client_id(held.client()) == first  # the same connection, not taken again
    assert len(pool_client.connection_pool._in_use_connections) == 1
    clock.now += 0.6  # past the hold: given back to the pool and taken again
    again = held.client()
    assert _client_id(again) == first  # the pool handed the same (idle) connection back
    assert held._until == clock.now + 1.0
    held.release()
    assert not pool_client.connection_pool._in_use_connections
    assert len(pool_client.connection_pool._available_connections) == 1
    pool_client.connection_pool.disconnect()


def test_held_connection_reconnects_after_redis_dropped_it(redis_client):
    pool_client = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    held = HeldConnection(pool_client, hold_s=60.0, clock=Clock())
    first = _client_id(held.client())
    redis_client.client_kill_filter(_id=first)
    with pytest.raises(redis.ConnectionError):
        held.client().ping()  # the call that meets the closed socket fails...
    assert _client_id(held.client()) != first  # ...and the next one connects again
    held.release()
    pool_client.connection_pool.disconnect()


def test_held_connection_in_a_forked_child_takes_its_own(redis_client):
    pool_client = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    held = HeldConnection(pool_client, hold_s=60.0, clock=Clock())
    parent = _client_id(held.client())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, str(_client_id(held.client())).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = int(os.read(read, 32) or 0)
    os.close(read)
    assert child and child != parent
    assert _client_id(held.client()) == parent  # the parent's connection still works
    held.release()
    pool_client.connection_pool.disconnect()


def test_run_script_sends_by_sha_and_loads_a_script_redis_forgot(redis_client):
    pool_client = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    held = HeldConnection(pool_client, hold_s=60.0, clock=Clock())
    script = pool_client.register_script("return {ARGV[1], #ARGV}")
    redis_client.script_flush()
    assert held.run_script(script, ["a", "b", "c"]) == [b"a", 3]  # NOSCRIPT: loaded, retried
    assert held.run_script(script, ["z"]) == [b"z", 1]  # now by its SHA
    failing = pool_client.register_script("return redis.error_reply('BAD no such thing')")
    with pytest.raises(redis.ResponseError, match="no such thing"):
        held.run_script(failing, [])
    assert held.run_script(script, ["again"]) == [b"again", 1]  # the connection is still good
    held.release()
    pool_client.connection_pool.disconnect()


# -- JSON out ----------------------------------------------------------------------------
@pytest.fixture
def json_app():
    app = Flask("jsonio")
    app.json = OrjsonProvider(app)
    stock = Flask("stock")
    stock.json.sort_keys = False
    return app, stock


RECORD = {"id": "0b6c3d0e-8f1a-4c2b-9d3e-5f6a7b8c9d0e", "type": "PING", "campaignId": "c-1",
          "payload": {"name": "José", "n": [1, 2.5, None, True], "nested": {"z": 1, "a": 2}},
          "priority": 5, "state": "queued", "runAt": None, "attempts": 0, "lastError": None}


@pytest.mark.parametrize("value", [
    RECORD,
    [RECORD, {"b": 1, "a": 2}],
    {"big": 2**70},                     # over 64 bits: orjson refuses, json writes it
    {1: "int key"},                     # a key that is not a string
    {"when": datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)},  # an HTTP date
    {"day": datetime.date(2026, 3, 1)},
    {"id": uuid.UUID("0b6c3d0e-8f1a-4c2b-9d3e-5f6a7b8c9d0e")},
    "text", 3, None,
])
def test_responses_read_back_as_flasks_own(json_app, value):
    app, stock = json_app
    with app.app_context():
        ours = jsonify(value)
        text = app.json.dumps(value)
    with stock.app_context():
        theirs = jsonify(value)
        stock_text = stock.json.dumps(value)
    assert ours.mimetype == theirs.mimetype == "application/json"
    assert ours.get_data().endswith(b"\n")
    assert json.loads(ours.get_data()) == json.loads(theirs.get_data())
    assert json.loads(text) == json.loads(stock_text)


def test_key_order_is_kept_and_text_is_utf8(json_app):
    app, _ = json_app
    with app.app_context():
        body = jsonify({"b": 1, "a": "José"}).get_data()
    assert body == '{"b":1,"a":"José"}\n'.encode()


def test_debug_mode_still_pretty_prints(json_app):
    app, _ = json_app
    app.debug = True
    with app.app_context():
        body = jsonify({"a": 1}).get_data()
    assert body == b'{\n  "a": 1\n}\n'


# -- body depth --------------------------------------------------------------------------
class _Body(__import__("pydantic").BaseModel):
    data: object = None


@pytest.mark.parametrize("body, deep", [
    ({"data": [{} for _ in range(100)]}, False),          # many brackets, two levels
    ({"data": "{" * 100 + "[" * 100}, False),             # brackets inside a string
    ({"data": json.loads("[" * 31 + "]" * 31)}, False),  # 32 levels with the body's own
    ({"data": json.loads("[" * 32 + "]" * 32)}, True),   # 33
])
def test_only_bodies_nested_over_the_limit_are_refused(body, deep):
    from scheduler_service.web.errors import ApiError
    from scheduler_service.web.openapi import parse_json_body

    app = Flask("depth")
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    with app.test_request_context("/", method="POST", data=json.dumps(body),
                                  content_type="application/json"):
        if deep:
            with pytest.raises(ApiError) as refused:
                parse_json_body(_Body)
            assert refused.value.status == 400 and "32" in str(refused.value)
        else:
            assert parse_json_body(_Body).data == body["data"]
