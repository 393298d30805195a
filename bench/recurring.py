"""Recurring jobs through a 30-day jump of the world clock, next to ``create_many``.

Both sides make the same jobs (``PING`` for one campaign, due at once, priority 5) in the
same embedded Redis, in this run:

* **create_many**: ``JobStore.create_many`` of ``--recurrences x --days`` jobs, timed
  from the first call to the last batch written; then the database is emptied;
* **recurring**: ``--recurrences`` world-clock recurring jobs ``every: P1D``,
  ``catchUp: all``, in one campaign of a reference API (first occurrence one world day
  after creation). The campaign's world time is advanced by ``--days`` days through the
  reference API, which publishes ``worldTimeAdvanced``; a real ``scheduler-service
  subscriber`` pumps the campaign's world timers, and ``scheduler-service worker
  --processes 2 --queues jobs.high`` runs the recurring jobs' ticks (priority 9, the high
  band). Nothing consumes the normal band, so every occurrence's job stays queued and can
  be counted. The time runs from the ``advanceWorldTime`` call until the last occurrence
  is recorded (each is recorded in the same transaction as its job is enqueued).

Then every recurring job's history is checked against the 30 occurrences it must have
made, and the queue against the jobs: duplicates and missing ones must both be 0. It
prints the occurrence rate, create_many's rate and their ratio.

Run: ``.venv/bin/python bench/recurring.py`` (300,000 occurrences: a few minutes on two
cores). Exit status 1 when duplicates or missing occurrences are found, or the ratio falls
below the target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler_service.config import load_settings  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis  # noqa: E402
from scheduler_service.recurring.service import (  # noqa: E402
    create, occurrence_job_id, recurring_store,
)
from scheduler_service.services import build_services  # noqa: E402
from scheduler_service.times import iso_ms, parse_iso_ms  # noqa: E402
from scheduler_service.wire import queue_stats  # noqa: E402

import _reference  # noqa: E402
import _results  # noqa: E402

#: The recurring side must keep this share of create_many's rate.
TARGET = 0.5
KEY = "bench-key"
W0 = parse_iso_ms("1800-01-01T00:00:00Z")
DAY = 86_400_000


def baseline(services, campaign, total) -> float:
    """Seconds for ``create_many`` of ``total`` due-now PING jobs."""
    def entries():
        for _ in range(total):
            yield ({"id": str(uuid.uuid4()), "type": "PING", "campaignId": campaign,
                    "payload": {}, "priority": 5}, None, None)

    started = time.perf_counter()
    made = services.jobs.create_many(entries())
    seconds = time.perf_counter() - started
    if made != total:
        raise SystemExit(f"create_many made {made} jobs, not {total}")
    return seconds


def check(services, rids, days) -> tuple[int, int]:
    """``(duplicates, missing)``: against each history, the job records and the queue."""
    store = recurring_store(services)
    expected = [W0 + DAY * k for k in range(1, days + 1)]
    duplicates = missing = 0
    for start in range(0, len(rids), 500):
        chunk = rids[start:start + 500]
        pipe = services.redis.pipeline(transaction=False)
        for rid in chunk:
            pipe.lrange(store.key(rid, "occurrences"), 0, -1)
        for rid, entries in zip(chunk, pipe.execute()):
            made = [json.loads(e) for e in entries]
            times = [e["at"] for e in made if e["kind"] == "created"]
            duplicates += len(times) - len(set(times))
            missing += len(set(expected) - set(times))
            if any(e["jobId"] != occurrence_job_id(rid, e["at"]) for e in made if e["kind"] == "created"):
                raise SystemExit(f"recurring job {rid}: a history entry names another job")
        pipe = services.redis.pipeline(transaction=False)
        for rid in chunk:
            for at in expected:
                pipe.exists(services.jobs.key("job", occurrence_job_id(rid, at)))
        missing += sum(1 for found in pipe.execute() if not found)
    ready = queue_stats(services.redis, services.settings.redis_namespace,
                        ["jobs.normal"])["queues"]["jobs.normal"]["ready"]
    duplicates += max(0, ready - len(rids) * days)
    missing += max(0, len(rids) * days - ready)
    return duplicates, missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recurrences", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    args = parser.parse_args(argv)
    n, days = args.recurrences, args.days
    total = n * days
    with tempfile.TemporaryDirectory(prefix="bench-recurring-") as tmp:
        workdir = Path(tmp)
        redis_server = EmbeddedRedis(workdir / "redis", persist=False).start()
        api_proc, url = _reference.start_reference_api(
            workdir, redis_server.url, seed="none",
            env={"SCHEDULER_ENV": "test", "REFERENCE_API_KEY": KEY})
        env = {"SCHEDULER_ENV": "test", "REDIS_URL": redis_server.url, "REDIS_NAMESPACE": "recurring",
               "API_URL": url, "API_SERVICE_ACCOUNT_TOKEN": KEY, "API_RATE_LIMIT_PER_SECOND": "0",
               "QUEUE_CONCURRENCY": str(args.threads), "LOG_LEVEL": "WARNING"}
        settings = load_settings(env)
        services = build_services(settings)
        roles = []
        try:
            session = requests.Session()
            session.headers.update({"x-api-key": KEY})

            def gql(query, variables):
                body = session.post(url, json={"query": query, "variables": variables},
                                    timeout=120).json()
                if body.get("errors"):
                    raise RuntimeError(body["errors"])
                return body["data"]

            campaign = gql("mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
                           {"i": {"name": "recurring", "currentWorldTime": iso_ms(W0)}}
                           )["createCampaign"]["id"]
            print(f"recurring: {n} world-clock recurring jobs every P1D, catchUp all, one campaign; "
                  f"advance {days} days = {total} occurrences; {args.processes} worker "
                  f"process(es) x {args.threads} thread(s)", flush=True)

            base_s = baseline(services, campaign, total)
            print(f"  create_many: {total} jobs in {base_s:.1f} s", flush=True)
            services.redis.flushall()

            services.jobs.remember_world_time(campaign, W0)
            t0 = time.perf_counter()
            rids = []
            for _ in range(n):
                fields, _ = create(services, {
                    "type": "PING", "campaignId": campaign, "payload": {}, "priority": 5,
                    "clock": "world", "every": "P1D", "catchUp": "all"}, now=W0)
                rids.append(fields["id"])
            print(f"  created {n} recurring jobs in {time.perf_counter() - t0:.1f} s", flush=True)

            child = {**os.environ, **env}
            roles.append(subprocess.Popen(
                [sys.executable, "-m", "scheduler_service", "worker", "--processes",
                 str(args.processes), "--queues", "jobs.high"], env=child, stdin=subprocess.DEVNULL))
            roles.append(subprocess.Popen([sys.executable, "-m", "scheduler_service", "subscriber"],
                                          env=child, stdin=subprocess.DEVNULL))
            time.sleep(3)  # the subscriber connects and subscribes, the workers start
            store = recurring_store(services)
            started = time.perf_counter()
            gql("mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) "
                "{ currentWorldTime } }", {"i": {"campaignId": campaign, "to": iso_ms(W0 + days * DAY)}})
            deadline = time.monotonic() + 1800
            while True:
                made = store.stats().get(("created", "world", "all"), 0)
                if made >= total:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {made} of {total} occurrences after 30 minutes")
                time.sleep(0.05)
            recurring_s = time.perf_counter() - started
            # Let any tick still running finish before counting (nothing should be left).
            time.sleep(1)
            duplicates, missing = check(services, rids, days)
        finally:
            for proc in roles:
                _reference.stop(proc)
            services.close()
            _reference.stop(api_proc)
            redis_server.stop()
    base_rate, rate = total / base_s, total / recurring_s
    ratio = rate / base_rate
    print(f"  create_many                      {base_rate:9.0f} jobs/s         ({base_s:6.1f} s)")
    print(f"  recurring (advance -> last one)  {rate:9.0f} occurrences/s  ({recurring_s:6.1f} s)")
    print(f"  duplicates {duplicates}, missing {missing}")
    ok = ratio >= TARGET and duplicates == 0 and missing == 0
    print(f"recurring / create_many = {ratio:.2f} (target >= {TARGET:.2f}): "
          f"{'OK' if ok else 'BELOW TARGET' if ratio < TARGET else 'WRONG COUNTS'}")
    _results.save("recurring", [
        _results.row(f"recurring occurrences/s after a {days}-day world-clock jump ({n} recurring "
                     f"jobs every P1D, catchUp all) vs create_many of the same {total} jobs",
                     rate, base_rate, target=TARGET, unit="jobs/s", baseline_name="create_many",
                     note=f"advance to last occurrence {recurring_s:.1f} s",
                     valid=duplicates == 0 and missing == 0),
        _results.row(f"recurring occurrences duplicated or missing ({total} expected)",
                     duplicates + missing, None, target=0, unit="jobs", target_kind="at_most"),
    ])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
