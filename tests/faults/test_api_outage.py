"""The main API down for 30 s while 200 deferred effects are due, on real processes.

Two worker processes, a timer pump and the web process run against the real Redis and a
reference API of the test's own. The API process is stopped (connections refused) for about
:data:`OUTAGE_S` seconds (the new process's start-up time is estimated from the first one's,
so the real length varies with the machine; the bound below is computed from the measured
length), the jobs fall due meanwhile, and the API is then started again on the same port
with the same database. The proof:

* every effect executed exactly once, every job ``succeeded``, none dead-lettered;
* the jobs parked on the open breaker back off: during the outage each job starts at most
  about once per breaker period (see :func:`start_bound`), not in a tight loop;
* ``/health`` of the web process, whose own client makes no call, reports the ``api``
  component down while the workers' breakers are open, and up again after.
"""

from __future__ import annotations

import math
import time

import pytest
import requests

from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import parse_iso_ms
from scheduler_service.wire import queue_stats
from helpers import start_role, stop_roles, wait_for
from reference_fixtures import start_reference_api, stop_reference_api

pytestmark = pytest.mark.slow

#: How long the API is away.
OUTAGE_S = 30
#: Deferred effects due during the outage.
JOBS = 200
#: The breakers' open period (API_CIRCUIT_BREAKER_DURATION_MS), in seconds.
BREAKER_S = 15
#: Worker processes and threads of each.
PROCESSES, THREADS = 2, 5
PATCH = [{"op": "replace", "path": "/variables/morale", "value": 7}]


def start_bound(jobs: int, outage_s: float, breaker_s: float, processes: int, threads: int,
                threshold: int) -> int:
    """The most job starts an outage may cost when parked jobs back off.

    A job starts once when it falls due. The breakers half-open at most ``outage_s // breaker_s``
    times within the outage. Before a process's breaker opens, at most
    ``threshold + threads - 1`` of its calls fail (those in flight when it opens); each
    such job is started once more by its retry, which meets the open breaker. From then on
    a parked job comes back once per breaker period, when the breaker that parked it lets
    a trial through, spread over a quarter of the period: a second start in the same
    period (fetched first by a process whose breaker is a little behind, or while a trial
    runs) is the exception; a quarter of the jobs per period are allowed one. Each
    half-open admits one trial.
    """
    periods = math.floor(outage_s / breaker_s)  # half-opens within the outage, at most
    opening = processes * (threshold + threads - 1)
    trials = processes * periods
    return jobs + jobs * periods + jobs * periods // 4 + opening + trials


@pytest.fixture
def api(tmp_path, redis_server):
    """A reference API of this test's own (stopped and started again on the same port)."""
    folder = tmp_path / "reference"
    started = time.monotonic()
    server = start_reference_api(folder, "--seed", "none", env={"REDIS_URL": redis_server.url})
    running = {"api": server, "boot_s": time.monotonic() - started}
    yield running
    stop_reference_api(running["api"])


