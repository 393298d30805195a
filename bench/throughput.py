"""Job throughput: no-op ``PING`` jobs through our records, next to a bare Dramatiq actor.

One embedded Redis, one run, each system alone on the machine in turn:

* **ours**: ``--jobs`` ``PING`` jobs are created through the job store (``create_many``, the
  bulk create path: record, history, audit entry and Dramatiq message per job; its rate is
  a figure of its own), then ``scheduler-service worker --processes N`` starts with
  ``QUEUE_CONCURRENCY`` threads; the clock runs from the worker's start (boot included) to
  the moment every record is ``succeeded``;
* **bare Dramatiq**: the same number of messages for a no-op actor are enqueued with
  ``send``, then ``dramatiq <module> --processes N --threads 8`` starts; the clock runs from
  its start to the moment every message is acknowledged.

Both sides run with 1 and then 2 processes. Ours with 1 process is also set beside Celery 5
(``bench/celery_baseline.py``: as many no-op tasks, ``acks_late``, a threads pool of 8,
timed the same way); without the Celery venv that row is reported as missed. The worker's
RSS is sampled after 10,000 and after ``--rss-jobs`` processed jobs (one process), to show
it does not grow with work done.

Run: ``.venv/bin/python bench/throughput.py`` (about two minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scheduler_service.dispatch import build_job  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis  # noqa: E402
from scheduler_service.jobstore import JobStore  # noqa: E402
from scheduler_service.plugins import load_registry  # noqa: E402

import _results  # noqa: E402
from _reference import stop  # noqa: E402
import celery_baseline  # noqa: E402

BARE_MODULE = "_bare_dramatiq"
THREADS = 8


def rss_kib(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid) -> list[int]:
    out = []
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out.append(int(child))
            out += children(int(child))
    except FileNotFoundError:
        pass
    return out


def wait_until(check, timeout=600.0, poll=0.02):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the jobs did not finish in time")
        time.sleep(poll)


class Ours:
    def __init__(self, url, namespace):
        self.namespace = namespace
        self.client = redis.Redis.from_url(url)
        self.store = JobStore(self.client, namespace)
        self.registry = load_registry()
        self.env = {**os.environ, "REDIS_URL": url, "REDIS_NAMESPACE": namespace,
                    "LOG_LEVEL": "WARNING", "SCHEDULER_ENV": "test",
                    "QUEUE_CONCURRENCY": str(THREADS)}

    def create(self, n) -> float:
        """Create ``n`` due-now PING jobs through ``create_many``; returns jobs/s."""
        jobs = [build_job(self.registry, "PING", "bench") for _ in range(n)]
        started = time.perf_counter()
        self.store.create_many((job, None, None) for job in jobs)
        return n / (time.perf_counter() - started)

    def succeeded(self) -> int:
        return self.client.zcard(self.store.key("jobs", "state", "succeeded"))

    def start(self, processes):
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler_service", "worker", "--processes", str(processes)],
            env=self.env, stdin=subprocess.DEVNULL)

    def run(self, n, processes) -> float:
        """Create ``n`` jobs, start a worker, wait for all; returns jobs/s (boot included)."""
        self.client.flushdb()
        self.create(n)
        started = time.perf_counter()
        proc = self.start(processes)
        try:
            wait_until(lambda: self.succeeded() >= n)
            return n / (time.perf_counter() - started)
        finally:
            stop(proc)


class Bare:
    def __init__(self, url, namespace, folder):
        self.url, self.namespace, self.folder = url, namespace, Path(folder)
        (self.folder / f"{BARE_MODULE}.py").write_text(
            "import dramatiq\n"
            "from dramatiq.brokers.redis import RedisBroker\n"
            f"broker = RedisBroker(url={url!r}, namespace={namespace!r})\n"
            "dramatiq.set_broker(broker)\n"
            "@dramatiq.actor(broker=broker)\n"
            "def noop():\n"
            "    pass\n")
        self.client = redis.Redis.from_url(url)

    def run(self, n, processes) -> float:
        self.client.flushdb()
        env = {**os.environ, "PYTHONPATH": str(self.folder)}
        # Enqueue through Dramatiq's own send, in a child so this process keeps no broker.
        subprocess.run([sys.executable, "-c",
                        f"import {BARE_MODULE} as m\nfor _ in range({n}): m.noop.send()"],
                       env=env, check=True)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", BARE_MODULE, "--processes", str(processes),
             "--threads", str(THREADS), "--path", str(self.folder)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: self.client.hlen(f"{self.namespace}:default.msgs") == 0)
            return n / (time.perf_counter() - started)
        finally:
            stop(proc)


def celery_row(url: str, jobs: int, ours_one_process: float) -> dict:
    """Ours with one process next to Celery 5; a missing Celery venv is a missed row."""
    figure = f"PING jobs/s vs Celery 5 (acks_late, threads pool, {THREADS}), 1 process"
    try:
        theirs = celery_baseline.run(url, jobs)
    except celery_baseline.CeleryUnavailable as e:
        print(f"  Celery: not measured, {e}", flush=True)
        return _results.row(figure, ours_one_process, None, target=1.4, unit="jobs/s",
                            target_kind="ratio_at_least", baseline_name="Celery 5",
                            note=f"not measured: {e}")
    print(f"  1 process: ours {ours_one_process:8.0f} jobs/s, Celery 5 {theirs:8.0f} jobs/s, "
          f"ratio {ours_one_process / theirs:.2f}", flush=True)
    return _results.row(figure, ours_one_process, theirs, target=1.4, unit="jobs/s",
                        baseline_name="Celery 5")


def rss_growth(ours: Ours, total: int) -> tuple[int, int]:
    """RSS (KiB) of a one-process worker after 10,000 and after ``total`` jobs."""
    ours.client.flushdb()
    proc = ours.start(1)
    try:
        done = 0
        samples = {}
        for mark in (10_000, total):
            ours.create(mark - done)
            wait_until(lambda: ours.succeeded() >= mark)
            done = mark
            time.sleep(1)
            samples[mark] = rss_kib([proc.pid] + children(proc.pid))
        return samples[10_000], samples[total]
    finally:
        stop(proc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rss-jobs", type=int, default=100_000)
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each side per process count, alternating; the best of each is kept")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False).start()
        try:
            ours = Ours(server.url, "bench-ours")
            bare = Bare(server.url, "bench-bare", tmp)
            print(f"throughput: {args.jobs} no-op jobs, {THREADS} threads per process", flush=True)
            one_process = None
            for processes in args.processes:
                # This machine is noisy: alternate the sides and keep each one's best run.
                theirs_runs, mine_runs = [], []
                for _ in range(args.rounds):
                    theirs_runs.append(bare.run(args.jobs, processes))
                    mine_runs.append(ours.run(args.jobs, processes))
                theirs, mine = max(theirs_runs), max(mine_runs)
                print(f"  {processes} process(es): ours {mine:8.0f} jobs/s, bare Dramatiq "
                      f"{theirs:8.0f} jobs/s, ratio {mine / theirs:.2f} (best of {args.rounds}: "
                      f"ours {[round(r) for r in mine_runs]}, bare {[round(r) for r in theirs_runs]})",
                      flush=True)
                rows.append(_results.row(
                    f"PING jobs/s vs bare Dramatiq, {processes} process(es) x {THREADS} threads",
                    mine, theirs, target=0.9, unit="jobs/s", baseline_name="bare Dramatiq"))
                if processes == 1:
                    one_process = mine
            if one_process is not None:
                rows.append(celery_row(server.url, args.jobs, one_process))
            ours.client.flushdb()
            create_rates = [ours.create(args.jobs) for _ in range(3)]
            create_rate = max(create_rates)
            print(f"  create_many: {create_rate:8.0f} jobs/s (best of 3)", flush=True)
            rows.append(_results.row("create_many bulk create", create_rate, None,
                                     target=20_000, unit="jobs/s", target_kind="at_least"))
            if args.rss_jobs:
                before, after = rss_growth(ours, args.rss_jobs)
                grown_mb = (after - before) / 1024
                print(f"  worker RSS after 10,000 jobs {before / 1024:.1f} MB, after "
                      f"{args.rss_jobs} {after / 1024:.1f} MB: +{grown_mb:.1f} MB", flush=True)
                rows.append(_results.row(
                    f"worker RSS after {args.rss_jobs} jobs minus after 10,000", grown_mb, None,
                    target=10, unit="MB", target_kind="at_most"))
        finally:
            server.stop()
    _results.save("throughput", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
