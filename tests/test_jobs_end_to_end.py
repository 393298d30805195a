"""Jobs through a real Dramatiq worker on a real Redis: success, retries, dead letters."""

import pytest

from scheduler_service.dispatch import send_job
from scheduler_service.errors import InvalidPayload, UnknownJobType
from scheduler_service.wire import dead_messages, queue_stats
from helpers import wait_for


def dead_letters(services, queue):
    return dead_messages(services.redis, services.settings.redis_namespace, queue)


def test_ping_job_runs_on_a_worker(services, worker, caplog):
    caplog.set_level("INFO", logger="scheduler_service.runner")
    job, _ = send_job(services, "PING", "SYSTEM")
    services.broker.join("jobs.normal", timeout=10_000)
    worker.join()
    done = [r for r in caplog.records if r.getMessage() == "job succeeded"]
    assert [(r.job_id, r.job_type, r.campaign_id, r.attempt) for r in done] == [
        (job["id"], "PING", "SYSTEM", 1)]
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    assert stats["totals"] == {"ready": 0, "delayed": 0, "dead": 0}
    assert job["priority"] == 5 and job["type"] == "PING"


def test_failing_job_is_retried_with_backoff_then_dead_lettered(services, worker):
    # Given SAMPLE_FAIL (max_retries=2) and a 100 ms initial backoff
    job, _ = send_job(services, "SAMPLE_FAIL", "c1", {}, priority=5)
    # When the worker has given up on it
    dead = wait_for(lambda: dead_letters(services, "jobs.normal"), timeout=20,
                    message="the dead letter")
    # Then one copy is dead-lettered with its last error and three attempts
    assert len(dead) == 1
    options = dead[0]["options"]
    assert dead[0]["args"][0]["id"] == job["id"]
    assert options["attempts"] == 3
    assert options["last_error"] == "RuntimeError: sample failure on attempt 3"
    assert "RuntimeError" in options["traceback"]
    # and the record counts the same three attempts, two of them retried after a backoff
    record = services.jobs.get(job["id"])
    assert (record["state"], record["attempts"]) == ("dead", 3)
    steps = [(h["from"], h["to"]) for h in services.jobs.history(job["id"])]
    assert steps == [(None, "queued"), ("queued", "running"), ("running", "failed"),
                     ("failed", "queued"), ("queued", "running"), ("running", "failed"),
                     ("failed", "queued"), ("queued", "running"), ("running", "dead")]


def test_flaky_job_succeeds_on_third_attempt(services, worker, caplog):
    caplog.set_level("INFO", logger="scheduler_service.runner")
    job, _ = send_job(services, "SAMPLE_FLAKY", "c1", {"failures": 2})

    def succeeded():
        return [r for r in caplog.records
                if r.getMessage() == "job succeeded" and getattr(r, "job_id", None) == job["id"]]

    record = wait_for(succeeded, timeout=15, message="the third attempt")[0]
    assert record.attempt == 3
    failures = [r for r in caplog.records if r.getMessage().startswith("job attempt failed")]
    assert [r.attempt for r in failures] == [1, 2]
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    assert stats["totals"]["dead"] == 0


def test_permanent_error_is_not_retried(services, worker):
    send_job(services, "SAMPLE_REFUSE", "c1", {})
    dead = wait_for(lambda: dead_letters(services, "jobs.normal"), timeout=10,
                    message="the dead letter")
    assert dead[0]["options"]["attempts"] == 1
    assert dead[0]["options"]["last_error"] == "PermanentJobError: this job can never succeed"


def test_bad_payload_and_unknown_type_enqueue_nothing(services):
    with pytest.raises(InvalidPayload) as e:
        send_job(services, "SAMPLE_ECHO", "c1", {"text": ""})
    assert e.value.details[0]["field"] == "payload.text"
    with pytest.raises(InvalidPayload):
        send_job(services, "SAMPLE_ECHO", "c1", {"text": "x", "extra": 1})
    with pytest.raises(UnknownJobType, match="NOPE"):
        send_job(services, "NOPE", "c1", {})
    with pytest.raises(ValueError, match="priority"):
        send_job(services, "PING", "c1", {}, priority=11)
    stats = queue_stats(services.redis, services.settings.redis_namespace, services.queue_names)
    assert stats["totals"] == {"ready": 0, "delayed": 0, "dead": 0}
