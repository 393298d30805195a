"""Alerts to ALERT_WEBHOOK_URL, received by a real HTTP server in the test, each raised for
real: a job dead-lettered, the API breaker opening on a dead port, a sweep failing twice,
a subscriber cut off from Redis, cron leadership changing hands between two processes; and
a webhook that hangs or refuses never slows the jobs down."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime

import pytest

from helpers import AlertReceiver, running_worker, stop_process, wait_for
from scheduler_service.alerts import Alerter, get_alerter
from scheduler_service.cron.process import CronProcess
from scheduler_service.cron.status import schedule_store
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import TERMINAL
from scheduler_service.metrics import ALERTS, family_key
from scheduler_service.recorder import get_recorder
from scheduler_service.services import build_services
from scheduler_service.subscriber import Subscriber


@pytest.fixture
def receiver():
    server = AlertReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def alerting(make_services, receiver):
    """``make(**env)``: services whose alerts go to the receiver; closed afterwards."""
    return lambda **env: make_services(ALERT_WEBHOOK_URL=receiver.url, **env)


def counted(services):
    raw = services.redis.hgetall(family_key(f"{services.settings.redis_namespace}:", ALERTS))
    return {k.decode(): int(v) for k, v in raw.items()}


def finished(services, ids):
    return all((services.jobs.get(i) or {}).get("state") in TERMINAL for i in ids)


# -- the alerter itself ------------------------------------------------------------------------

def test_an_alert_is_one_json_post_with_severity_title_details_and_time(receiver):
    alerter = Alerter(receiver.url, 0)
    assert alerter.send("breaker_open", "api", "critical", "API circuit breaker opened",
                        {"consecutiveFailures": 5})
    (body,) = wait_for(lambda: receiver.bodies, message="the alert")
    assert set(body) == {"severity", "title", "details", "time"}
    assert body["severity"] == "critical" and body["title"] == "API circuit breaker opened"
    assert body["details"]["kind"] == "breaker_open" and body["details"]["subject"] == "api"
    assert body["details"]["consecutiveFailures"] == 5
    assert datetime.fromisoformat(body["time"].replace("Z", "+00:00")).tzinfo is not None


def test_an_unknown_severity_is_refused_naming_it(receiver):
    with pytest.raises(ValueError, match="severity must be one of info, warning, critical"):
        Alerter(receiver.url, 0).send("k", "s", "fatal", "t")


def test_without_a_webhook_nothing_is_queued():
    assert Alerter(None, 0).send("k", "s", "info", "t") is False


def test_repeats_are_suppressed_for_the_cooldown_in_a_process_and_across_processes(
        receiver, redis_client, settings):
    prefix = f"{settings.redis_namespace}:"
    results = []
    # Given two processes' alerters sharing the cooldown through Redis
    first = Alerter(receiver.url, 60, redis=redis_client, prefix=prefix,
                    count=lambda kind, result: results.append((kind, result)))
    second = Alerter(receiver.url, 60, redis=redis_client, prefix=prefix,
                     count=lambda kind, result: results.append((kind, result)))
    # When the same alert is raised twice here, once there, and another subject there
    assert first.send("job_dead", "SAMPLE_REFUSE", "warning", "one")
    first.drain()
    assert not first.send("job_dead", "SAMPLE_REFUSE", "warning", "again")
    assert second.send("job_dead", "SAMPLE_REFUSE", "warning", "there")
    assert second.send("job_dead", "SAMPLE_FAIL", "warning", "other type")
    second.drain()
    # Then the webhook got the first and the other subject only
    assert [b["title"] for b in receiver.bodies] == ["one", "other type"]
    assert results.count(("job_dead", "suppressed")) == 2
    assert results.count(("job_dead", "sent")) == 2
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


def test_a_repeat_after_the_cooldown_is_sent_again(receiver):
    now = [1000.0]
    alerter = Alerter(receiver.url, 300, clock=lambda: now[0])
    assert alerter.send("k", "s", "info", "first")
    now[0] += 299
    assert not alerter.send("k", "s", "info", "too soon")
    now[0] += 2
    assert alerter.send("k", "s", "info", "after the cooldown")
    wait_for(lambda: len(receiver.bodies) == 2, message="two alerts")


def test_a_full_queue_drops_and_counts_rather_than_wait():
    hanging = AlertReceiver("hang").start()
    results = []
    try:
        alerter = Alerter(hanging.url, 0, queue_size=1,
                          count=lambda kind, result: results.append(result))
        # One alert is held by the hanging webhook, one waits; the rest find the queue full
        sent = [alerter.send("k", f"s{i}", "info", "t") for i in range(6)]
        assert sent.count(False) >= 4
        assert results.count("dropped") == sent.count(False)
    finally:
        hanging.stop()


def test_a_refusing_webhook_is_counted_as_failed():
    results = []
    alerter = Alerter(f"http://127.0.0.1:{free_port()}/alerts", 0,
                      count=lambda kind, result: results.append(result))
    assert alerter.send("k", "s", "info", "t")
    alerter.drain()
    assert results == ["failed"]


# -- each alert, raised for real -----------------------------------------------------------------

def test_a_dead_lettered_job_alerts_once_per_job_type_within_the_cooldown(alerting, receiver):
    services = alerting()
    with running_worker(services, threads=2):
        first, _ = send_job(services, "SAMPLE_REFUSE", "c1")
        (body,) = wait_for(lambda: receiver.of_kind("job_dead"), message="the dead-letter alert")
        second, _ = send_job(services, "SAMPLE_REFUSE", "c1")
        wait_for(lambda: finished(services, [second["id"]]), message="the second job to die")
    get_alerter(services).drain()
    assert body["severity"] == "warning"
    assert body["details"]["jobId"] == first["id"] and body["details"]["jobType"] == "SAMPLE_REFUSE"
    assert "can never succeed" in body["details"]["error"]
    assert first["id"] in body["title"]
    # The second death of the same type within ALERT_COOLDOWN_S is suppressed and counted
    assert len(receiver.of_kind("job_dead")) == 1
    get_recorder(services).flush()
    assert counted(services) == {"job_dead|sent": 1, "job_dead|suppressed": 1}


def test_the_breaker_opening_on_a_dead_api_alerts(alerting, receiver):
    services = alerting(API_URL=f"http://127.0.0.1:{free_port()}/graphql",
                        API_CIRCUIT_BREAKER_THRESHOLD=1, API_MAX_RETRIES=0)
    with running_worker(services, threads=1):
        send_job(services, "DEFERRED_EFFECT", "c1", {"effectId": "e1"})
        (body,) = wait_for(lambda: receiver.of_kind("breaker_open"), timeout=20,
                           message="the breaker alert")
    assert body["severity"] == "critical" and body["details"]["subject"] == "api"
    assert body["details"]["consecutiveFailures"] == 1
    assert "Transient" in body["details"]["lastError"]


def test_a_sweep_failing_twice_running_alerts(alerting, receiver):
    # sample-broken's payload is invalid: each of its ticks (every second here) fails
    services = alerting(CRON_SAMPLE_BROKEN="* * * * * *", CRON_LEADER_TTL_S=1)
    process = CronProcess(services).start()
    try:
        (body,) = wait_for(lambda: receiver.of_kind("sweep_failing"), timeout=20,
                           message="the failing-sweep alert")
    finally:
        process.stop()
    assert body["severity"] == "critical" and body["details"]["sweep"] == "sample-broken"
    assert body["details"]["consecutiveFailures"] == 2


def test_sweep_failures_alert_from_the_second_in_a_row_and_on_each_new_one(alerting, receiver):
    services = alerting(ALERT_COOLDOWN_S=0)
    process = CronProcess(services)
    assert process.check_sweeps({"a": 1, "b": 0}) == []
    assert process.check_sweeps({"a": 2}) == ["a"]
    assert process.check_sweeps({"a": 2}) == []  # nothing new: no repeat
    assert process.check_sweeps({"a": 3}) == ["a"]
    assert process.check_sweeps({"a": 0}) == []
    assert process.check_sweeps({"a": 2}) == ["a"]  # failing again after a success
    process.alerts.drain()
    assert [b["details"]["consecutiveFailures"] for b in receiver.of_kind("sweep_failing")] == [2, 3, 2]


def test_leadership_changing_hands_between_two_cron_processes_alerts(child_env, services,
                                                                      receiver, tmp_path):
    env = child_env("sample", REDIS_NAMESPACE=services.settings.redis_namespace,
                    ALERT_WEBHOOK_URL=receiver.url, CRON_LEADER_TTL_S=3)
    procs = []
    for i in range(2):
        with open(tmp_path / f"cron-{i}.log", "wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "scheduler_service", "cron"],
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
    store = schedule_store(services)
    try:
        leader = wait_for(lambda: store.leader()[0], timeout=30, message="a cron leader")
        (by_pid,) = [p for p in procs if p.pid == int(leader.split(":")[-2])]
        # When the leader stops
        assert stop_process(by_pid) == 0
        # Then the other takes over and says so
        (body,) = wait_for(lambda: receiver.of_kind("cron_leader_changed"), timeout=30,
                           message="the leader-change alert")
    finally:
        for proc in procs:
            stop_process(proc)
    assert body["severity"] == "info"
    assert body["details"]["previousLeader"] == leader
    (other,) = [p for p in procs if p is not by_pid]
    assert int(body["details"]["leader"].split(":")[-2]) == other.pid


def test_a_subscriber_cut_off_from_redis_too_long_alerts(alerting, receiver):
    # Given a subscriber whose Redis is a dead port, alerting after 1 s down
    services = alerting(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", ALERT_SUBSCRIBER_DOWN_S=1,
                        SUBSCRIBER_RECONNECT_MAX_MS=500)
    subscriber = Subscriber(services)
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    try:
        (body,) = wait_for(lambda: receiver.of_kind("subscriber_down"), timeout=20,
                           message="the subscriber alert")
    finally:
        stop.set()
        thread.join(15)
    assert body["severity"] == "warning"
    assert body["details"]["subject"] == subscriber.status.instance_id
    assert body["details"]["downSeconds"] >= 1 and "Error" in body["details"]["lastError"]


def test_the_subscriber_alerts_once_per_outage_after_the_threshold(alerting):
    services = alerting(ALERT_SUBSCRIBER_DOWN_S=60)
    subscriber = Subscriber(services)
    subscriber.status.set_state("disconnected", "ConnectionError: gone")
    since = subscriber.status.since
    assert not subscriber.check_down(since + 59_000)
    assert subscriber.check_down(since + 60_000)
    assert not subscriber.check_down(since + 120_000)


# -- a bad webhook and the jobs ------------------------------------------------------------------

@pytest.mark.parametrize("webhook", ["hangs", "refuses"])
def test_a_bad_webhook_never_slows_job_processing(webhook, make_settings, redis_client):
    # Given a webhook that never answers (each POST waits out the 2 s timeout), or a port
    # nobody listens on, and no cooldown
    hanging = AlertReceiver("hang").start()
    url = hanging.url if webhook == "hangs" else f"http://127.0.0.1:{free_port()}/alerts"
    services = build_services(make_settings(ALERT_WEBHOOK_URL=url, ALERT_COOLDOWN_S=0))
    try:
        with running_worker(services, threads=2):
            # When 30 jobs die (30 alerts: a minute of webhook time if sent inline) among others
            ids = [send_job(services, "SAMPLE_REFUSE", "c1")[0]["id"] for _ in range(30)]
            ids += [send_job(services, "SAMPLE_ECHO", "c1", {"text": "x"})[0]["id"]
                    for _ in range(30)]
            # Then every job is finished long before the alerts could have been sent
            wait_for(lambda: finished(services, ids), timeout=20, message="every job to finish")
        states = [services.jobs.get(i)["state"] for i in ids]
        assert states == ["dead"] * 30 + ["succeeded"] * 30
        if webhook == "hangs":
            wait_for(lambda: hanging.bodies, message="the webhook to be tried")
        else:
            get_alerter(services).drain()
            get_recorder(services).flush()
            assert counted(services).get("job_dead|failed", 0) >= 1
    finally:
        hanging.stop()
        services.close()
        for key in redis_client.scan_iter(f"{services.settings.redis_namespace}:*", count=1000):
            redis_client.delete(key)
