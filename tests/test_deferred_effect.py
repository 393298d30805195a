"""DEFERRED_EFFECT against the live reference API, through real timers and a real worker."""

import time
from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import now_ms, parse_iso_ms
from scheduler_service.timers import WallTimerPump, pump_world
from helpers import running_worker, wait_for

PATCH = [{"op": "replace", "path": "/variables/morale", "value": 7}]


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


@pytest.fixture
def pump(services):
    p = WallTimerPump(services.jobs, interval_ms=20).start()
    yield p
    p.stop()


def executions(reference_api, effect_id):
    return reference_api.data("query($id: ID!) { getEffect(id: $id) { executions { id context } } }",
                              {"id": effect_id})["getEffect"]["executions"]


def settlement_with_effect(reference_api, world_time=None, payload=PATCH, active=True):
    world = reference_api.make_world(world_time=world_time, settlement_variables={"morale": 1})
    settlement = world["settlements"][0]
    effect = reference_api.make_effect("Settlement", settlement["id"], payload, is_active=active)
    return world, settlement, effect


def wait_state(services, job_id, state, timeout=15):
    return wait_for(lambda: (j := services.jobs.get(job_id))["state"] == state and j,
                    timeout=timeout, message=f"job {job_id} to be {state}")


def test_effect_due_in_two_seconds_runs_once(services, worker, pump, reference_api):
    world, settlement, effect = settlement_with_effect(reference_api)
    due = now_ms() + 2000
    job, created = send_job(services, "DEFERRED_EFFECT", world["campaign"]["id"],
                            {"effectId": effect["id"]}, run_at_ms=due)
    assert created and job["state"] == "scheduled"
    time.sleep(1.0)
    assert executions(reference_api, effect["id"]) == []          # not before it is due
    done = wait_state(services, job["id"], "succeeded")
    assert done["result"]["outcome"] == "executed"
    runs = executions(reference_api, effect["id"])
    assert len(runs) == 1 and runs[0]["context"]["schedulerJobId"] == job["id"]
    assert runs[0]["id"] == done["result"]["executionId"]
    after = reference_api.data("query($id: ID!) { settlement(id: $id) { variables } }",
                               {"id": settlement["id"]})["settlement"]
    assert after["variables"]["morale"] == 7
    history = [h for h in services.jobs.history(job["id"]) if h["to"] == "running"]
    started_ms = parse_iso_ms(history[0]["at"])
    assert due <= started_ms < due + 1000


def test_effect_due_at_world_time_waits_for_advance_world_time(services, worker, reference_api):
    start = datetime(1500, 1, 1, tzinfo=timezone.utc)
    world, _, effect = settlement_with_effect(reference_api, world_time=start)
    campaign = world["campaign"]["id"]
    due = start + timedelta(days=1)
    job, _ = send_job(services, "DEFERRED_EFFECT", campaign, {"effectId": effect["id"]},
                      run_at_world_ms=int(due.timestamp() * 1000))
    # An advance that stops short of the due time runs nothing
    result = reference_api.advance(campaign, start + timedelta(hours=23))
    pump_world(services.jobs, campaign, parse_iso_ms(result["currentWorldTime"]))
    time.sleep(0.5)
    assert services.jobs.get(job["id"])["state"] == "scheduled"
    assert executions(reference_api, effect["id"]) == []
    # An advance past it does
    result = reference_api.advance(campaign, start + timedelta(days=2))
    assert pump_world(services.jobs, campaign, parse_iso_ms(result["currentWorldTime"])) == 1
    wait_state(services, job["id"], "succeeded")
    assert len(executions(reference_api, effect["id"])) == 1


def test_missing_or_inactive_effect_is_skipped(services, worker, reference_api):
    _, _, inactive = settlement_with_effect(reference_api, active=False)
    job1, _ = send_job(services, "DEFERRED_EFFECT", "c1", {"effectId": "no-such-effect"})
    job2, _ = send_job(services, "DEFERRED_EFFECT", "c1", {"effectId": inactive["id"]})
    r1 = wait_state(services, job1["id"], "succeeded")["result"]
    r2 = wait_state(services, job2["id"], "succeeded")["result"]
    assert r1["outcome"] == "skipped" and "does not exist" in r1["reason"]
    assert r2["outcome"] == "skipped" and "inactive" in r2["reason"]
    assert executions(reference_api, inactive["id"]) == []


def test_an_execution_recorded_for_this_job_is_never_repeated(services, worker, reference_api):
    _, _, effect = settlement_with_effect(reference_api)
    job, _ = send_job(services, "DEFERRED_EFFECT", "c1", {"effectId": effect["id"]},
                      run_at_ms=now_ms() + 3_600_000)
    # Given the effect was already executed by this job (as by an attempt that died before ack)
    reference_api.data("mutation($i: ExecuteEffectInput!) { executeEffect(input: $i) { success } }",
                       {"i": {"effectId": effect["id"], "context": {"schedulerJobId": job["id"]}}})
    # When the job runs
    services.jobs.update_scheduled(job["id"], run_at_ms=now_ms() - 1)
    from scheduler_service.timers import pump_wall

    assert pump_wall(services.jobs) == 1
    result = wait_state(services, job["id"], "succeeded")["result"]
    # Then it does not execute the effect a second time
    assert result["outcome"] == "skipped" and result["reason"] == "already executed by this job"
    assert len(executions(reference_api, effect["id"])) == 1


def test_success_false_is_a_permanent_failure(services, worker, reference_api):
    bad = [{"op": "remove", "path": "/variables/not-there"}]
    world, _, effect = settlement_with_effect(reference_api, payload=bad)
    job, _ = send_job(services, "DEFERRED_EFFECT", world["campaign"]["id"], {"effectId": effect["id"]})
    dead = wait_state(services, job["id"], "dead")
    assert dead["attempts"] == 1
    assert "PermanentJobError" in dead["lastError"] and "does not apply" in dead["lastError"]


