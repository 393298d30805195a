"""Event expiration end to end, next to a plain loop of the same mutations.

20,000 overdue events across 20 campaigns of a reference API (SQLite, over HTTP), per side:

* **plain loop**: the ids are known in advance; ``--worker-threads × --concurrency`` threads
  call ``ApiClient.expire_event`` for each, as fast as the API answers;
* **end to end**: the campaigns' world time is advanced through the reference API, which
  publishes ``worldTimeAdvanced``; a real ``scheduler-service subscriber`` process enqueues
  one ``EVENT_EXPIRATION`` per campaign (priority 8), and a real ``scheduler-service worker``
  process (``QUEUE_CONCURRENCY=--worker-threads``,
  ``EVENT_EXPIRATION_CONCURRENCY=--concurrency``, so at most as many calls in flight as the
  plain loop) pages through ``getOverdueEvents`` and expires. The time runs from the first
  ``advanceWorldTime`` call to the end of the last campaign's job (as its record says).

The campaigns are split into ``--rounds`` rounds; each round builds its two worlds first and
then runs both sides, in alternating order, so that the drift of a noisy machine and the
growth of the database hit both alike. The end-to-end side also pays for the advances, the
messages, the listing, the job records and the worker's own queue polling. Both sides use
the API client with its rate limit off. Target: end to end keeps at least 90 % of the plain
loop's rate. (The ``SYSTEM`` fan-out of the periodic sweep is covered by the tests.)

Run: ``.venv/bin/python bench/expiration.py`` (about five minutes on two cores).
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
from scheduler_service.jobstore import parse_iso_ms  # noqa: E402
from scheduler_service.services import build_services  # noqa: E402

import _reference  # noqa: E402  (bench/ is the script's own folder, first on sys.path)
import _results  # noqa: E402

#: End to end must keep this share of the plain loop's rate.
TARGET = 0.9
KEY = "bench-key"
WORLD_TIME = datetime(1800, 1, 1, tzinfo=timezone.utc)


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


#: Events of the plain loop are overdue from the start; those of the end-to-end side fall
#: due when their campaign's clock is advanced to AFTER.
DUE_BEFORE = _iso(WORLD_TIME - timedelta(days=1))
DUE_AFTER = _iso(WORLD_TIME + timedelta(hours=1))
AFTER = _iso(WORLD_TIME + timedelta(hours=2))


class Api:
    """Just enough raw GraphQL to build the world."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.session.headers.update({"x-api-key": KEY})

    def data(self, query, variables=None):
        body = self.session.post(self.url, json={"query": query, "variables": variables},
                                 timeout=120).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def campaign(self, name):
        return self.data("mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { id } }",
                         {"i": {"name": name, "currentWorldTime": _iso(WORLD_TIME)}}
                         )["createCampaign"]["id"]

    def events(self, campaign_id, count, scheduled_at, batch=250):
        ids = []
        for start in range(0, count, batch):
            n = min(batch, count - start)
            fields = " ".join(f'm{i}: createEvent(input: {{campaignId: $c, name: "e{start + i}", '
                              f'eventType: "world", scheduledAt: $at}}) {{ id }}' for i in range(n))
            data = self.data(f"mutation($c: ID!, $at: DateTime) {{ {fields} }}",
                             {"c": campaign_id, "at": scheduled_at})
            ids += [data[f"m{i}"]["id"] for i in range(n)]
        return ids

    def world(self, label, campaigns, per_campaign, scheduled_at):
        out = {}
        for c in range(campaigns):
            cid = self.campaign(f"{label}-{c}")
            out[cid] = self.events(cid, per_campaign, scheduled_at)
        return out

    def advance(self, campaign_id, to):
        self.data("mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) "
                  "{ currentWorldTime } }", {"i": {"campaignId": campaign_id, "to": to}})

    def overdue(self, campaign_id):
        return len(self.data("query($c: ID!) { getOverdueEvents(campaignId: $c, gracePeriodMs: 0, "
                             "first: 500) { nodes { id } } }", {"c": campaign_id}
                             )["getOverdueEvents"]["nodes"])


def start_reference_api(workdir: Path, redis_url: str):
    """A reference API subprocess on a free port (seed none); returns it and its GraphQL URL."""
    return _reference.start_reference_api(
        workdir, redis_url, seed="none", env={"SCHEDULER_ENV": "test", "REFERENCE_API_KEY": KEY})


stop = _reference.stop


def plain_loop(settings, ids, threads) -> float:
    """Seconds to expire ``ids`` with ``threads`` threads of plain client calls."""
    client = ApiClient.from_settings(settings)
    try:
        client.campaigns(use_cache=False)  # open a connection first, as a worker would have
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(client.expire_event, ids, chunksize=64):
                pass
        return time.perf_counter() - started
    finally:
        client.close()


