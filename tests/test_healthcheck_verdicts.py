"""The verdicts of ``healthcheck`` beyond alive and dead, on the real Redis with the entries
the roles' own writers make: a stopping worker, a disconnected subscriber, an unreadable
Redis, and a web server that answers but not 200."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scheduler_service.embedded_redis import free_port
from scheduler_service.healthcheck import check
from scheduler_service.jobstore import now_ms
from scheduler_service.subscriber.status import StatusReporter
from scheduler_service.worker import workers_key

HOST = socket.gethostname()


def worker_entry(state, seen_ms, threads=4):
    # the shape WorkerHeartbeat.beat writes (scheduler_service/worker.py)
    return json.dumps({"host": HOST, "pid": 1, "threads": threads, "queues": None,
                       "startedAt": seen_ms, "state": state, "seenAt": seen_ms})


def test_a_stopping_worker_is_not_healthy_and_a_garbled_entry_is_skipped(services):
    key = workers_key(services.settings.redis_namespace)
    now = now_ms()
    services.redis.hset(key, "garbled", "{not json")
    services.redis.hset(key, f"{HOST}:1:aaa", worker_entry("running", now - 1000))
    verdict = check("worker", services.settings, now=lambda: now)
    assert verdict.healthy, verdict
    assert verdict.reason.startswith(f"1 worker process(es) alive on {HOST}; {HOST}:1:aaa (4 threads)")

    services.redis.hset(key, f"{HOST}:2:bbb", worker_entry("stopping", now - 500))
    verdict = check("worker", services.settings, now=lambda: now)
    assert not verdict.healthy
    assert verdict.reason == f"worker {HOST}:2:bbb is stopping"


def test_a_subscriber_that_lost_redis_is_not_healthy_and_says_why(services):
    reporter = StatusReporter(services.redis, f"{services.settings.redis_namespace}:", "sub-1")
    reporter.connected(reconnected=False)
    assert check("subscriber", services.settings).healthy
    reporter.set_state("reconnecting", "ConnectionError: Connection refused")
    reporter.heartbeat()
    verdict = check("subscriber", services.settings)
    assert not verdict.healthy
    assert verdict.reason == "subscriber sub-1 is reconnecting: ConnectionError: Connection refused"


@pytest.mark.parametrize("role", ["worker", "cron", "subscriber"])
def test_an_unreachable_redis_is_named_without_its_password(make_settings, role):
    port = free_port()
    settings = make_settings(REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    verdict = check(role, settings)
    assert not verdict.healthy
    assert verdict.reason.startswith(f"cannot read Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "s3cret-pw" not in verdict.reason


class Answering:
    """An HTTP server on loopback whose /health answers ``status`` with ``body``."""

    def __init__(self, status, body):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.mark.parametrize("status, body, reason", [
    (503, b'{"status": "unhealthy"}', "answered 503 (unhealthy)"),
    (502, b"<html>bad gateway</html>", "answered 502"),
])
def test_a_web_server_that_answers_not_200_is_unhealthy(make_settings, status, body, reason):
    # HOST=0.0.0.0 (every interface, as in the image) is checked over loopback
    server = Answering(status, body)
    try:
        verdict = check("web", make_settings(HOST="0.0.0.0", PORT=server.port))
    finally:
        server.stop()
    assert not verdict.healthy
    assert verdict.reason == f"http://127.0.0.1:{server.port}/health {reason}"
