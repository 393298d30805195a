"""Shared by the benches: a reference API subprocess on a free port, and stopping processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from scheduler_service.embedded_redis import free_port


def start_reference_api(workdir: Path, redis_url: str, *, seed: str, env: dict | None = None):
    """Start ``scheduler-service reference-api``; returns ``(process, GraphQL URL)`` once it answers."""
    port = free_port()
    child_env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler_service", "reference-api", "--port", str(port),
         "--db", str(workdir / "reference.sqlite3"), "--seed", seed],
        env=child_env, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, f"{base}/graphql"
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the reference API did not start")
        time.sleep(0.1)


def stop(proc, timeout=30):
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
