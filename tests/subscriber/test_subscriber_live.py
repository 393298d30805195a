"""The subscriber on a real Redis, fed by the live reference API, with a real worker."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler_service.dispatch import send_job
from scheduler_service.hookspecs import hookimpl
from scheduler_service.jobstore import parse_iso_ms
from scheduler_service.jobtypes import Reaction
from scheduler_service.plugins import build_registry, make_plugin_manager
from scheduler_service.services import build_services
from scheduler_service.subscriber.status import read_instances, read_stats
from scheduler_service.web import create_app
from helpers import wait_for

NOW = datetime(1650, 3, 1, 12, 0, tzinfo=timezone.utc)


def ms(dt):
    return int(dt.timestamp() * 1000)


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


def completed(api, event_id):
    return api.data("query($id: ID!) { event(id: $id) { isCompleted } }",
                    {"id": event_id})["event"]["isCompleted"]


def expiration_jobs(services, campaign_id):
    jobs, _ = services.jobs.list(job_type="EVENT_EXPIRATION", campaign_id=campaign_id, limit=100)
    return jobs


def stats(services):
    return read_stats(services.redis, f"{services.settings.redis_namespace}:")


def test_world_time_advanced_expires_the_overdue_events_of_that_campaign_only(
        services, worker, subscribers, reference_api):
    # Given two campaigns whose events fall due one hour after their clocks
    subscribers.start(services)
    camp, other = (reference_api.make_campaign(world_time=NOW)["id"] for _ in range(2))
    mine = [reference_api.make_event(camp, scheduled_at=NOW + timedelta(hours=1))["id"]
            for _ in range(3)]
    theirs = reference_api.make_event(other, scheduled_at=NOW + timedelta(hours=1))["id"]
    # and a job waiting on the first campaign's world clock
    timer, _ = send_job(services, "PING", camp, run_at_world_ms=ms(NOW + timedelta(hours=2)))
    assert timer["state"] == "scheduled"
    # When the first campaign's world time advances past them, through the reference API
    reference_api.advance(camp, NOW + timedelta(hours=3))
    # Then its events are expired by a priority-8 expiration job, and its timer fires
    wait_for(lambda: all(completed(reference_api, e) for e in mine), timeout=30,
             message="the campaign's overdue events to be expired")
    (job,) = expiration_jobs(services, camp)
    assert job["priority"] == 8
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", timeout=15)
    assert services.jobs.get(job["id"])["result"]["expired"] == 3
    wait_for(lambda: services.jobs.get(timer["id"])["state"] == "succeeded", timeout=15,
             message="the world timer's job to run")
    # and nothing happened to the other campaign
    assert not completed(reference_api, theirs)
    assert expiration_jobs(services, other) == []
    assert stats(services)["received:worldTimeAdvanced"] == 1


def test_a_burst_of_50_messages_for_one_campaign_makes_one_expiration_job(
        make_settings, reference_api, subscribers, redis_client):
    # Given two subscriber replicas and a generous cooldown window
    services = build_services(make_settings(**reference_api.client_env(
        SUBSCRIBER_COOLDOWN_MS=120_000)))
    try:
        subscribers.start(services, "replica-a")
        subscribers.start(services, "replica-b")
        camp = reference_api.make_campaign(world_time=NOW)["id"]
        late_timer, _ = send_job(services, "PING", camp,
                                 run_at_world_ms=ms(NOW + timedelta(minutes=45)))
        # When its world time advances 50 times in a row
        for minute in range(1, 51):
            reference_api.advance(camp, NOW + timedelta(minutes=minute))
        # Then both replicas saw all 50 messages ...
        # (the first message of the window is the only one not counted as deduplicated)
        wait_for(lambda: stats(services).get("deduplicated") == 99, timeout=30,
                 message="both replicas to handle 50 messages")
        assert stats(services)["received:worldTimeAdvanced"] == 100
        # ... and between them enqueued exactly one expiration job, at priority 8
        jobs = expiration_jobs(services, camp)
        assert len(jobs) == 1 and jobs[0]["priority"] == 8
        # while the advances inside the window still released the world timer
        assert services.jobs.get(late_timer["id"])["state"] == "queued"
        world = services.redis.hget(f"{services.settings.redis_namespace}:worldtime", camp)
        assert int(world) == ms(NOW + timedelta(minutes=50))
    finally:
        services.close()


def test_an_advance_inside_the_cooldown_runs_the_reactions_once_more_at_its_end(
        make_settings, reference_api, subscribers, redis_client):
    from dramatiq import Worker

    services = build_services(make_settings(**reference_api.client_env(
        SUBSCRIBER_COOLDOWN_MS=8000, EVENT_EXPIRATION_GRACE_MINUTES=0)))
    worker = Worker(services.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        subscribers.start(services)
        camp = reference_api.make_campaign(world_time=NOW)["id"]
        early = reference_api.make_event(camp, scheduled_at=NOW + timedelta(hours=1))["id"]
        late = reference_api.make_event(camp, scheduled_at=NOW + timedelta(hours=3))["id"]
        # When the clock advances, its expiration runs, and the clock advances again within
        # the same cooldown window (8 s)
        reference_api.advance(camp, NOW + timedelta(hours=2))
        wait_for(lambda: completed(reference_api, early), timeout=20, message="the first expiry")
        assert not completed(reference_api, late)
        reference_api.advance(camp, NOW + timedelta(hours=4))
        # Then the newer time is not dropped: its reactions run at the window's end
        wait_for(lambda: completed(reference_api, late), timeout=30,
                 message="the trailing expiry of the newer time")
        assert len(expiration_jobs(services, camp)) == 2
        counted = stats(services)
        # every deduplicated window ended with one trailing run (none if the second advance
        # came after the window on a very slow machine)
        assert counted.get("trailing", 0) == counted.get("deduplicated", 0) <= 1
    finally:
        worker.stop()
        services.close()


def metric_samples(text):
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_malformed_messages_are_counted_and_the_subscriber_carries_on(
        services, subscribers, redis_client, reference_api):
    subscribers.start(services)
    c1 = reference_api.make_campaign(world_time=datetime(2026, 3, 1, 12, tzinfo=timezone.utc))["id"]
    bad = [
        (f"campaign.{c1}.worldTimeAdvanced", "{not json"),
        (f"campaign.{c1}.worldTimeAdvanced", json.dumps({"campaignId": c1})),
        (f"campaign.{c1}.worldTimeAdvanced", json.dumps({"campaignId": c1, "newTime": "noon"})),
        (f"campaign.{c1}.worldTimeAdvanced", json.dumps({"campaignId": c1, "newTime": "noon"})),
        (f"campaign.{c1}.entityModified", json.dumps({"campaignId": "c2", "entityType": "Event",
                                                      "entityId": "e", "operation": "CREATE"})),
        (f"campaign.{c1}.entityModified", json.dumps(["not", "an", "object"])),
    ]
    for channel, data in bad:
        assert redis_client.publish(channel, data) >= 1
    # and then a good one
    redis_client.publish(f"campaign.{c1}.worldTimeAdvanced",
                         json.dumps({"campaignId": c1, "previousTime": None,
                                     "newTime": "2026-03-01T12:00:00Z"}))
    # The good message, sent last, is acted on: the subscriber survived the bad ones
    wait_for(lambda: expiration_jobs(services, c1), timeout=15,
             message="the valid message's expiration job")
    world = services.redis.hget(f"{services.settings.redis_namespace}:worldtime", c1)
    assert int(world) == parse_iso_ms("2026-03-01T12:00:00Z")
    assert len(expiration_jobs(services, c1)) == 1
    assert stats(services)["received:worldTimeAdvanced"] == 5
    assert stats(services)["received:entityModified"] == 2
    wait_for(lambda: stats(services).get("outcome:worldTimeAdvanced:handled") == 1,
             message="the good message counted as handled")
    # /metrics counts the invalid ones by event and reason
    web = create_app(services=services).test_client()
    samples = metric_samples(web.get("/metrics").get_data(as_text=True))

    def invalid(event, reason):
        return samples.get(("scheduler_subscriber_messages_invalid_total",
                            (("event", event), ("reason", reason))))

    assert invalid("worldTimeAdvanced", "bad_json") == 1
    assert invalid("worldTimeAdvanced", "missing_field") == 1
    assert invalid("worldTimeAdvanced", "bad_time") == 2
    assert invalid("entityModified", "campaign_mismatch") == 1
    assert invalid("entityModified", "not_object") == 1
    assert samples[("scheduler_subscriber_messages_received_total",
                    (("event", "worldTimeAdvanced"),))] == 5
    # and every message by event and outcome
    outcomes = {labels: v for (name, labels), v in samples.items()
                if name == "scheduler_subscriber_messages_total"}
    assert outcomes == {(("event", "worldTimeAdvanced"), ("outcome", "invalid")): 4,
                        (("event", "worldTimeAdvanced"), ("outcome", "handled")): 1,
                        (("event", "entityModified"), ("outcome", "invalid")): 2}
    assert samples[("scheduler_subscriber_connected", ())] == 1
    assert samples[("scheduler_subscriber_last_message_timestamp_seconds", ())] > 0
    # and /health shows the subscriber up with its last message
    component = web.get("/health").get_json()["components"]["subscriber"]
    assert component["status"] == "up" and "last message" in component["message"]
    assert component["details"]["connected"] == 1 and component["details"]["lastMessageAt"]


def test_a_forged_world_time_cannot_release_timers_early_or_poison_the_clock(
        services, subscribers, redis_client, reference_api):
    # Given a campaign at 1650-03-01 12:00 in the API, with timers due soon and far ahead
    subscribers.start(services)
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    soon, _ = send_job(services, "PING", camp, run_at_world_ms=ms(NOW + timedelta(days=1)))
    far, _ = send_job(services, "PING", camp, run_at_world_ms=ms(NOW + timedelta(days=300)))
    # When someone publishes that its clock jumped to the year 2999
    redis_client.publish(f"campaign.{camp}.worldTimeAdvanced", json.dumps(
        {"campaignId": camp, "previousTime": None, "newTime": "2999-01-01T00:00:00Z"}))
    wait_for(lambda: stats(services).get("clamped") == 1, timeout=15, message="the clamp")
    # Then no timer was released and the remembered clock is the API's, not the message's
    assert services.jobs.get(soon["id"])["state"] == "scheduled"
    assert services.jobs.get(far["id"])["state"] == "scheduled"
    assert services.jobs.remembered_world_time(camp) == ms(NOW)
    # and a job created afterwards for the year 2500 waits for its time
    later, _ = send_job(services, "PING", camp, run_at_world_ms=ms(datetime(2500, 1, 1, tzinfo=timezone.utc)))
    assert later["state"] == "scheduled"
    # while a real advance still releases what falls due
    reference_api.advance(camp, NOW + timedelta(days=2))
    wait_for(lambda: services.jobs.get(soon["id"])["state"] != "scheduled", timeout=15,
             message="the real advance to release the first timer")
    assert services.jobs.get(far["id"])["state"] == "scheduled"
    assert services.jobs.remembered_world_time(camp) == ms(NOW + timedelta(days=2))


def test_messages_about_unknown_campaigns_are_counted_and_leave_nothing_behind(
        services, subscribers, redis_client):
    subscribers.start(services)
    prefix = services.settings.redis_namespace
    before = set(redis_client.scan_iter(f"{prefix}:*"))
    for i in range(30):
        redis_client.publish(f"campaign.ghost-{i}.worldTimeAdvanced", json.dumps(
            {"campaignId": f"ghost-{i}", "previousTime": None, "newTime": "2026-03-01T12:00:00Z"}))
        redis_client.publish(f"campaign.ghost-{i}.entityModified", json.dumps(
            {"campaignId": f"ghost-{i}", "entityType": "Event", "entityId": "e",
             "operation": "CREATE"}))
    wait_for(lambda: stats(services).get("dropped:entityModified:unknown_campaign") == 30,
             timeout=20, message="60 dropped messages")
    assert stats(services)["dropped:worldTimeAdvanced:unknown_campaign"] == 30
    # Nothing was enqueued or remembered for them
    assert services.jobs.list(limit=100)[0] == []
    assert not services.redis.hgetall(f"{prefix}:worldtime")
    after = {k for k in redis_client.scan_iter(f"{prefix}:*")} - before
    assert {k.decode().split(":", 1)[1] for k in after} <= {"subscriber:stats", "subscriber:instances"}
    web = create_app(services=services).test_client()
    samples = metric_samples(web.get("/metrics").get_data(as_text=True))
    assert samples[("scheduler_subscriber_messages_dropped_total",
                    (("event", "worldTimeAdvanced"), ("reason", "unknown_campaign")))] == 30


class EntityPlugin:
    """A plugin whose reactions enqueue a job per modified entity, and one that breaks."""

    @hookimpl
    def register_reactions(self):
        def on_entity(message, ctx):
            ctx.send_job("PING", {}, idempotency_key=f"entity:{message['entityId']}:"
                                                     f"{message['operation']}")

        def broken(message, ctx):
            raise RuntimeError("this reaction always fails")

        return [Reaction("broken", "entityModified", broken),
                Reaction("ping-per-entity", "entityModified", on_entity)]


def test_entity_modified_goes_to_the_plugins_reactions(settings, reference_api, subscribers):
    pm = make_plugin_manager()
    pm.register(EntityPlugin(), name="entity-test")
    services = build_services(settings, build_registry(pm))
    try:
        subscribers.start(services)
        world = reference_api.make_world(world_time=NOW, settlements=2)
        ids = {s["id"] for s in world["settlements"]}
        # Each created settlement reached the reaction, despite the broken one before it
        def pinged():
            jobs, _ = services.jobs.list(job_type="PING", limit=20)
            keys = {j["idempotencyKey"] for j in jobs}
            return {f"entity:{i}:CREATE" for i in ids} <= keys
        wait_for(pinged, timeout=15, message="a job per created settlement")
        assert stats(services)["reaction_errors:broken"] >= 2
    finally:
        services.close()


def test_a_cleanly_stopped_subscriber_removes_its_status(services, subscribers):
    sub = subscribers.start(services, "leaving")
    prefix = f"{services.settings.redis_namespace}:"
    assert read_instances(services.redis, prefix)["leaving"]["state"] == "connected"
    subscribers.stop()
    subscribers.started.clear()
    assert "leaving" not in read_instances(services.redis, prefix)
    assert not sub.connected.is_set()


def test_reaction_context_sends_and_cancels_jobs_for_its_campaign(services):
    from scheduler_service.reactions import ReactionContext

    ctx = ReactionContext("entityModified", "c7", services=services)
    job = ctx.send_job("PING", {}, run_at_ms=4_102_444_800_000, idempotency_key="ctx-test")
    assert job["campaignId"] == "c7" and job["state"] == "scheduled"
    assert ctx.send_job("PING", {}, idempotency_key="ctx-test")["id"] == job["id"]
    assert ctx.cancel_job(job["id"]) is True
    assert ctx.get_job(job["id"])["state"] == "cancelled"
    assert ctx.cancel_job(job["id"]) is False
    assert ctx.settings is services.settings and ctx.api is ctx.api
