"""``scheduler-service web`` under each worker class, on real processes and a real Redis.

gevent is the default; gthread stays a choice (``WEB_WORKER_CLASS`` or ``--worker-class``).
Both create jobs, answer gunicorn's refusals with the JSON error body, count requests in
``/metrics``, and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import requests

from helpers import live_web, over_long_request_line

TOKEN = "worker-class-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("variable, named", [
    (None, "gevent"), ("gevent", "gevent"), ("gthread", "gthread")])
def test_each_worker_class_serves_the_api(variable, named, redis_server, plugin_paths,
                                          tmp_path):
    env = {"LOG_LEVEL": "INFO", **({"WEB_WORKER_CLASS": variable} if variable else {})}
    with live_web(redis_server.url, env, [plugin_paths["sample"]], tmp_path / "web.log",
                  TOKEN) as web:
        # Then the log names the worker class it serves with
        log = web.log_path.read_text()
        assert f"{named} worker(s)" in log, log[-2000:]
        assert ("JsonErrorGeventWorker" in log) == (named == "gevent"), log[-2000:]
        # and concurrent creates all land, each with its record in Redis
        with requests.Session() as session:
            answers = [session.post(f"{web.url}/api/v1/jobs", headers=AUTH, timeout=10,
                                    json={"type": "PING", "campaignId": f"c{i}"})
                       for i in range(20)]
        assert [a.status_code for a in answers] == [201] * 20
        assert all(web.services.jobs.get(a.json()["id"])["state"] == "queued" for a in answers)
        # and a request line over gunicorn's limit gets the API's JSON error body
        head, body = over_long_request_line(web.url)
        assert head.startswith(b"HTTP/1.1 414 "), head
        assert json.loads(body)["error"]["code"] == "URI_TOO_LONG"
        # and /metrics counted the creates
        metrics = requests.get(f"{web.url}/metrics", timeout=10).text
        assert ('flask_http_request_total{method="POST",status="201"} 20.0' in metrics), \
            [line for line in metrics.splitlines() if "request_total" in line]
        # and SIGTERM stops it cleanly
        web.process.send_signal(signal.SIGTERM)
        assert web.process.wait(timeout=30) == 0
        assert "Traceback" not in web.log_path.read_text()


def test_an_unknown_worker_class_is_refused_naming_the_variable(redis_server, child_env):
    env = child_env(REDIS_URL=redis_server.url, WEB_WORKER_CLASS="sync")
    out = subprocess.run([sys.executable, "-m", "scheduler_service", "web"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "WEB_WORKER_CLASS must be one of gevent, gthread, got 'sync'" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "scheduler_service", "web", "--worker-class",
                          "sync"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "'--worker-class'" in out.stderr, out.stderr
