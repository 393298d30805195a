"""No record stays ``running``: the outcome write survives a Redis restart, and the periodic
repair enqueues again a job whose attempt ended without its outcome recorded."""

import threading

import pytest
from dramatiq import Worker

from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import EmbeddedRedis, free_port
from scheduler_service.hookspecs import hookimpl
from scheduler_service.jobstore import now_ms
from scheduler_service.jobtypes import JobType
from scheduler_service.plugins import build_registry, make_plugin_manager
from scheduler_service.repair import DEFAULT_GRACE_MS, repair_stuck_running, time_limit_of
from scheduler_service.services import build_services
from helpers import wait_for


class HoldPlugin:
    """``HOLD``: a job whose handler ends only when the test says so."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def register_job_types(self):
        def hold(ctx):
            self.entered.set()
            assert self.release.wait(60), "the test never released the job"
            return {"held": True}

        return [JobType("HOLD", hold, description="Waits for the test.", max_retries=0)]


def test_the_outcome_of_an_attempt_is_recorded_after_a_redis_restart(base_env, tmp_path, caplog):
    from scheduler_service.config import load_settings

    # Given a worker running a job, on a Redis of its own that keeps its data (AOF)
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True).start()
    plugin = HoldPlugin()
    pm = make_plugin_manager()
    pm.register(plugin, name="hold")
    services = build_services(load_settings({**base_env, "REDIS_URL": server.url}),
                              build_registry(pm))
    worker = Worker(services.broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        job, _ = send_job(services, "HOLD", "c1", {})
        assert plugin.entered.wait(15)
        # When Redis goes away just as the job ends, and comes back a little later
        server.stop()
        caplog.set_level("DEBUG", logger="scheduler_service.lifecycle")  # each failed try
        plugin.release.set()
        wait_for(lambda: any("Redis unavailable while recording" in r.getMessage()
                             for r in caplog.records), timeout=15, message="a failed write")
        server.start()
        # Then the record ends succeeded, not running
        done = wait_for(lambda: (j := _get(services, job["id"])) and j["state"] == "succeeded" and j,
                        timeout=30, message="the outcome to be recorded")
    finally:
        plugin.release.set()
        worker.stop(timeout=10_000)
        services.close()
        server.stop()
    assert done["result"] == {"held": True} and done["attempts"] == 1


def _get(services, job_id):
    try:
        return services.jobs.get(job_id)
    except Exception:  # Redis still coming back
        return None


@pytest.fixture
def limit_of(services):
    return time_limit_of(services)


def _running_without_message(services, rid="acknowledged-long-ago"):
    """A job left ``running`` whose message Dramatiq no longer holds."""
    job, _ = send_job(services, "PING", "c1", {}, run_at_ms=now_ms() + 3_600_000)
    assert services.jobs.transition(job["id"], ("scheduled",), "running", "attempt 1 started",
                                    rid=rid).ok
    return job


def test_a_job_left_running_without_its_message_is_enqueued_again_and_runs(
        services, worker, limit_of):
    job = _running_without_message(services)
    # Not yet: it is still within its time limit plus the grace
    limit = limit_of("PING")
    assert repair_stuck_running(services.jobs, limit_of, now_ms() + limit) == []
    assert services.jobs.get(job["id"])["state"] == "running"
    # Past them, it is enqueued again and runs
    late = now_ms() + limit + DEFAULT_GRACE_MS + 1000
    assert repair_stuck_running(services.jobs, limit_of, late) == [job["id"]]
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=10,
             message="the repaired job to run")
    details = [h["detail"] for h in services.jobs.history(job["id"])]
    assert any(d.startswith("repaired: running since") for d in details)
    assert repair_stuck_running(services.jobs, limit_of, late) == []


def test_a_running_job_whose_message_dramatiq_still_holds_is_left_alone(services, limit_of):
    # Given a job whose message is in its queue (as a dead worker's unacknowledged one is)
    job, _ = send_job(services, "PING", "c1", {})
    (queue, rid) = services.jobs.get_internal(job["id"], "queue", "rid")
    assert services.jobs.message_pending(queue, rid)
    services.jobs.transition(job["id"], ("queued",), "running", "attempt 1 started", rid=rid)
    # Then the repair leaves it to Dramatiq's redelivery
    late = now_ms() + 10 * limit_of("PING") + DEFAULT_GRACE_MS
    assert repair_stuck_running(services.jobs, limit_of, late) == []
    assert services.jobs.get(job["id"])["state"] == "running"
