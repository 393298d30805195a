"""Celery 5 throughput on our embedded Redis: the baseline of ``bench/throughput.py``.

``--jobs`` no-op tasks (``acks_late=True``, no result backend) are sent to a Celery app on
its own Redis database, then ``celery -A _celery_app worker --pool threads --concurrency 8``
starts; the clock runs from the worker's start (boot included, as for our worker) to the
moment the queue list is empty and kombu's ``unacked`` hash holds nothing, i.e. every task
has run and been acknowledged.

Celery runs from its own virtualenv, ``bench/.celery-venv`` (``make bench`` builds it), since
it needs a redis-py our venv cannot have. Without it, ``run`` raises ``CeleryUnavailable``.

Run alone: ``.venv/bin/python bench/celery_baseline.py`` (prints jobs/s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

HERE = Path(__file__).resolve().parent
VENV = HERE / ".celery-venv"
APP_MODULE = "_celery_app"
#: Redis database of the Celery side, apart from the other benches' db 0.
DB = 9
CONCURRENCY = 8
#: kombu's Redis transport: the default queue list and the hash of delivered, unacked tasks.
QUEUE_KEY, UNACKED_KEY = "celery", "unacked"


class CeleryUnavailable(RuntimeError):
    """The Celery virtualenv is missing or broken; the message says which and how to build it."""


def celery_version() -> str:
    """Celery's version in its venv.

    Raises:
        CeleryUnavailable: the venv or Celery in it is missing.
    """
    python = VENV / "bin" / "python"
    if not python.exists():
        raise CeleryUnavailable(f"no bench/{VENV.name} (make bench builds it with pip install "
                                "'celery[redis]>=5,<6')")
    found = subprocess.run([str(python), "-c", "import celery; print(celery.__version__)"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise CeleryUnavailable(f"celery does not import in bench/{VENV.name}: "
                                f"{found.stderr.strip().splitlines()[-1:]}")
    return found.stdout.strip()


def broker_url(redis_url: str) -> str:
    """The same server as ``redis_url``, database ``DB``."""
    parts = urlsplit(redis_url)
    return parts._replace(path=f"/{DB}").geturl()


def run(redis_url: str, jobs: int, timeout: float = 600.0) -> float:
    """Send ``jobs`` no-op tasks, start a Celery worker, wait for all; returns jobs/s.

    The worker's output goes to a log file, shown (its end) only when the worker fails.

    Raises:
        CeleryUnavailable: the venv is missing.
        RuntimeError: the worker died or did not finish within ``timeout`` seconds.
    """
    celery_version()
    url = broker_url(redis_url)
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = {**os.environ, "BENCH_CELERY_BROKER": url, "PYTHONPATH": str(HERE)}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([str(VENV / "bin" / "python"), str(HERE / f"{APP_MODULE}.py"), str(jobs)],
                   env=env, check=True)
    if client.llen(QUEUE_KEY) != jobs:
        raise RuntimeError(f"{client.llen(QUEUE_KEY)} tasks queued, not {jobs}")
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        worker = subprocess.Popen(
            [str(VENV / "bin" / "celery"), "-A", APP_MODULE, "worker", "--pool", "threads",
             "--concurrency", str(CONCURRENCY), "--loglevel", "WARNING"],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = started + timeout
            while client.llen(QUEUE_KEY) or client.hlen(UNACKED_KEY):
                if worker.poll() is not None or time.perf_counter() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"the Celery worker did not finish {jobs} tasks "
                                       f"(exit {worker.poll()}):\n{tail}")
                time.sleep(0.02)
            return jobs / (time.perf_counter() - started)
        finally:
            from _reference import stop  # SIGTERM (Celery's warm shutdown), then SIGKILL

            stop(worker, timeout=60)
            client.flushdb()
            client.close()


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE.parent))
    from scheduler_service.embedded_redis import EmbeddedRedis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False).start()
        try:
            rate = run(server.url, args.jobs)
        finally:
            server.stop()
    print(f"Celery {celery_version()}: {args.jobs} no-op tasks, threads pool x {CONCURRENCY}, "
          f"acks_late: {rate:.0f} jobs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
