"""Listing filters: how long ``GET /jobs`` takes to answer a filter, at ``--jobs`` records.

One embedded Redis; ``--jobs`` ``PING`` jobs of one campaign are created with the bulk
create, then the job store lists with filters that match nothing (another type, another
campaign, a state no job is in) and with one that matches every job; each figure is the
median of ``--repeat`` calls, in milliseconds. Target: the slowest filter that matches
nothing answers no slower than one page of the filter that matches every job (an indexed
listing reads no record it will not return; a scan read all ``--jobs`` of them).

Run: ``.venv/bin/python bench/listing.py`` (a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import _results  # noqa: E402

from scheduler_service.dispatch import build_job  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis  # noqa: E402
from scheduler_service.jobstore import JobStore  # noqa: E402
from scheduler_service.plugins import load_registry  # noqa: E402


def timed(call, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder), persist=False).start()
        try:
            client = redis.Redis.from_url(server.url)
            store = JobStore(client, "bench")
            registry = load_registry()
            store.create_many((build_job(registry, "PING", "c1"), 4_102_444_800_000, None)
                              for _ in range(args.jobs))
            cases = {
                "type matches nothing": dict(job_type="NOPE"),
                "campaign matches nothing": dict(campaign_id="nope"),
                "state matches nothing": dict(state="dead"),
                "type and campaign, disjoint": dict(job_type="NOPE", campaign_id="c1"),
                "campaign matches all (page of 50)": dict(campaign_id="c1"),
            }
            print(f"listing at {args.jobs} jobs (median of {args.repeat}):")
            figures = {}
            for name, filters in cases.items():
                figures[name] = timed(lambda: store.list(limit=50, **filters), args.repeat)
                print(f"  {name:36} {figures[name]:8.2f} ms")
        finally:
            server.stop()
    page = figures.pop("campaign matches all (page of 50)")
    worst = max(figures, key=figures.get)
    _results.save("listing", [_results.row(
        f"listing at {args.jobs:,} jobs: slowest filter that matches nothing ({worst}) vs a "
        "page of 50 of a filter that matches all", figures[worst], page,
        target=round(page, 3), unit="ms", target_kind="at_most",
        baseline_name="page of 50")])


if __name__ == "__main__":
    main()