def wait_job(services, job_id, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        job = services.jobs.get(job_id)
        if job["state"] in ("succeeded", "dead"):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {job['state']} after {timeout}s")
        time.sleep(0.05)


def end_to_end(api, services, world) -> float:
    """Seconds from the first ``advanceWorldTime`` to the end of the last campaign's job."""
    started_ms = time.time() * 1000
    for campaign_id in world:
        api.advance(campaign_id, AFTER)
    deadline = time.monotonic() + 900
    while True:
        jobs = {c: services.jobs.list(job_type="EVENT_EXPIRATION", campaign_id=c, limit=5)[0]
                for c in world}
        if all(len(j) == 1 and j[0]["state"] in ("succeeded", "dead") for j in jobs.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the campaign jobs did not finish: {jobs}")
        time.sleep(0.5)  # the end is read from the records: polling slowly only saves CPU
    done = [j[0] for j in jobs.values()]
    bad = [j for j in done if j["state"] != "succeeded" or j["priority"] != 8
           or {k: j["result"].get(k) for k in ("expired", "skipped", "failed", "failedIds")}
           != {"expired": len(world[j["campaignId"]]), "skipped": 0, "failed": 0, "failedIds": []}]
    if bad:
        raise SystemExit(f"{len(bad)} campaign job(s) did not expire their events: {bad[0]}")
    return (max(parse_iso_ms(j["updatedAt"]) for j in done) - started_ms) / 1000


def start_role(role, env):
    return subprocess.Popen([sys.executable, "-m", "scheduler_service", role],
                            env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=20, help="campaigns per side")
    parser.add_argument("--events", type=int, default=20_000, help="events per side")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds the campaigns are split into (default: 4)")
    parser.add_argument("--worker-threads", type=int, default=1,
                        help="threads of the worker process (default: 1)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="EVENT_EXPIRATION_CONCURRENCY (default: 10, its default)")
    args = parser.parse_args(argv)
    per_campaign = args.events // args.campaigns
    per_round = max(1, args.campaigns // args.rounds)
    rounds = args.campaigns // per_round
    total = per_campaign * per_round * rounds
    in_flight = args.worker_threads * args.concurrency
    seconds = {"plain": 0.0, "e2e": 0.0}

    with tempfile.TemporaryDirectory(prefix="bench-expiration-") as tmp:
        tmp = Path(tmp)
        redis_server = EmbeddedRedis(tmp / "redis", persist=False).start()
        api_proc = worker = subscriber = services = None
        try:
            api_proc, url = start_reference_api(tmp, redis_server.url)
            env = {"SCHEDULER_ENV": "test", "REDIS_URL": redis_server.url,
                   "REDIS_NAMESPACE": "bench", "API_URL": url, "API_SERVICE_ACCOUNT_TOKEN": KEY,
                   "API_RATE_LIMIT_PER_SECOND": "0", "LOG_LEVEL": "WARNING",
                   "QUEUE_CONCURRENCY": str(args.worker_threads), "QUEUE_PROCESSES": "1",
                   "EVENT_EXPIRATION_CONCURRENCY": str(args.concurrency),
                   "EVENT_EXPIRATION_GRACE_MINUTES": "0"}
            settings = load_settings(env)
            api = Api(url)
            worker, subscriber = start_role("worker", env), start_role("subscriber", env)
            services = build_services(settings)
            warm, _ = send_job(services, "PING", "SYSTEM")
            wait_job(services, warm["id"], timeout=60)
            for r in range(rounds):
                print(f"round {r + 1} of {rounds}: building 2 x {per_round * per_campaign} "
                      f"events in 2 x {per_round} campaigns...", flush=True)
                plain_world = api.world(f"plain-{r}", per_round, per_campaign, DUE_BEFORE)
                e2e_world = api.world(f"e2e-{r}", per_round, per_campaign, DUE_AFTER)
                ids = [e for events in plain_world.values() for e in events]
                order = ("plain", "e2e") if r % 2 == 0 else ("e2e", "plain")
                for side in order:
                    if side == "plain":
                        seconds["plain"] += plain_loop(settings, ids, in_flight)
                    else:
                        seconds["e2e"] += end_to_end(api, services, e2e_world)
                left = [c for c in (*plain_world, *e2e_world) if api.overdue(c)]
                if left:
                    raise SystemExit(f"{len(left)} campaign(s) still have overdue events")
        finally:
            if services is not None:
                services.close()
            stop(subscriber)
            stop(worker)
            stop(api_proc)
            redis_server.stop()

    plain_rate, e2e_rate = total / seconds["plain"], total / seconds["e2e"]
    ratio = e2e_rate / plain_rate
    print(f"event expiration: {total} overdue events in {per_round * rounds} campaigns per side, "
          f"{rounds} alternating rounds, {in_flight} expireEvent calls in flight at most per side")
    print(f"  plain loop of client calls  {plain_rate:8.1f} events/s  ({seconds['plain']:6.1f} s)")
    print(f"  end to end                  {e2e_rate:8.1f} events/s  ({seconds['e2e']:6.1f} s)"
          f"  (advanceWorldTime -> subscriber -> worker x {args.worker_threads} thread(s), "
          f"concurrency {args.concurrency})")
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(f"end to end / plain loop = {ratio:.2f} (target >= {TARGET:.2f}): {verdict}")
    _results.save("expiration", [_results.row(
        f"expired events/s end to end vs plain loop ({total} events, {in_flight} calls in flight)",
        e2e_rate, plain_rate, target=TARGET, unit="events/s", baseline_name="plain client loop")])
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
