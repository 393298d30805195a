"""Timer lateness and memory: our durable timers next to Dramatiq's ``delay=``, one run, one Redis.

What it measures (lateness = the moment a job starts on a worker minus its due time):

1. 1,000 sparse timers spread over ``--sparse-seconds``: p50/p99 lateness, ours vs ``delay=``.
2. 10,000 timers due in the same second: p50/p99/max lateness, ours vs ``delay=``.
3. 100,000 pending timers: Redis bytes per pending timer (``INFO memory`` before/after and
   ``MEMORY USAGE`` samples), and our worker processes' RSS before and after loading them.

Both systems run 2 worker processes with 8 threads each against the same embedded Redis
(separate namespaces), one after the other so that they do not share the two cores. Ours: ``scheduler-service worker`` + ``scheduler-service pump`` with
no-op ``PING`` jobs; start times are read from each job's history (the ``running``
transition). Baseline: a no-op Dramatiq actor, sent with ``delay=``, run by Dramatiq's own
CLI with default settings; it records its start time in Redis.

Run: ``.venv/bin/python bench/timers.py`` (about three minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scheduler_service.config import load_settings  # noqa: E402
from scheduler_service.dispatch import build_job  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis  # noqa: E402
from scheduler_service.jobstore import JobStore, now_ms  # noqa: E402
from scheduler_service.plugins import load_registry  # noqa: E402

import _results  # noqa: E402

BASELINE_MODULE = "_delay_baseline"


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(lateness):
    return {"n": len(lateness), "p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
            "max": max(lateness) if lateness else float("nan")}


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Ours:
    """Our stack: two single-process workers and one pump, as subprocesses."""

    def __init__(self, url, namespace):
        self.env = {**os.environ, "REDIS_URL": url, "REDIS_NAMESPACE": namespace, "LOG_LEVEL": "WARNING",
                    "SCHEDULER_ENV": "test", "QUEUE_CONCURRENCY": "8"}
        self.settings = load_settings(self.env)
        self.client = redis.Redis.from_url(url)
        self.store = JobStore(self.client, namespace)
        self.registry = load_registry()
        self.procs = []

    def start(self):
        cmd = [sys.executable, "-m", "scheduler_service"]
        self.workers = [subprocess.Popen(cmd + ["worker", "--processes", "1"], env=self.env) for _ in range(2)]
        self.procs = self.workers + [subprocess.Popen(cmd + ["pump"], env=self.env)]
        time.sleep(3)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)

    def schedule(self, due_ms_list):
        """Create PING jobs due at the given times (pipelined); returns their ids."""
        jobs = [build_job(self.registry, "PING", "bench") for _ in due_ms_list]
        self.store.create_many((job, due, None) for job, due in zip(jobs, due_ms_list))
        return [job["id"] for job in jobs]

    def lateness(self, ids, due_by_id, timeout):
        deadline = time.time() + timeout
        pending = set(ids)
        result = {}
        while pending and time.time() < deadline:
            batch = list(pending)[:2000]
            pipe = self.client.pipeline(transaction=False)
            for job_id in batch:
                pipe.lrange(self.store.key("job", job_id, "history"), 0, -1)
            for job_id, entries in zip(batch, pipe.execute()):
                for raw in entries:
                    e = json.loads(raw)
                    if e["to"] == "running":
                        result[job_id] = e["at"] - due_by_id[job_id]
                        pending.discard(job_id)
                        break
            if pending:
                time.sleep(0.5)
        return list(result.values()), len(pending)


class Baseline:
    """Dramatiq's ``delay=``: a no-op actor run by Dramatiq's CLI (2 processes x 8 threads)."""

    def __init__(self, url, namespace, folder):
        self.url, self.namespace, self.folder = url, namespace, Path(folder)
        (self.folder / f"{BASELINE_MODULE}.py").write_text(
            "import time, dramatiq, redis\n"
            "from dramatiq.brokers.redis import RedisBroker\n"
            "from dramatiq.middleware import AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries\n"
            f"broker = RedisBroker(url={url!r}, namespace={namespace!r}, middleware=[AgeLimit(), TimeLimit(),"
            " ShutdownNotifications(), Callbacks(), Pipelines(), Retries()])\n"
            "dramatiq.set_broker(broker)\n"
            f"r = redis.Redis.from_url({url!r})\n"
            "@dramatiq.actor(queue_name='delayed', broker=broker)\n"
            "def tick(due_ms):\n"
            f"    r.rpush({namespace + ':starts'!r}, '%d:%d' % (due_ms, int(time.time() * 1000)))\n"
        )
        sys.path.insert(0, str(self.folder))
        self.client = redis.Redis.from_url(url)

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(self.folder)}
        self.proc = subprocess.Popen([sys.executable, "-m", "dramatiq", BASELINE_MODULE, "--processes", "2",
                                      "--threads", "8", "--path", str(self.folder)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import importlib

        self.module = importlib.import_module(BASELINE_MODULE)
        time.sleep(3)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)

    def schedule(self, due_ms_list):
        self.client.delete(f"{self.namespace}:starts")
        for due in due_ms_list:
            self.module.tick.send_with_options(args=(due,), delay=max(0, due - now_ms()))

    def lateness(self, n, timeout):
        deadline = time.time() + timeout
        while self.client.llen(f"{self.namespace}:starts") < n and time.time() < deadline:
            time.sleep(0.5)
        starts = self.client.lrange(f"{self.namespace}:starts", 0, -1)
        values = []
        for raw in starts:
            due, started = map(int, raw.split(b":"))
            values.append(started - due)
        return values, n - len(values)


def print_row(label, ours, theirs):
    def fmt(s):
        return f"p50 {s['p50']:8.1f} ms  p99 {s['p99']:8.1f} ms  max {s['max']:8.1f} ms  (n={s['n']})"

    print(f"{label}\n  ours      {fmt(ours)}\n  delay=    {fmt(theirs)}")
    if ours["p99"] > 0:
        print(f"  ratio (delay= p99 / ours p99): {theirs['p99'] / ours['p99']:.1f}x")


def save_rows(args, results, rss_before, rss_after, rss_ok):
    """The three targets as rows: lateness next to ``delay=``, and the workers' RSS growth."""
    def not_started(phase):
        missing = results["ours", phase][1]
        return f"{missing} of ours never started" if missing else None

    sparse, burst = results["ours", "sparse"][0], results["ours", "burst"][0]
    grown_mb = max(a - b for b, a in zip(rss_before, rss_after)) / 1024
    rows = [
        _results.row(f"{args.sparse} sparse timers over {args.sparse_seconds:g} s: p99 lateness",
                     sparse["p99"], results["delay", "sparse"][0]["p99"], target=100, unit="ms",
                     target_kind="at_most", baseline_name="Dramatiq delay=",
                     note=not_started("sparse"), valid=not results["ours", "sparse"][1]),
        _results.row(f"{args.burst} timers due in the same second: lateness of the last started",
                     burst["max"], results["delay", "burst"][0]["max"], target=2000, unit="ms",
                     target_kind="at_most", baseline_name="Dramatiq delay=",
                     note=not_started("burst"), valid=not results["ours", "burst"][1]),
        # The target is the check printed below: at most 5 % + 2 MiB over each worker's RSS.
        _results.row(f"worker RSS growth with {args.pending} pending timers", grown_mb, None,
                     target=round(max(rss_before) * 0.05 / 1024 + 2, 1), unit="MB",
                     target_kind="at_most", valid=rss_ok),
    ]
    _results.save("timers", rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sparse", type=int, default=1000)
    parser.add_argument("--sparse-seconds", type=float, default=25.0)
    parser.add_argument("--burst", type=int, default=10000)
    parser.add_argument("--pending", type=int, default=100000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder) / "redis", persist=False).start()
        print(f"embedded Redis on {server.url}; each system runs alone, 2 worker processes x 8 threads")
        start_in = 3000
        sparse_offsets = sorted(int(random.random() * args.sparse_seconds * 1000) for _ in range(args.sparse))
        burst_offsets = [random.randrange(0, 1000) for _ in range(args.burst)]
        results = {}
        try:
            # Ours: sparse, burst, then memory of pending timers.
            ours = Ours(server.url, "bench-ours")
            ours.start()
            try:
                t0 = now_ms() + start_in
                dues = [t0 + o for o in sparse_offsets]
                ids = ours.schedule(dues)
                lat, missing = ours.lateness(ids, dict(zip(ids, dues)), args.sparse_seconds + 30)
                results["ours", "sparse"] = (summary(lat), missing)
                t0 = now_ms() + 15000
                dues = [t0 + o for o in burst_offsets]
                ids = ours.schedule(dues)
                lat, missing = ours.lateness(ids, dict(zip(ids, dues)), 90)
                results["ours", "burst"] = (summary(lat), missing)

                rss_before = [rss_kb(p.pid) for p in ours.workers]
                used_before = ours.client.info("memory")["used_memory"]
                far = now_ms() + 30 * 86400 * 1000
                ids = ours.schedule([far + i for i in range(args.pending)])
                time.sleep(3)
                used_after = ours.client.info("memory")["used_memory"]
                rss_after = [rss_kb(p.pid) for p in ours.workers]
                sample = random.sample(ids, 200)
                job_bytes = statistics.mean(ours.client.memory_usage(ours.store.key("job", i)) for i in sample)
                hist_bytes = statistics.mean(
                    ours.client.memory_usage(ours.store.key("job", i, "history")) for i in sample)
            finally:
                ours.stop()

            # Baseline: the same due times through Dramatiq's delay=.
            base = Baseline(server.url, "bench-delay", folder)
            base.start()
            try:
                t0 = now_ms() + start_in
                dues = [t0 + o for o in sparse_offsets]
                base.schedule(dues)
                time.sleep(args.sparse_seconds + start_in / 1000)
                results["delay", "sparse"] = (summary((r := base.lateness(len(dues), 30))[0]), r[1])
                t0 = now_ms() + 15000
                dues = [t0 + o for o in burst_offsets]
                base.schedule(dues)
                time.sleep(15)
                results["delay", "burst"] = (summary((r := base.lateness(len(dues), 90))[0]), r[1])
            finally:
                base.stop()
        finally:
            server.stop()

        for phase, title in (("sparse", f"{args.sparse} sparse timers over {args.sparse_seconds:.0f} s"),
                             ("burst", f"{args.burst} timers due within one second")):
            print_row("\n" + title, results["ours", phase][0], results["delay", phase][0])
            print(f"  not started: ours {results['ours', phase][1]}, delay= {results['delay', phase][1]}")
        per_timer = (used_after - used_before) / args.pending
        print(f"\n{args.pending} pending timers")
        print(f"  Redis bytes per pending timer (INFO used_memory delta): {per_timer:.0f}")
        print(f"  MEMORY USAGE samples: job record {job_bytes:.0f}, history {hist_bytes:.0f}; the rest is "
              "the timer and index sorted sets and the audit stream")
        print(f"  worker RSS before/after loading them (KiB): {rss_before} -> {rss_after}")
        sparse, burst = results["ours", "sparse"], results["ours", "burst"]
        sparse_ok = sparse[0]["p99"] <= 100 and not sparse[1]
        burst_ok = not burst[1] and burst[0]["max"] <= 2000
        rss_ok = all(a <= b * 1.05 + 2048 for b, a in zip(rss_before, rss_after))
        save_rows(args, results, rss_before, rss_after, rss_ok)
        print("\ntargets:")
        print(f"  sparse p99 <= 100 ms ........................ {'PASS' if sparse_ok else 'FAIL'}")
        print(f"  10,000 due together all started within 2 s .. {'PASS' if burst_ok else 'FAIL'}")
        print(f"  worker RSS does not grow with pending timers  {'PASS' if rss_ok else 'FAIL'}")


if __name__ == "__main__":
    main()
