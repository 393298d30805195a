"""Settlement growth end to end, next to a plain loop that only reads and writes each unit.

Two identical campaigns in a reference API (SQLite, over HTTP), each with ``--settlements``
settlements of 3 structures (temple, market, barracks), all first seen at world time T:

* **plain loop**: ``--processes x --threads`` threads; for each settlement, read it and its
  structures and write all four back with the client (``expectedVersion``), no simulation,
  no queue;
* **end to end**: the units' timers are placed first (``RECALCULATE_SETTLEMENT_SCHEDULES``,
  not timed); then the campaign's world time is advanced by one day through the reference
  API, which publishes ``worldTimeAdvanced``; a real ``scheduler-service subscriber`` pumps
  the campaign's world timers and ``scheduler-service worker --processes N`` runs every
  unit's ``SETTLEMENT_GROWTH`` job (read, simulate a day of every rule, write, place the next
  timer). The time runs from the ``advanceWorldTime`` call to the last unit job's end.

It prints both rates, their ratio, and the API calls per unit of each side (counted by the
reference API's ``/test-hooks/operations``). Target: end to end keeps at least 70 % of the
plain loop's rate with 2 worker processes.

Run: ``.venv/bin/python bench/growth.py`` (10,000 units: several minutes on two cores).
Exit status 1 when the ratio falls below the target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler_service.api.client import ApiClient  # noqa: E402
from scheduler_service.config import load_settings  # noqa: E402
from scheduler_service.dispatch import send_job  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis  # noqa: E402
from scheduler_service.services import build_services  # noqa: E402

import _reference  # noqa: E402
import _results  # noqa: E402

#: End to end must keep this share of the plain loop's rate.
TARGET = 0.7
KEY = "bench-key"
T = datetime(1800, 1, 1, tzinfo=timezone.utc)
STAMP = T.strftime("%Y-%m-%dT%H:%M:%S.000Z")
ADVANCE_TO = (T + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
SETTLEMENT_VARIABLES = {
    "population": 200, "resources": {"food": 50, "gold": 50, "materials": 50},
    "lastResourceGenerationAt": STAMP, "lastPopulationGrowthAt": STAMP, "lastLevelUpCheckAt": STAMP}
STRUCTURE_VARIABLES = {"health": 90, "lastMaintenanceAt": STAMP, "lastUpgradeCheckAt": STAMP}
TYPES = ("temple", "market", "barracks")


class Api:
    """Just enough raw GraphQL to build the worlds."""

    def __init__(self, url):
        self.url = url
        self.base = url.rsplit("/", 1)[0]
        self.session = requests.Session()
        self.session.headers.update({"x-api-key": KEY})

    def data(self, query, variables=None):
        body = self.session.post(self.url, json={"query": query, "variables": variables},
                                 timeout=300).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def batch(self, mutation, arguments, declarations, variables, count, batch=200):
        ids = []
        for start in range(0, count, batch):
            n = min(batch, count - start)
            fields = " ".join(f"m{i}: {mutation}(input: {arguments(start + i)}) {{ id }}"
                              for i in range(n))
            data = self.data(f"mutation({declarations}) {{ {fields} }}", variables)
            ids += [data[f"m{i}"]["id"] for i in range(n)]
        return ids

    def world(self, label, settlements):
        camp = self.data("mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
                         {"i": {"name": label, "currentWorldTime": STAMP}})["createCampaign"]["id"]
        kingdom = self.data("mutation($i: CreateKingdomInput!) { createKingdom(input: $i) { id } }",
                            {"i": {"campaignId": camp, "name": label}})["createKingdom"]["id"]
        sids = self.batch("createSettlement", lambda i: f'{{kingdomId: $k, name: "s{i}", variables: $v}}',
                          "$k: ID!, $v: JSON", {"k": kingdom, "v": SETTLEMENT_VARIABLES}, settlements)
        for sid_start in range(0, len(sids), 60):
            chunk = sids[sid_start:sid_start + 60]
            decl = ", ".join(f"$s{j}: ID!" for j in range(len(chunk))) + ", $v: JSON"
            fields = " ".join(
                f'm{j}_{t}: createStructure(input: {{settlementId: $s{j}, type: "{kind}", '
                f'name: "{kind}", variables: $v}}) {{ id }}'
                for j in range(len(chunk)) for t, kind in enumerate(TYPES))
            self.data(f"mutation({decl}) {{ {fields} }}",
                      {**{f"s{j}": sid for j, sid in enumerate(chunk)}, "v": STRUCTURE_VARIABLES})
        return camp, sids

    def operations(self) -> int:
        counts = self.session.get(f"{self.base}/test-hooks/operations", timeout=30).json()
        return sum(counts.values())


def plain_loop(settings, settlement_ids, threads) -> float:
    """Seconds to read and write every unit with ``threads`` threads of client calls."""
    client = ApiClient.from_settings(settings)

    def one(sid):
        s = client.settlement(sid)
        client.update_settlement(sid, expected_version=s.version,
                                 variables={"resources": {**s.variables["resources"], "food": 51}})
        for structure in client.structures_by_settlement(sid):
            client.update_structure(structure.id, expected_version=structure.version,
                                    variables={"health": 91})

    try:
        client.campaigns(use_cache=False)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(one, settlement_ids, chunksize=32):
                pass
        return time.perf_counter() - started
    finally:
        client.close()


def counts(services):
    r, ns = services.redis, services.settings.redis_namespace
    return {s: r.zcard(f"{ns}:jobs:state:{s}") for s in ("queued", "running", "succeeded", "failed", "dead")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        workdir = Path(tmp)
        redis_server = EmbeddedRedis(workdir / "redis", persist=False).start()
        api_proc, url = _reference.start_reference_api(
            workdir, redis_server.url, seed="none",
            env={"SCHEDULER_ENV": "test", "REFERENCE_API_KEY": KEY, "REFERENCE_API_TEST_HOOKS": "true"})
        env = {"SCHEDULER_ENV": "test", "REDIS_URL": redis_server.url, "REDIS_NAMESPACE": "growth",
               "API_URL": url, "API_SERVICE_ACCOUNT_TOKEN": KEY, "API_RATE_LIMIT_PER_SECOND": "0",
               "QUEUE_CONCURRENCY": str(args.threads), "LOG_LEVEL": "WARNING",
               "SUBSCRIBER_COOLDOWN_MS": "5000"}
        settings = load_settings(env)
        services = build_services(settings)
        roles = []
        try:
            api = Api(url)
            n = args.settlements
            print(f"growth: {n} settlements x 3 structures per side, one day of world time, "
                  f"{args.processes} worker process(es) x {args.threads} thread(s)", flush=True)
            t0 = time.perf_counter()
            plain_camp, plain_ids = api.world("plain", n)
            e2e_camp, _ = api.world("end-to-end", n)
            print(f"  built both worlds in {time.perf_counter() - t0:.1f} s", flush=True)

            before = api.operations()
            plain_s = plain_loop(settings, plain_ids, args.processes * args.threads)
            plain_calls = (api.operations() - before) / n

            # Place every unit's timer (not timed), then start the roles
            job, _ = send_job(services, "RECALCULATE_SETTLEMENT_SCHEDULES", e2e_camp, {})
            roles.append(subprocess.Popen(
                [sys.executable, "-m", "scheduler_service", "worker", "--processes",
                 str(args.processes)], env={**os.environ, **env}, stdin=subprocess.DEVNULL))
            while services.jobs.get(job["id"])["state"] not in ("succeeded", "dead"):
                time.sleep(0.2)
            placed = services.jobs.get(job["id"])["result"]
            if placed.get("timersPlaced") != n:
                raise SystemExit(f"the recalculation placed {placed} timers, not {n}")
            roles.append(subprocess.Popen([sys.executable, "-m", "scheduler_service", "subscriber"],
                                          env={**os.environ, **env}, stdin=subprocess.DEVNULL))
            time.sleep(3)  # the subscriber connects and subscribes
            start = counts(services)
            before = api.operations()
            started = time.perf_counter()
            api.data("mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) "
                     "{ currentWorldTime } }", {"i": {"campaignId": e2e_camp, "to": ADVANCE_TO}})
            deadline = time.monotonic() + 1800
            while True:
                now = counts(services)
                done = now["succeeded"] - start["succeeded"]
                if done >= n and now["queued"] == 0 and now["running"] == 0:
                    break
                if now["dead"] > start["dead"]:
                    raise SystemExit(f"unit jobs died: {now}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"the unit jobs did not finish: {now}")
                time.sleep(0.1)
            e2e_s = time.perf_counter() - started
            e2e_calls = (api.operations() - before) / n
        finally:
            for proc in roles:
                _reference.stop(proc)
            services.close()
            _reference.stop(api_proc)
            redis_server.stop()
    plain_rate, e2e_rate = n / plain_s, n / e2e_s
    ratio = e2e_rate / plain_rate
    print(f"  plain loop (read + write each unit)  {plain_rate:8.1f} units/s  ({plain_s:6.1f} s, "
          f"{plain_calls:.2f} API calls per unit)")
    print(f"  end to end (message -> last write)   {e2e_rate:8.1f} units/s  ({e2e_s:6.1f} s, "
          f"{e2e_calls:.2f} API calls per unit)")
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(f"end to end / plain loop = {ratio:.2f} (target >= {TARGET:.2f}): {verdict}")
    _results.save("growth", [_results.row(
        f"settlement units/s end to end vs plain loop ({n} units, {args.processes} worker "
        f"processes x {args.threads} threads)", e2e_rate, plain_rate, target=TARGET,
        unit="units/s", baseline_name="plain read/write loop",
        note=f"API calls per unit: {e2e_calls:.2f} end to end, {plain_calls:.2f} plain")])
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
