"""`scheduler-service subscriber` as a real process: Redis restarted under it, clean stops."""

import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from dramatiq import Worker

from scheduler_service.embedded_redis import EmbeddedRedis, free_port
from scheduler_service.services import build_services
from scheduler_service.subscriber.status import read_instances, read_stats
from helpers import stop_process, wait_for
from reference_fixtures import TEST_KEY

pytestmark = pytest.mark.slow

NOW = datetime(1600, 1, 1, tzinfo=timezone.utc)


def answering(fn):
    """``fn()``, or None while Redis is unreachable (for polling across a restart)."""
    def call():
        try:
            return fn()
        except redis_lib.RedisError:
            return None
    return call


def completed(api, event_id):
    return api.data("query($id: ID!) { event(id: $id) { isCompleted } }",
                    {"id": event_id})["event"]["isCompleted"]


def test_redis_restarted_under_the_subscriber_reconnects_and_catches_up(
        tmp_path, child_env, make_settings, spawn_reference_api):
    # Given a Redis of our own on a fixed port, a reference API publishing to it,
    # and a subscriber process following it
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port, persist=False).start()
    api = spawn_reference_api("--seed", "none", env={"REDIS_URL": server.url})
    env = child_env(REDIS_URL=server.url, API_URL=api.url, API_SERVICE_ACCOUNT_TOKEN=TEST_KEY,
                    API_RATE_LIMIT_PER_SECOND=0, SUBSCRIBER_RECONNECT_MAX_MS=2000,
                    LOG_FORMAT="text")
    settings = make_settings(REDIS_URL=server.url, API_URL=api.url,
                             API_SERVICE_ACCOUNT_TOKEN=TEST_KEY, API_RATE_LIMIT_PER_SECOND=0)
    prefix = f"{settings.redis_namespace}:"
    log_path = tmp_path / "subscriber.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "subscriber"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    client = services = worker = None
    try:
        client = redis_lib.Redis.from_url(server.url)

        def connected():
            entries = read_instances(client, prefix)
            return any(e["state"] == "connected" for e in entries.values()) and entries

        wait_for(answering(connected), timeout=30, message="the subscriber to connect")
        camp = api.make_campaign(world_time=NOW)["id"]
        events = [api.make_event(camp, scheduled_at=NOW + timedelta(hours=1))["id"]
                  for _ in range(3)]

        # When Redis dies, and the campaign's clock passes the events while it is down
        server.kill()
        client.close()
        api.advance(camp, NOW + timedelta(hours=3))  # published into the void
        assert not any(completed(api, e) for e in events)
        server = EmbeddedRedis(tmp_path / "redis", port=port, persist=False).start()

        # Then the subscriber reconnects and says so
        client = redis_lib.Redis.from_url(server.url)
        wait_for(answering(lambda: read_stats(client, prefix).get("reconnects", 0) >= 1),
                 timeout=60, message="the subscriber to reconnect")
        wait_for(answering(connected), timeout=30, message="the subscriber to report connected")
        # and its catch-up expiration (every campaign, priority 8) expires the events
        services = build_services(settings)
        worker = Worker(services.broker, worker_threads=2, worker_timeout=50)
        worker.start()
        wait_for(lambda: all(completed(api, e) for e in events), timeout=60,
                 message="the catch-up to expire the events")
        jobs, _ = services.jobs.list(job_type="EVENT_EXPIRATION", campaign_id="SYSTEM", limit=10)
        assert len(jobs) == 1 and jobs[0]["priority"] == 8
        # and the fast path works again after the reconnect
        again = api.make_event(camp, scheduled_at=NOW + timedelta(hours=4))["id"]
        api.advance(camp, NOW + timedelta(hours=6))
        wait_for(lambda: completed(api, again), timeout=30, message="the fast path after reconnecting")

        # When it gets SIGINT, it stops cleanly and removes its status
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert read_instances(client, prefix) == {}
        text = log_path.read_text()
        assert "lost Redis" in text and "reconnected" in text
    finally:
        if worker is not None:
            worker.stop()
        if services is not None:
            services.close()
        stop_process(proc)
        log.close()
        if client is not None:
            client.close()
        server.stop()


def test_sigterm_stops_a_subscriber_that_cannot_reach_redis(child_env):
    # Given a subscriber whose Redis is not there (it keeps retrying)
    env = child_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                    SUBSCRIBER_RECONNECT_MAX_MS=30000, LOG_FORMAT="text")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler_service", "subscriber"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def retrying():
            line = proc.stdout.readline()
            return "next attempt in" in line  # the start-up wait for Redis
        wait_for(retrying, timeout=30, message="a failed connection attempt")
        # When SIGTERM arrives during the backoff, it exits at once with 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop_process(proc)
        proc.stdout.close()
