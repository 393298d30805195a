"""Fault: a worker SIGKILLed in the middle of 100 deferred effects.

A real worker process runs 100 DEFERRED_EFFECT jobs against a reference API of the test's
own, whose every executeEffect answers 150 ms after committing (so that at any moment a few
effects are executed in the API but not yet acknowledged by the worker). The test kills the
worker once some but not all jobs have succeeded, starts another, and counts the executions
in the API itself, not in Redis.
"""

import signal
import time

import pytest
import requests

from scheduler_service.dispatch import send_job
from helpers import start_role, stop_roles, wait_for

pytestmark = pytest.mark.slow

EFFECTS = 100
PATCH = [{"op": "replace", "path": "/variables/morale", "value": 7}]


def execution_counts(api, effect_ids) -> dict[str, list[str]]:
    """Each effect's executions (the scheduler job ids in their context), in one request."""
    fields = " ".join(f'e{i}: getEffect(id: "{eid}") {{ executions {{ context }} }}'
                      for i, eid in enumerate(effect_ids))
    data = api.data(f"query {{ {fields} }}")
    return {eid: [x["context"]["schedulerJobId"] for x in data[f"e{i}"]["executions"]]
            for i, eid in enumerate(effect_ids)}


def test_a_worker_killed_mid_batch_leaves_every_effect_executed_exactly_once(
        services, child_env, spawn_reference_api, tmp_path):
    api = spawn_reference_api(env={"REFERENCE_API_TEST_HOOKS": "true"})
    world = api.make_world(settlements=0)
    kingdom = world["kingdom"]["id"]
    settlements = api.make_settlements(kingdom, EFFECTS, variables={"morale": 1})
    effects = [api.make_effect("Settlement", s, PATCH)["id"] for s in settlements]
    requests.post(f"{api.base_url}/test-hooks/stall",
                  json={"field": "executeEffect", "ms": 150, "times": 10 * EFFECTS},
                  headers={"x-api-key": api.key}, timeout=5).raise_for_status()
    env = child_env(API_URL=api.url, API_SERVICE_ACCOUNT_TOKEN=api.key,
                    API_RATE_LIMIT_PER_SECOND=0,
                    REDIS_NAMESPACE=services.settings.redis_namespace,
                    QUEUE_HEARTBEAT_TIMEOUT_MS=2000, QUEUE_MAINTENANCE_CHANCE=100_000,
                    LOG_LEVEL="WARNING")
    procs = []
    try:
        # Given 100 deferred effects being run by a worker with 4 threads
        procs.append(start_role(["worker", "--threads", "4"], env, tmp_path / "first.log"))
        jobs = [send_job(services, "DEFERRED_EFFECT", world["campaign"]["id"],
                         {"effectId": effect})[0]["id"] for effect in effects]
        states = lambda: [services.jobs.get(j)["state"] for j in jobs]  # noqa: E731
        # When it is SIGKILLed once some, but not all, have succeeded
        done_at_kill = wait_for(lambda: 20 <= (n := states().count("succeeded")) < 60 and n,
                                timeout=60, interval=0.02, message="20 effects to succeed")
        procs[0].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        procs[0].wait(10)
        running_at_kill = states().count("running")
        executed_at_kill = sum(1 for runs in execution_counts(api, effects).values() if runs)
        # and another worker starts
        procs.append(start_role(["worker", "--threads", "4"], env, tmp_path / "second.log"))
        wait_for(lambda: states().count("succeeded") == EFFECTS, timeout=60, interval=0.1,
                 message="all 100 jobs to succeed")
        recovery_s = time.monotonic() - killed_at
    finally:
        stop_roles(procs)

    # Then every effect was executed exactly once, by its own job, and every job succeeded
    runs = execution_counts(api, effects)
    once = sum(1 for r in runs.values() if len(r) == 1)
    duplicated = sum(1 for r in runs.values() if len(r) > 1)
    lost = sum(1 for r in runs.values() if not r)
    records = [services.jobs.get(j) for j in jobs]
    redelivered = [r for r in records if r["attempts"] > 1]
    found_own = [r for r in records if r["result"].get("reason") == "already executed by this job"]
    print(f"\nworker SIGKILLed with {done_at_kill} succeeded, {running_at_kill} running, "
          f"{executed_at_kill} executed in the API; executed once {once}, duplicated "
          f"{duplicated}, lost {lost}; {len(redelivered)} redelivered, of which "
          f"{len(found_own)} found their own execution; recovery {recovery_s:.1f}s")
    assert (once, duplicated, lost) == (EFFECTS, 0, 0)
    assert all(r == [job] for r, job in zip(runs.values(), jobs))
    assert all(r["state"] == "succeeded" for r in records)
    assert all(r["result"]["executionId"] for r in records)
    # the kill really landed mid-batch: some jobs were taken over by the second worker
    assert redelivered and done_at_kill < EFFECTS
    assert not any(r["state"] == "dead" for r in records)