@pytest.fixture
def roles(child_env, services, tmp_path):
    procs = []

    def start(*command, **env):
        env = child_env(REDIS_NAMESPACE=services.settings.redis_namespace, LOG_FORMAT="json",
                        **env)
        proc = start_role(command, env, tmp_path / f"{command[0]}-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    stop_roles(procs)


def health_api(base) -> dict:
    return requests.get(f"{base}/health", timeout=5).json()["components"]["api"]


def make_effects(api, count: int) -> tuple[str, list[str]]:
    world = api.make_world(settlement_variables={"morale": 1})
    ids = api.create_many(
        "createEffect",
        'name: "fx{n}", effectType: "patch", payload: $p, entityType: "Settlement", '
        'entityId: $s, timing: ON_RESOLVE, isActive: true',
        "$p: JSON!, $s: ID!", {"p": PATCH, "s": world["settlements"][0]["id"]}, count)
    return world["campaign"]["id"], ids


def executions(api, effect_ids) -> dict[str, list[str]]:
    """``{effect id: [schedulerJobId of each execution]}``, one aliased query."""
    fields = " ".join(f'e{i}: getEffect(id: "{e}") {{ id executions {{ context }} }}'
                      for i, e in enumerate(effect_ids))
    data = api.data(f"query {{ {fields} }}")
    return {d["id"]: [x["context"]["schedulerJobId"] for x in d["executions"]]
            for d in data.values()}


def starts_between(services, job_ids, start_ms: int, end_ms: int) -> int:
    """How many attempts of ``job_ids`` started (went ``running``) in ``[start_ms, end_ms)``."""
    count = 0
    for job_id in job_ids:
        count += sum(1 for e in services.jobs.history(job_id)
                     if e["to"] == "running" and start_ms <= parse_iso_ms(e["at"]) < end_ms)
    return count


def test_jobs_due_while_the_api_is_down_wait_for_it_and_all_run_once(api, roles, services):
    server = api["api"]
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    env = {**server.client_env(), "API_CIRCUIT_BREAKER_DURATION_MS": BREAKER_S * 1000,
           "API_REQUEST_TIMEOUT_MS": 2000}
    # Given 200 effects, two worker processes, a timer pump and the web process
    campaign, effect_ids = make_effects(server, JOBS)
    roles("worker", "--processes", str(PROCESSES), "--threads", str(THREADS), **env)
    roles("pump", **env)
    roles("web", "--workers", "1", "--threads", "4", PORT=web_port, **env)
    wait_for(lambda: _answers(base), timeout=60, interval=0.2, message="the web process")
    assert health_api(base)["status"] == "up"

    # When the API goes away and the 200 jobs fall due
    stop_reference_api(server)
    down_at = time.time()
    job_ids = [send_job(services, "DEFERRED_EFFECT", campaign, {"effectId": e})[0]["id"]
               for e in effect_ids]
    # Then /health reports the api circuit open while the workers see it open
    seen = []
    # (the new process is started early by its own start-up time, so that it answers when
    # the outage ends)
    while time.time() < down_at + OUTAGE_S - api["boot_s"]:
        seen.append(health_api(base))
        time.sleep(0.5)
    circuits = [s.get("details", {}).get("circuit") for s in seen]

    # When the API comes back on the same port, with the same data
    api["api"] = start_reference_api(server.log_path.parent, "--seed", "none",
                                     env={"REDIS_URL": services.settings.redis_url},
                                     port=server.port)
    up_at = time.time()
    outage_s = up_at - down_at

    # Then every job succeeds, and /health says the circuit is closed again
    def all_done():
        states = [services.jobs.get(j)["state"] for j in job_ids]
        return all(s == "succeeded" for s in states) and states
    wait_for(all_done, timeout=BREAKER_S * 2 + 60, interval=0.5, message="every job to succeed")
    finished = [parse_iso_ms(services.jobs.get(j)["updatedAt"]) for j in job_ids]
    recovery_s = max(finished) / 1000 - up_at
    closed = wait_for(lambda: (h := health_api(base))["status"] == "up" and h, timeout=15,
                      interval=0.5, message="/health to report the api up")
    assert closed["details"]["circuit"] == "closed"

    # and each effect ran exactly once, by its own job; nothing was dead-lettered
    ran = executions(api["api"], effect_ids)
    by_job = dict(zip(job_ids, effect_ids))
    assert all(ran[e] == [j] for j, e in by_job.items())
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    assert stats["totals"]["dead"] == 0
    records = [services.jobs.get(j) for j in job_ids]
    assert not any(r.get("deadLetter") for r in records)
    # and the parked jobs backed off: a bounded number of starts during the outage
    starts = starts_between(services, job_ids, int(down_at * 1000), int(up_at * 1000))
    # (the back-off is only tested if the outage outlasted one breaker period: a half-open
    # trial fell inside it)
    assert outage_s > BREAKER_S + 5, f"the outage lasted only {outage_s:.1f}s"
    bound = start_bound(JOBS, outage_s, BREAKER_S, PROCESSES, THREADS,
                        services.settings.api_breaker_threshold)
    attempts = sorted(r["attempts"] for r in records)
    print(f"\nAPI outage {outage_s:.1f}s, {JOBS} jobs: executed once {sum(len(v) == 1 for v in ran.values())}, "
          f"lost {sum(not v for v in ran.values())}, duplicated {sum(len(v) > 1 for v in ran.values())}, "
          f"dead-lettered {stats['totals']['dead']}; starts during the outage {starts} "
          f"(bound {bound}); attempts spent max {attempts[-1]}; /health open after "
          f"{circuits.index('open') * 0.5 if 'open' in circuits else None}s; recovery {recovery_s:.1f}s after the API returned")
    assert starts <= bound
    # and /health, in a process that made no call, told what the workers saw: open during
    # the outage, up to its end
    assert "open" in circuits, seen[-3:]
    assert seen[-1]["status"] != "up", seen[-1]


def _answers(base) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False
