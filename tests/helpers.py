"""Small helpers shared by the tests."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def over_long_request_line(url: str) -> tuple[bytes, bytes]:
    """Send a request line over gunicorn's 4 KiB limit to the server at ``url`` on a raw
    socket (no client would send one); returns the answer's head and body."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/jobs/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def stop_process(proc: subprocess.Popen, timeout=20):
    """SIGTERM, wait, then SIGKILL what did not stop; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def start_role(command, env, log_path) -> subprocess.Popen:
    """``python -m scheduler_service *command`` as a child, its output in ``log_path``
    (open as ``proc.log``; :func:`stop_roles` closes it).

    The file is opened for appending: the child shares the file's offset with
    ``proc.log``, and a test that seeks to read it would otherwise move where the child
    writes next, overwriting lines in the middle of the file."""
    open(log_path, "w").close()
    log = open(log_path, "a+")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", *command], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def stop_roles(procs) -> None:
    """Stop processes :func:`start_role` started (SIGTERM, then SIGKILL) and close their logs."""
    for proc in procs:
        stop_process(proc)
        proc.log.close()


def hold_cron_leadership(services, identity="test-leader", ttl_ms=60_000):
    """Take the cron leader lock as if a cron process led (for /health without one)."""
    from scheduler_service.cron.status import schedule_store
    from scheduler_service.cron.leader import LeaderLock

    lock = LeaderLock(services.redis, schedule_store(services).leader_key, identity, ttl_ms)
    assert lock.try_acquire(), "another cron leader holds the lock"
    return lock


@contextlib.contextmanager
def running_worker(services, threads=1, timeout_ms=50):
    """A real Dramatiq worker on ``services``, with the wall-timer pump a deployment's cron
    process runs (retries and rescheduled jobs wait on wall timers)."""
    from dramatiq import Worker

    from scheduler_service.timers import WallTimerPump

    pump = WallTimerPump(services.jobs, interval_ms=50).start()
    worker = Worker(services.broker, worker_threads=threads, worker_timeout=timeout_ms)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)
        pump.stop()


class AlertReceiver:
    """A tiny HTTP server that keeps the JSON body of every POST made to it.

    ``mode``: ``ok`` answers 204; ``hang`` keeps every request open, answering nothing,
    until :meth:`stop`.
    """

    def __init__(self, mode: str = "ok"):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mode = mode
        self.bodies: list[dict] = []
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.bodies.append(json.loads(data))
                if receiver.mode == "hang":
                    receiver._release.wait(60)
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> "AlertReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def of_kind(self, kind: str) -> list[dict]:
        return [b for b in list(self.bodies) if b.get("details", {}).get("kind") == kind]


#: Keys a rejected request may legitimately touch: counters, heartbeats, rate windows, secrets.
BOOKKEEPING_KEYS = ("metrics:", "__heartbeats__", "subscriber:stats", "subscriber:instances",
                    "workers", "ratelimit", "console:", "cron:leader")


def redis_state(redis, namespace: str, ignore=BOOKKEEPING_KEYS) -> dict:
    """Everything stored under ``namespace`` (job records, history, timers, Dramatiq queues,
    schedules, recurring jobs, world clocks), as ``{key: value}`` with each value read by
    its type, minus the bookkeeping in ``ignore``. Two equal snapshots around a request
    mean it enqueued, stored and changed nothing."""
    prefix = f"{namespace}:"
    state = {}
    for raw in redis.scan_iter(f"{prefix}*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        rest = key[len(prefix):]
        if any(rest.startswith(i) for i in ignore):
            continue
        kind = redis.type(raw)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value = redis.get(raw)
        elif kind == "hash":
            value = redis.hgetall(raw)
        elif kind == "list":
            value = redis.lrange(raw, 0, -1)
        elif kind == "set":
            value = sorted(redis.smembers(raw))
        elif kind == "zset":
            value = redis.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            value = redis.xrange(raw)
        else:
            value = kind
        state[key] = (kind, value)
    return state


@dataclasses.dataclass
class LiveWeb:
    """A ``scheduler-service web`` process on a free port, and services on its namespace."""

    url: str
    token: str
    services: object
    process: subprocess.Popen
    env: dict
    log_path: Path


@contextlib.contextmanager
def live_web(redis_url: str, extra_env: dict, pythonpath: list, log_path, token: str):
    """``scheduler-service web`` (one gunicorn worker; 8 threads if gthread) on a free port, in a
    namespace of its own; yields a :class:`LiveWeb` and afterwards stops the process and
    removes the namespace's keys."""
    import os
    import uuid

    import requests

    from scheduler_service.config import load_settings
    from scheduler_service.embedded_redis import free_port
    from scheduler_service.services import build_services

    variables = {
        "SCHEDULER_ENV": "test", "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"t{uuid.uuid4().hex[:12]}", "SCHEDULER_API_TOKEN": token,
        "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING", "HOST": "127.0.0.1",
        **{k: str(v) for k, v in extra_env.items()},
    }
    services = build_services(load_settings(variables))
    port = free_port()
    env = {**os.environ, **variables,
           "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), os.environ.get("PYTHONPATH", "")])}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scheduler_service", "web", "--port", str(port),
             "--workers", "1", "--threads", "8"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, Path(log_path).read_text()[-3000:]
        try:
            return requests.get(f"{url}/health", timeout=2).status_code in (200, 503)
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=60, interval=0.2, message="the live web process")
        yield LiveWeb(url, token, services, process, env, Path(log_path))
    finally:
        stop_process(process)
        for key in services.redis.scan_iter(f"{variables['REDIS_NAMESPACE']}:*", count=1000):
            services.redis.delete(key)
        services.close()
