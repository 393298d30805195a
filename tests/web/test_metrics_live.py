"""/metrics of a real ``scheduler-service run``: web under 2 gunicorn workers, worker, cron and
subscriber as separate processes, a reference API and a webhook receiver.

One group is started for the module. It shows that consecutive scrapes never go backwards
while requests spread over both gunicorn workers, and that every metric the Grafana
dashboard and the Prometheus alert rules name is exported.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis as redis_lib
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from helpers import AlertReceiver, stop_process, wait_for
from reference_fixtures import start_reference_api, stop_reference_api
from scheduler_service.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "scheduler-service.json"
ALERT_RULES = ROOT / "docs" / "prometheus" / "alerts.yml"
AUTH = {"Authorization": "Bearer dev-token"}

#: PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "time", "abs", "clamp_min", "clamp_max", "vector", "scalar", "by", "without", "and", "or",
    "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    return {t for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text) if t not in PROMQL_WORDS}


def test_metric_names_are_read_from_promql():
    expr = ('histogram_quantile(0.95, sum by (type, le) (max without (instance, pod) '
            '(rate(scheduler_job_duration_seconds_bucket{type="PING"}[$__rate_interval]))))'
            ' / time() - scheduler_x')
    assert metric_names(expr) == {"scheduler_job_duration_seconds_bucket", "scheduler_x"}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def alert_rules() -> list[dict]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def samples_of(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            kids += [int(p) for p in Path(task).read_text().split()]
        except OSError:
            pass
    return kids


class Live:
    def __init__(self, proc, port, namespace, api, receiver, log_path):
        self.proc, self.port, self.namespace = proc, port, namespace
        self.api, self.receiver, self.log_path = api, receiver, log_path
        self.base = f"http://127.0.0.1:{port}"

    def metrics(self) -> dict:
        response = requests.get(f"{self.base}/metrics", timeout=30)
        assert response.status_code == 200
        return samples_of(response.text)

    def create(self, **body) -> dict:
        response = requests.post(f"{self.base}/api/v1/jobs", json=body, headers=AUTH, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture(scope="module")
def live(redis_server, plugin_paths, tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics-live")
    api = start_reference_api(folder / "reference", "--seed", "none",
                              env={"REDIS_URL": redis_server.url})
    receiver = AlertReceiver().start()
    namespace = f"t{uuid.uuid4().hex[:12]}"
    port = free_port()
    env = dict(os.environ)
    env.update({
        "SCHEDULER_ENV": "test", "REDIS_URL": redis_server.url, "REDIS_NAMESPACE": namespace,
        "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
        "QUEUE_RETRY_BACKOFF_MS": "100", "QUEUE_MAX_BACKOFF_MS": "1000",
        "CRON_SAMPLE_TICK": "* * * * * *", "CRON_LEADER_TTL_S": "3",
        "ALERT_WEBHOOK_URL": receiver.url,
        "PYTHONPATH": os.pathsep.join([str(plugin_paths["sample"]), env.get("PYTHONPATH", "")]),
        **{k: str(v) for k, v in api.client_env().items()},
    })
    log_path = folder / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "run"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    live = Live(proc, port, namespace, api, receiver, log_path)

    def up():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            return requests.get(f"{live.base}/health", timeout=2).status_code in (200, 503)
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=60, message="the run group's web process")
        yield live
    finally:
        stop_process(proc, timeout=40)
        stop_reference_api(api)
        receiver.stop()
        client = redis_lib.Redis.from_url(redis_server.url)
        for key in client.scan_iter(f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()


def is_counter_sample(name: str) -> bool:
    return name.endswith(("_total", "_count", "_sum", "_bucket"))


def test_consecutive_scrapes_never_go_backwards_across_two_gunicorn_workers(live):
    # Given the web process of the group with its two gunicorn workers
    (web,) = [p for p in _children(live.proc.pid)
              if Path(f"/proc/{p}/cmdline").read_bytes().endswith(b"\x00web\x00")]
    workers = wait_for(lambda: len(_children(web)) == 2 and _children(web), timeout=30,
                       message="both gunicorn workers to boot")
    first = live.metrics()
    first_http = sum(v for (name, _), v in first.items() if name == "flask_http_request_total")

    # When 1,000 requests, each on a connection of its own, spread over the workers while
    # /metrics is scraped again and again
    sent = []
    lock = threading.Lock()

    def load(n, i):
        for k in range(n):
            if (i + k) % 5 == 0:
                requests.post(f"{live.base}/api/v1/jobs", json={
                    "type": "SAMPLE_ECHO", "campaignId": "metrics", "payload": {"text": "hi"}},
                    headers={**AUTH, "Connection": "close"}, timeout=30)
            else:
                requests.get(f"{live.base}/health", headers={"Connection": "close"}, timeout=30)
            with lock:
                sent.append(1)

    threads = [threading.Thread(target=load, args=(125, i)) for i in range(8)]
    for t in threads:
        t.start()
    scrapes = [first]
    while any(t.is_alive() for t in threads) or len(scrapes) < 20:
        scrapes.append(live.metrics())
    for t in threads:
        t.join()
    scrapes.append(live.metrics())

    # Then no counter, histogram count, sum or bucket ever went down, nor vanished
    for before, after in zip(scrapes, scrapes[1:]):
        for key, value in before.items():
            if not is_counter_sample(key[0]):
                continue
            assert key in after, f"{key} vanished between two scrapes"
            assert after[key] >= value, f"{key} went from {value} to {after[key]}"
    # and the last scrape counts every request, whichever worker served it
    last_http = sum(v for (name, _), v in scrapes[-1].items() if name == "flask_http_request_total")
    assert len(sent) == 1000
    assert last_http - first_http == 1000
    # and both gunicorn workers served some: each left its own metric files
    files = [f for pid in workers
             for f in glob.glob(os.path.join(tempfile.gettempdir(), "scheduler-web-metrics-*",
                                             f"counter_{pid}.db"))]
    assert len(workers) == 2 and len(files) == 2, (workers, files)
    # and the job counters, kept in Redis, rose during the scrapes without going back
    echo = ("scheduler_job_attempts_total", (("outcome", "succeeded"), ("type", "SAMPLE_ECHO")))
    wait_for(lambda: live.metrics().get(echo, 0) >= 200, timeout=60,
             message="the 200 echo jobs to succeed")


def test_every_metric_of_the_dashboard_and_the_alert_rules_is_exported(live):
    # The rules file parses, and every rule has an expression and a severity
    rules = alert_rules()
    assert rules and all(r["alert"] and r["expr"] and r["labels"]["severity"] in
                         ("info", "warning", "critical") for r in rules)
    exprs = dashboard_expressions() + [r["expr"] for r in rules]
    wanted = set().union(*(metric_names(e) for e in exprs))
    assert all(n.startswith(("scheduler_", "flask_")) for n in wanted), wanted

    # Given jobs that succeed, retry, die, wait on each clock, and a campaign whose world
    # time advances (a message for the subscriber, calls of the API)
    now = datetime.now(timezone.utc)
    campaign = live.api.make_campaign(world_time=now)
    live.create(type="SAMPLE_FLAKY", campaignId="metrics", payload={"failures": 1})
    live.create(type="SAMPLE_REFUSE", campaignId="metrics")
    live.create(type="SAMPLE_ECHO", campaignId="metrics", payload={"text": "later"},
                runAt=(now + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"))
    live.create(type="SAMPLE_ECHO", campaignId=campaign["id"], payload={"text": "world"},
                runAtWorldTime=(now + timedelta(days=30)).isoformat().replace("+00:00", "Z"))
    live.api.advance(campaign["id"], now + timedelta(days=1))

    # Then every name the dashboard and the rules use is exported
    def missing():
        exported = {name for name, _ in live.metrics()}
        return wanted - exported

    deadline = time.monotonic() + 90
    while missing() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not missing(), f"not exported: {sorted(missing())}"
    # and the dead letter reached the webhook
    wait_for(lambda: live.receiver.of_kind("job_dead"), timeout=30,
             message="the dead-letter alert at the webhook")


def test_every_exported_family_is_documented(live):
    page = (ROOT / "docs" / "metrics.rst").read_text()
    documented = set(re.findall(r"``([a-z_]+)(?:\{[^}]*\})?``", page))
    exported = set()
    for family in text_string_to_metric_families(
            requests.get(f"{live.base}/metrics", timeout=30).text):
        exported.add(family.name + ("_total" if family.type == "counter" else "")
                     + ("_info" if family.type == "info" else ""))
    assert exported - documented == set()
