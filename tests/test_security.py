"""Security checks against one live production stack (``scheduler-service run``), over HTTP.

The stack runs with ``SCHEDULER_ENV=production``, a Redis of its own behind a password, the
reference API behind its own key, and the dashboards behind basic auth; every secret is a
distinctive value, so that the last test can grep everything the stack wrote for them.

* every ``/api/v1`` route (read from the Flask url_map, so a new one is covered by itself)
  refuses a missing token, a wrong one, and the right one given in the query string;
* the console and the queue dashboard, their pages and their actions, ask for credentials;
* no secret appears in any log line, ``/health`` or ``/metrics``.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import requests

from scheduler_service.config import load_settings
from scheduler_service.embedded_redis import EmbeddedRedis, free_port
from scheduler_service.services import build_services
from scheduler_service.web import create_app
from helpers import start_role, stop_roles, wait_for
from reference_fixtures import start_reference_api, stop_reference_api

pytestmark = pytest.mark.slow

_RUN = uuid.uuid4().hex[:8]
#: Distinctive values of every secret; the Redis password needs escaping in a URL.
API_TOKEN = f"tok-Qx7{_RUN}-scheduler-bearer"
API_KEY = f"key-Zq4{_RUN}-main-api"
REDIS_PASSWORD = f"pw/Rk9{_RUN}@redis+pass"
DASHBOARD_USER = "ops-admin"
DASHBOARD_PASSWORD = f"dash-Wm2{_RUN}-basic"
SECRETS = {"SCHEDULER_API_TOKEN": API_TOKEN, "API_SERVICE_ACCOUNT_TOKEN": API_KEY,
           "Redis password": REDIS_PASSWORD, "ADMIN_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD}
BASIC = "Basic " + base64.b64encode(f"{DASHBOARD_USER}:{DASHBOARD_PASSWORD}".encode()).decode()
#: The answer to a request without the right token (without the header, the detail says
#: "missing"; with another one, it says what is expected).
UNAUTHENTICATED = {"code": "UNAUTHENTICATED",
                   "message": "send Authorization: Bearer <SCHEDULER_API_TOKEN>"}


def forms(value: str) -> set[str]:
    """How a secret could show up in text: as it is, URL-encoded, in a basic-auth header."""
    found = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    if value == DASHBOARD_PASSWORD:
        found.add(BASIC.split(" ", 1)[1])
    return found


@dataclass
class Stack:
    url: str
    env: dict
    services: object
    procs: list
    logs: list
    reference: object

    def stop(self):
        stop_roles(self.procs)
        self.procs.clear()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("security")
    redis_server = EmbeddedRedis(folder / "redis", persist=False, password=REDIS_PASSWORD).start()
    redis_url = f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{redis_server.port}/0"
    reference = start_reference_api(folder / "reference", "--seed", "none", key=API_KEY,
                                    env={"REDIS_URL": redis_url, "LOG_LEVEL": "INFO"})
    port = free_port()
    variables = {
        "SCHEDULER_ENV": "production", "HOST": "127.0.0.1", "PORT": str(port),
        "REDIS_URL": redis_url, "REDIS_NAMESPACE": f"sec{_RUN}",
        "API_URL": reference.url, "API_SERVICE_ACCOUNT_TOKEN": API_KEY,
        "API_RATE_LIMIT_PER_SECOND": "0", "SCHEDULER_API_TOKEN": API_TOKEN,
        "ADMIN_DASHBOARD_ENABLED": "true", "ADMIN_DASHBOARD_USER": DASHBOARD_USER,
        "ADMIN_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD, "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json", "QUEUE_RETRY_BACKOFF_MS": "100", "QUEUE_MAX_BACKOFF_MS": "500",
        "QUEUE_MAX_RETRIES": "1", "SHUTDOWN_GRACE_S": "5",
    }
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SCHEDULER_", "REDIS_", "API_", "ADMIN_"))}
    env.update(variables)
    log = folder / "run.log"
    procs = [start_role(["run"], env, log)]
    services = build_services(load_settings(variables))
    stack = Stack(f"http://127.0.0.1:{port}", env, services, procs, [log, reference.log_path],
                  reference)

    def up():
        assert procs[0].poll() is None, log.read_text()[-3000:]
        try:
            return requests.get(f"{stack.url}/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=90, interval=0.3, message="the production stack to be healthy")
        yield stack
    finally:
        stack.stop()
        services.close()
        stop_reference_api(reference)
        redis_server.stop()


def api_routes(services):
    """``(method, path)`` of every ``/api/v1`` route, each argument filled with a plain id."""
    app = create_app(services=services)
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: f"probe-{m.group(1)}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_the_route_list_covers_the_api(stack):
    routes = api_routes(stack.services)
    # a floor, so that a broken enumeration cannot pass by finding nothing
    assert len(routes) >= 25
    assert ("POST", "/api/v1/jobs") in routes and ("GET", "/api/v1/openapi.json") in routes


@pytest.mark.parametrize("how", ["missing", "wrong", "other scheme", "query token",
                                 "query access_token", "query api_key", "form token"])
def test_every_api_route_refuses_requests_without_the_bearer_token(stack, how):
    session = requests.Session()
    for method, path in api_routes(stack.services):
        headers, params, data = {}, None, None
        if how == "wrong":
            headers["Authorization"] = f"Bearer {API_TOKEN}x"
        elif how == "other scheme":
            headers["Authorization"] = f"Token {API_TOKEN}"
        elif how.startswith("query "):
            params = {how.split(" ", 1)[1]: API_TOKEN}
        elif how == "form token":
            data = {"access_token": API_TOKEN}
        answer = session.request(method, stack.url + path, headers=headers, params=params,
                                 data=data, timeout=10)
        assert answer.status_code == 401, (how, method, path, answer.status_code, answer.text[:300])
        error = answer.json()["error"]
        assert {k: error[k] for k in UNAUTHENTICATED} == UNAUTHENTICATED, (how, method, path)
        assert [d["field"] for d in error["details"]] == ["Authorization"], (how, method, path)
    # and the right token in the header does get through
    answer = session.get(f"{stack.url}/api/v1/jobs", headers={"Authorization": f"Bearer {API_TOKEN}"},
                         timeout=10)
    assert answer.status_code == 200


def admin_targets(services):
    """Every console page and form, and the dashboard's pages and actions, as
    ``(method, path)``."""
    app = create_app(services=services)
    targets = [("GET", "/admin/queues/"), ("GET", "/admin/queues/queues/jobs.normal/failed"),
               ("POST", "/admin/queues/delete-message"), ("POST", "/admin/queues/requeue-message")]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") and rule.endpoint != "console.static":
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: f"probe-{m.group(1)}", rule.rule)
            targets += [(m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return targets


def test_the_dashboards_and_their_actions_require_credentials_in_production(stack):
    # Given a job a console or dashboard action could cancel
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    created = requests.post(f"{stack.url}/api/v1/jobs", headers=headers, timeout=10, json={
        "type": "PING", "campaignId": "SYSTEM", "runAt": "2999-01-01T00:00:00Z"})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    queue, rid = stack.services.jobs.get_internal(job_id, "queue", "rid")
    targets = admin_targets(stack.services) + [("POST", f"/admin/jobs/{job_id}/cancel")]
    assert sum(1 for m, _ in targets if m == "POST") >= 9
    wrong = "Basic " + base64.b64encode(f"{DASHBOARD_USER}:nope".encode()).decode()
    form = {"queue": queue, "id": rid, "csrf_token": "x", "__dd_csrf": "x"}
    for method, path in targets:
        for authorization in (None, wrong, f"Bearer {API_TOKEN}"):
            answer = requests.request(method, stack.url + path, data=form if method == "POST" else None,
                                      headers={"Authorization": authorization} if authorization else {},
                                      allow_redirects=False, timeout=10)
            assert answer.status_code == 401, (method, path, authorization, answer.status_code)
            assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
    # Then nothing was cancelled, and the right credentials open both
    assert stack.services.jobs.get(job_id)["state"] == "scheduled"
    for path in ("/admin/", "/admin/queues/", f"/admin/jobs/{job_id}"):
        assert requests.get(stack.url + path, headers={"Authorization": BASIC},
                            timeout=10).status_code == 200, path


def exercise(stack):
    """Work that touches every secret: jobs that succeed and fail, refused requests, sign-ins."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    campaign = stack.reference.make_campaign()["id"]
    jobs = [requests.post(f"{stack.url}/api/v1/jobs", headers=headers, timeout=10, json=body).json()
            for body in ({"type": "PING", "campaignId": campaign},
                         {"type": "EVENT_EXPIRATION", "campaignId": campaign},
                         {"type": "DEFERRED_EFFECT", "campaignId": campaign,
                          "payload": {"effectId": "no-such-effect"}})]
    # a failing call of the main API: a campaign it does not know
    unknown = requests.post(f"{stack.url}/api/v1/jobs", headers=headers, timeout=10,
                            json={"type": "EVENT_EXPIRATION", "campaignId": "no-such-campaign"})
    assert unknown.status_code in (400, 404, 409, 422), unknown.text
    # bad requests, refused tokens and sign-ins, with the secrets in every place a client puts them
    assert requests.post(f"{stack.url}/api/v1/jobs", headers={**headers, "Content-Type": "application/json"},
                         data="{not json", timeout=10).status_code == 400
    assert requests.get(f"{stack.url}/api/v1/jobs", params={"token": API_TOKEN}, timeout=10).status_code == 401
    assert requests.get(f"{stack.url}/api/v1/jobs", headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=10).status_code == 401
    assert requests.get(f"{stack.url}/admin/", headers={"Authorization": BASIC}, timeout=10).status_code == 200
    assert requests.get(f"{stack.url}/admin/queues/", auth=(DASHBOARD_USER, REDIS_PASSWORD),
                        timeout=10).status_code == 401
    for job in jobs:
        wait_for(lambda: requests.get(f"{stack.url}/api/v1/jobs/{job['id']}", headers=headers,
                                      timeout=10).json()["state"] in ("succeeded", "dead"),
                 timeout=60, interval=0.2, message=f"{job['type']} to finish")
    # and calls of the main API that fail: it goes away while jobs need it
    stop_reference_api(stack.reference)
    for _ in range(3):
        answer = requests.post(f"{stack.url}/api/v1/jobs", headers=headers, timeout=30,
                               json={"type": "EVENT_EXPIRATION", "campaignId": campaign})
        assert answer.status_code in (201, 503), answer.text
    log = Path(stack.logs[0])
    wait_for(lambda: re.search(r'"level": "(WARNING|ERROR)".*(main API|Transient|Connection)',
                               log.read_text(errors="replace")),
             timeout=60, interval=0.3, message="a failed call of the main API in the log")


def test_no_secret_in_any_log_line_health_or_metrics(stack):
    exercise(stack)
    health = requests.get(f"{stack.url}/health", timeout=10)
    metrics = requests.get(f"{stack.url}/metrics", timeout=10)
    assert health.status_code == 200 and metrics.status_code == 200
    assert "scheduler_jobs" in metrics.text
    # Stop everything so that the shutdown's lines are written too
    stack.stop()
    texts = {"/health": health.text, "/metrics": metrics.text}
    for path in stack.logs:
        texts[Path(path).name] = Path(path).read_text(errors="replace")
    assert len(texts["run.log"].splitlines()) > 20, "the stack wrote almost nothing"
    # the log shows the work was done (so a missing secret means something)
    assert "DEFERRED_EFFECT" in texts["run.log"]
    leaks = [(where, name) for where, text in texts.items() for name, value in SECRETS.items()
             for form in forms(value) if form in text]
    assert leaks == []