def test_open_circuit_reschedules_without_spending_an_attempt(make_settings, redis_client):
    from scheduler_service.services import build_services

    # Given an API that cannot be reached and a breaker that opens after one failure
    closed = f"http://127.0.0.1:{free_port()}/graphql"
    services = build_services(make_settings(API_URL=closed, API_MAX_RETRIES=0,
                                            API_CIRCUIT_BREAKER_THRESHOLD=1,
                                            API_CIRCUIT_BREAKER_DURATION_MS=60_000))
    try:
        with running_worker(services):
            job, _ = send_job(services, "DEFERRED_EFFECT", "c1", {"effectId": "e1"})
            # When the first attempt fails (transient) and its failure opens the circuit
            rescheduled = wait_state(services, job["id"], "scheduled", timeout=20)
    finally:
        services.close()
    # Then the job waits on its timer for the breaker, the attempt not counted: the API,
    # not the job, failed
    assert rescheduled["attempts"] == 0
    assert rescheduled["lastError"].startswith("Transient")
    assert parse_iso_ms(rescheduled["runAt"]) > now_ms() + 30_000
    details = [h["detail"] for h in services.jobs.history(job["id"])]
    assert not any(d.startswith("will retry in") for d in details)
    assert any("circuit open" in d for d in details)


@pytest.mark.slow
def test_worker_killed_mid_job_redelivers_and_the_effect_still_runs_once(
        services, child_env, spawn_reference_api, tmp_path):
    import subprocess
    import sys

    import requests

    from helpers import stop_process

    api = spawn_reference_api(env={"REFERENCE_API_TEST_HOOKS": "true"})
    world = api.make_world(settlement_variables={"morale": 1})
    effect = api.make_effect("Settlement", world["settlements"][0]["id"], PATCH)
    env = child_env(API_URL=api.url, API_SERVICE_ACCOUNT_TOKEN=api.key,
                    REDIS_NAMESPACE=services.settings.redis_namespace,
                    QUEUE_HEARTBEAT_TIMEOUT_MS=2000, QUEUE_MAINTENANCE_CHANCE=100_000,
                    LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "scheduler_service", "worker", "--processes", "1"]
    # Given the API will hold its answer to the next executeEffect for 20 s after committing it
    requests.post(f"{api.base_url}/test-hooks/stall", json={"field": "executeEffect", "ms": 20000},
                  headers={"x-api-key": api.key}, timeout=5).raise_for_status()
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = None
    try:
        job, _ = send_job(services, "DEFERRED_EFFECT", world["campaign"]["id"], {"effectId": effect["id"]})
        # When the effect has been executed but the worker is killed before it hears back
        wait_for(lambda: executions(api, effect["id"]), timeout=30, message="the execution")
        assert services.jobs.get(job["id"])["state"] == "running"
        first.kill()
        first.wait(10)
        # and another worker takes over once the dead one's heartbeat is stale
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = wait_state(services, job["id"], "succeeded", timeout=90)
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    # Then the job was redelivered, and the effect still ran exactly once
    assert done["attempts"] == 2
    assert done["result"] == {"outcome": "skipped", "reason": "already executed by this job",
                              "executionId": executions(api, effect["id"])[0]["id"]}
    assert len(executions(api, effect["id"])) == 1


def test_effects_whose_answers_come_after_the_timeout_still_run_once(
        make_settings, reference_api, redis_client):
    import requests
    from dramatiq import Worker

    from scheduler_service.services import build_services

    # Given an API that commits the next 5 executeEffect calls but answers only after the
    # client's request timeout
    services = build_services(make_settings(**reference_api.client_env(
        API_REQUEST_TIMEOUT_MS=500)))
    worlds = [settlement_with_effect(reference_api) for _ in range(5)]
    effects = [effect for _, _, effect in worlds]
    requests.post(f"{reference_api.base_url}/test-hooks/stall",
                  json={"field": "executeEffect", "ms": 1500, "times": 5},
                  headers={"x-api-key": reference_api.key}, timeout=5).raise_for_status()
    worker = Worker(services.broker, worker_threads=5, worker_timeout=50)
    worker.start()
    try:
        # When 5 DEFERRED_EFFECT jobs run
        jobs = [send_job(services, "DEFERRED_EFFECT", world["campaign"]["id"],
                         {"effectId": effect["id"]})[0] for world, _, effect in worlds]
        done = [wait_state(services, job["id"], "succeeded", timeout=30) for job in jobs]
    finally:
        worker.stop()
        services.close()
    # Then each effect was executed exactly once, by its job, on the first attempt
    for job, finished, effect in zip(jobs, done, effects):
        runs = executions(reference_api, effect["id"])
        assert [r["context"]["schedulerJobId"] for r in runs] == [job["id"]]
        assert finished["attempts"] == 1
        assert finished["result"]["outcome"] == "executed"
        assert finished["result"]["executionId"] == runs[0]["id"]


def test_an_effect_of_another_campaign_fails_permanently_naming_both(services, worker,
                                                                     reference_api):
    # Given an effect on a settlement of campaign A, and a job of campaign B naming it
    world, settlement, effect = settlement_with_effect(reference_api)
    other = reference_api.make_campaign()["id"]
    job, _ = send_job(services, "DEFERRED_EFFECT", other, {"effectId": effect["id"]})
    # Then it fails at once without executing anything
    dead = wait_state(services, job["id"], "dead")
    assert dead["attempts"] == 1
    assert world["campaign"]["id"] in dead["lastError"] and other in dead["lastError"]
    assert executions(reference_api, effect["id"]) == []
