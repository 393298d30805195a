"""Per-job priority: a priority-10 job overtakes a backlog of priority-1 jobs."""

from dramatiq import Worker

from scheduler_service.dispatch import send_job
from helpers import wait_for


def test_priority_10_job_overtakes_a_backlog_of_1000_priority_1_jobs(services, caplog):
    caplog.set_level("INFO", logger="scheduler_service.runner")
    # Given 1,000 priority-1 jobs already queued, then one priority-10 job
    backlog = [send_job(services, "PING", "c1", {}, priority=1)[0]["id"] for _ in range(1000)]
    urgent, _ = send_job(services, "PING", "c1", {}, priority=10)
    # When a worker with a single thread works through them
    worker = Worker(services.broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        def started():
            ids = [r.job_id for r in caplog.records if r.getMessage() == "job started"]
            return ids if urgent["id"] in ids or len(ids) > 100 else None

        order = wait_for(started, timeout=60, message="the urgent job to start")
    finally:
        worker.stop()
    # Then the urgent job started within the first 20
    position = order.index(urgent["id"])
    assert position < 20, f"priority-10 job started {position + 1}th"
    assert set(order) - {urgent["id"]} <= set(backlog)
