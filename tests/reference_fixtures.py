"""Fixtures for the reference campaign API: one live server per test run, over HTTP.

* ``reference_api`` (session): ``scheduler-service reference-api`` started once as a child
  process on a free port, with an empty database, test hooks on and the session Redis.
  It is a :class:`ReferenceApi`: ``.url`` (the ``/graphql`` URL), ``.key``, ``.gql(...)``
  and builders (``make_campaign``, ``make_kingdom``, ``make_settlement``...) so that each
  test builds its own world, with unique names, instead of sharing state.
* ``spawn_reference_api`` (function): starts further servers with other settings (test hooks
  off, another seed, production) and stops them after the test; for tests whose point is the
  server process itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timezone
from pathlib import Path

import pytest
import requests

from scheduler_service.embedded_redis import free_port

#: The API key the session server accepts.
TEST_KEY = "test-reference-key"
_DEFAULT = object()


def iso(value) -> str | None:
    """A DateTime argument: datetimes become ISO-8601 UTC with milliseconds and ``Z``."""
    if value is None or isinstance(value, str):
        return value
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class GraphQLErrors(AssertionError):
    """A response that was expected to succeed carried ``errors``."""


class ReferenceApi:
    """A running reference API and helpers to call it.

    Attributes:
        url: the GraphQL endpoint (``http://127.0.0.1:<port>/graphql``).
        base_url: ``http://127.0.0.1:<port>``.
        key: the API key it accepts.
        port: its port.
        db_path: its SQLite file.
        process: the server process (``subprocess.Popen``).
        log_path: where its stdout and stderr go.
    """

    def __init__(self, port: int, key: str, db_path: Path, process, log_path: Path):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.url = f"{self.base_url}/graphql"
        self.key = key
        self.db_path = db_path
        self.process = process
        self.log_path = log_path
        self.session = requests.Session()

    def client_env(self, **overrides) -> dict:
        """Settings that point the scheduler's API client here (no rate limit), plus overrides."""
        return {"API_URL": self.url, "API_SERVICE_ACCOUNT_TOKEN": self.key,
                "API_RATE_LIMIT_PER_SECOND": 0, **overrides}

    # -- raw calls -------------------------------------------------------------------------

    def post(self, query: str, variables=None, *, key=_DEFAULT, headers=None, timeout=30,
             operation_name=None) -> requests.Response:
        """POST one GraphQL request; ``key=None`` sends no key. Returns the raw response."""
        sent = {"content-type": "application/json"}
        key = self.key if key is _DEFAULT else key
        if key is not None:
            sent["x-api-key"] = key
        sent.update(headers or {})
        body = {"query": query, "variables": variables}
        if operation_name is not None:
            body["operationName"] = operation_name
        return self.session.post(self.url, json=body, headers=sent, timeout=timeout)

    def gql(self, query: str, variables=None, *, key=_DEFAULT, headers=None, timeout=30) -> dict:
        """POST one GraphQL request and return the parsed JSON body (``data`` and ``errors``)."""
        return self.post(query, variables, key=key, headers=headers, timeout=timeout).json()

    def data(self, query: str, variables=None, **kwargs) -> dict:
        """Like :meth:`gql`, but fail on ``errors`` and return ``data``."""
        body = self.gql(query, variables, **kwargs)
        if body.get("errors"):
            raise GraphQLErrors(f"GraphQL errors: {body['errors']}")
        return body["data"]

    # -- world builders --------------------------------------------------------------------

    def make_campaign(self, name=None, world_time=None, settings=None) -> dict:
        """Create a campaign (``world_time``: datetime, ISO string or None for no clock)."""
        return self.data(
            "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) "
            "{ id name currentWorldTime isActive settings } }",
            {"i": {"name": name or unique("campaign"), "currentWorldTime": iso(world_time),
                   "settings": settings}})["createCampaign"]

    def make_kingdom(self, campaign_id, name=None, level=1, variables=None) -> dict:
        return self.data(
            "mutation($i: CreateKingdomInput!) { createKingdom(input: $i) "
            "{ id campaignId name level variables version } }",
            {"i": {"campaignId": campaign_id, "name": name or unique("kingdom"), "level": level,
                   "variables": variables or {}}})["createKingdom"]

    def make_settlement(self, kingdom_id, name=None, level=1, variables=None) -> dict:
        return self.data(
            "mutation($i: CreateSettlementInput!) { createSettlement(input: $i) "
            "{ id kingdomId campaignId name level variables version } }",
            {"i": {"kingdomId": kingdom_id, "name": name or unique("settlement"), "level": level,
                   "variables": variables or {}}})["createSettlement"]

    def create_many(self, mutation: str, arguments: str, declarations: str, variables: dict,
                    count: int, batch: int = 200) -> list[str]:
        """Run ``mutation`` ``count`` times, ``batch`` aliases a request; returns the new ids.

        ``arguments`` is the input object's text with ``{n}`` for a running number
        (names), ``declarations`` the operation's variable declarations.
        """
        ids = []
        for start in range(0, count, batch):
            n = min(batch, count - start)
            fields = " ".join(f"m{i}: {mutation}(input: {{" + arguments.format(n=start + i) + "}) { id }"
                              for i in range(n))
            data = self.data(f"mutation({declarations}) {{ {fields} }}", variables)
            ids += [data[f"m{i}"]["id"] for i in range(n)]
        return ids

    def make_settlements(self, kingdom_id, count: int, variables=None, batch: int = 200) -> list[str]:
        """Create ``count`` settlements, ``batch`` aliased mutations per request; returns ids."""
        return self.create_many("createSettlement", 'kingdomId: $k, name: "s{n}", variables: $v',
                                "$k: ID!, $v: JSON", {"k": kingdom_id, "v": variables or {}},
                                count, batch)

    def make_events(self, campaign_id, count: int, scheduled_at, event_type="world",
                    batch: int = 200) -> list[str]:
        """Create ``count`` events at ``scheduled_at``, ``batch`` aliased mutations per request."""
        return self.create_many(
            "createEvent", f'campaignId: $c, name: "e{{n}}", eventType: "{event_type}", scheduledAt: $at',
            "$c: ID!, $at: DateTime", {"c": campaign_id, "at": iso(scheduled_at)}, count, batch)

    def make_structure(self, settlement_id, type="temple", name=None, level=1, variables=None) -> dict:
        return self.data(
            "mutation($i: CreateStructureInput!) { createStructure(input: $i) "
            "{ id settlementId campaignId type name level variables version } }",
            {"i": {"settlementId": settlement_id, "type": type, "name": name or unique(type),
                   "level": level, "variables": variables or {}}})["createStructure"]

    def make_event(self, campaign_id, scheduled_at=None, name=None, event_type="story",
                   variables=None) -> dict:
        return self.data(
            "mutation($i: CreateEventInput!) { createEvent(input: $i) { id campaignId name "
            "eventType scheduledAt occurredAt isCompleted variables version } }",
            {"i": {"campaignId": campaign_id, "name": name or unique("event"),
                   "eventType": event_type, "scheduledAt": iso(scheduled_at),
                   "variables": variables}})["createEvent"]

    def make_effect(self, entity_type, entity_id, payload, name=None, effect_type="patch",
                    timing="ON_RESOLVE", priority=0, is_active=True) -> dict:
        return self.data(
            "mutation($i: CreateEffectInput!) { createEffect(input: $i) { id name effectType "
            "payload entityType entityId timing priority isActive version executions { id } } }",
            {"i": {"name": name or unique("effect"), "effectType": effect_type,
                   "payload": payload, "entityType": entity_type, "entityId": entity_id,
                   "timing": timing, "priority": priority, "isActive": is_active}})["createEffect"]

    def make_world(self, world_time=None, settlements=1, structures=0, settlement_variables=None,
                   structure_variables=None, structure_type="temple") -> dict:
        """A campaign with one kingdom, its settlements and their structures.

        Returns:
            ``{"campaign", "kingdom", "settlements": [...], "structures": [...]}``.
        """
        camp = self.make_campaign(world_time=world_time)
        kingdom = self.make_kingdom(camp["id"])
        made = [self.make_settlement(kingdom["id"], variables=settlement_variables)
                for _ in range(settlements)]
        built = [self.make_structure(s["id"], type=structure_type, variables=structure_variables)
                 for s in made for _ in range(structures)]
        return {"campaign": camp, "kingdom": kingdom, "settlements": made, "structures": built}

    def advance(self, campaign_id, to) -> dict:
        """``advanceWorldTime``; returns the ``WorldTimeResult``."""
        return self.data(
            "mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) { campaignId "
            "previousWorldTime currentWorldTime affectedEntities message } }",
            {"i": {"campaignId": campaign_id, "to": iso(to)}})["advanceWorldTime"]

    def close(self):
        self.session.close()


def _wait_until_up(api: ReferenceApi, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if api.process.poll() is not None:
            raise RuntimeError(f"reference API exited with code {api.process.returncode}:\n"
                               f"{api.log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{api.base_url}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"reference API did not answer within {timeout}s:\n"
                               f"{api.log_path.read_text()[-3000:]}")
        time.sleep(0.05)


def start_reference_api(folder: Path, *args: str, env=None, key: str = TEST_KEY,
                        wait: bool = True, timeout: float = 30.0,
                        port: int | None = None) -> ReferenceApi:
    """Start ``scheduler-service reference-api`` in a child process on a free port.

    Args:
        folder: where its database and log go.
        args: further command-line arguments (``--seed demo``...).
        env: variables added to the environment (``SCHEDULER_ENV=test`` and the key are set).
        key: ``REFERENCE_API_KEY``.
        wait: wait until it answers (``False`` to watch a start-up refusal).
        timeout: how long to wait.
        port: the port (default: a free one); a server started again in the same ``folder``
            on the same port serves the same database.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    db_path = folder / "reference.sqlite3"
    log_path = folder / f"reference-api-{port}.log"
    child_env = dict(os.environ)
    child_env.update({"SCHEDULER_ENV": "test", "REFERENCE_API_KEY": key, "LOG_LEVEL": "WARNING",
                      "LOG_FORMAT": "text"})
    child_env.update({k: str(v) for k, v in (env or {}).items()})
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler_service", "reference-api", "--port", str(port),
             "--db", str(db_path), *args],
            env=child_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = ReferenceApi(port, key, db_path, process, log_path)
    if wait:
        try:
            _wait_until_up(api, timeout)
        except RuntimeError:
            stop_reference_api(api)
            raise
    return api


def stop_reference_api(api: ReferenceApi) -> int:
    """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
    api.close()
    if api.process.poll() is None:
        api.process.terminate()
        try:
            api.process.wait(10)
        except subprocess.TimeoutExpired:
            api.process.kill()
            api.process.wait()
    return api.process.returncode


@pytest.fixture(scope="session")
def reference_api(redis_server, tmp_path_factory):
    """One live reference API for the whole run: empty database, test hooks on."""
    api = start_reference_api(
        tmp_path_factory.mktemp("reference-api"), "--seed", "none",
        env={"REDIS_URL": redis_server.url, "REFERENCE_API_TEST_HOOKS": "true"})
    yield api
    stop_reference_api(api)


@pytest.fixture
def spawn_reference_api(tmp_path, redis_server):
    """Start extra reference API servers for one test: ``spawn(*args, env=..., wait=...)``."""
    started = []

    def spawn(*args, env=None, folder=None, **kwargs):
        folder = folder or tmp_path / f"reference-{len(started)}"
        api = start_reference_api(folder, *args, env={"REDIS_URL": redis_server.url, **(env or {})},
                                  **kwargs)
        started.append(api)
        return api

    yield spawn
    for api in started:
        stop_reference_api(api)
