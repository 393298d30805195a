"""EVENT_EXPIRATION against the live reference API, through a real worker."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler_service import event_expiration
from scheduler_service.api import get_api_client
from scheduler_service.api.client import ApiClient
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.event_expiration import expire_overdue_events, fan_out
from scheduler_service.jobtypes import EmptyPayload, JobContext
from helpers import running_worker, wait_for
from reference_fixtures import TEST_KEY, iso

NOW = datetime(1700, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def settings(make_settings, reference_api):
    return make_settings(**reference_api.client_env())


def make_events(api, campaign_id, count, scheduled_at) -> list[str]:
    return api.make_events(campaign_id, count, scheduled_at)


def completed(api, event_id) -> bool:
    return api.data("query($id: ID!) { event(id: $id) { isCompleted } }",
                    {"id": event_id})["event"]["isCompleted"]


def overdue_count(api, campaign_id, grace_ms=0) -> int:
    total, after = 0, None
    while True:
        page = api.data(
            "query($c: ID!, $g: Int, $a: String) { getOverdueEvents(campaignId: $c, "
            "gracePeriodMs: $g, first: 500, after: $a) { nodes { id } pageInfo "
            "{ hasNextPage endCursor } } }", {"c": campaign_id, "g": grace_ms, "a": after}
        )["getOverdueEvents"]
        total += len(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return total
        after = page["pageInfo"]["endCursor"]


def wait_state(services, job_id, state, timeout=30):
    return wait_for(lambda: (j := services.jobs.get(job_id)) and j["state"] == state and j,
                    timeout=timeout, message=f"job {job_id} to be {state}")


def test_the_sweep_releases_world_timers_whose_message_was_lost(services, worker, reference_api):
    # Given a world-clock job due at NOW + 1 day, and an advance whose message nobody heard
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    timer, _ = send_job(services, "PING", camp,
                        run_at_world_ms=int((NOW + timedelta(days=1)).timestamp() * 1000))
    reference_api.advance(camp, NOW + timedelta(days=2))
    assert services.jobs.get(timer["id"])["state"] == "scheduled"
    # When the campaign's expiration job runs (the periodic sweep fans out to it)
    job, _ = send_job(services, "EVENT_EXPIRATION", camp, {})
    done = wait_state(services, job["id"], "succeeded")
    # Then it read the API's clock and released the timer
    assert done["result"]["timersReleased"] == 1
    wait_state(services, timer["id"], "succeeded")
    assert services.jobs.remembered_world_time(camp) == int((NOW + timedelta(days=2)).timestamp() * 1000)


def test_a_campaign_the_api_does_not_know_is_skipped_not_dead_lettered(services, worker):
    job, _ = send_job(services, "EVENT_EXPIRATION", "no-such-campaign", {})
    done = wait_state(services, job["id"], "succeeded")
    assert done["result"] == {"outcome": "skipped",
                              "reason": "campaign no-such-campaign does not exist"}
    assert done["attempts"] == 1


def test_expires_the_overdue_events_of_its_campaign_and_nothing_else(services, worker,
                                                                    reference_api):
    # Given a campaign whose clock has passed some of its events, and another campaign
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    overdue = [reference_api.make_event(camp, scheduled_at=NOW - timedelta(hours=h))["id"]
               for h in (1, 2, 30)]
    within_grace = reference_api.make_event(camp, scheduled_at=NOW - timedelta(minutes=3))["id"]
    future = reference_api.make_event(camp, scheduled_at=NOW + timedelta(hours=1))["id"]
    unscheduled = reference_api.make_event(camp, scheduled_at=None)["id"]
    other = reference_api.make_campaign(world_time=NOW)["id"]
    others = [reference_api.make_event(other, scheduled_at=NOW - timedelta(days=1))["id"]]
    # When an expiration job runs for the first campaign (default grace: 5 minutes)
    job, _ = send_job(services, "EVENT_EXPIRATION", camp, {})
    done = wait_state(services, job["id"], "succeeded")
    # Then exactly its events past the grace period are completed
    assert done["result"] == {"expired": 3, "skipped": 0, "failed": 0, "failedIds": [],
                              "timersReleased": 0}
    assert all(completed(reference_api, e) for e in overdue)
    assert not any(completed(reference_api, e) for e in (within_grace, future, unscheduled))
    assert not completed(reference_api, others[0])
    # and the completion time is the campaign's world time
    occurred = reference_api.data("query($id: ID!) { event(id: $id) { occurredAt } }",
                                  {"id": overdue[0]})["event"]["occurredAt"]
    assert occurred == iso(NOW)
    # When it runs again, there is nothing left to do
    again, _ = send_job(services, "EVENT_EXPIRATION", camp, {})
    assert wait_state(services, again["id"], "succeeded")["result"]["expired"] == 0


def test_grace_period_zero_expires_everything_past_the_clock(make_settings, reference_api,
                                                             redis_client):
    from dramatiq import Worker

    from scheduler_service.services import build_services

    services = build_services(make_settings(**reference_api.client_env(
        EVENT_EXPIRATION_GRACE_MINUTES=0)))
    worker = Worker(services.broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        camp = reference_api.make_campaign(world_time=NOW)["id"]
        just_past = reference_api.make_event(camp, scheduled_at=NOW - timedelta(seconds=1))["id"]
        job, _ = send_job(services, "EVENT_EXPIRATION", camp, {})
        assert wait_state(services, job["id"], "succeeded")["result"]["expired"] == 1
        assert completed(reference_api, just_past)
    finally:
        worker.stop()
        services.close()


def test_pages_through_more_than_two_pages_with_bounded_concurrency(services, worker,
                                                                   reference_api):
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    make_events(reference_api, camp, 1_234, NOW - timedelta(days=2))
    assert overdue_count(reference_api, camp) == 1_234
    job, _ = send_job(services, "EVENT_EXPIRATION", camp, {})
    done = wait_state(services, job["id"], "succeeded", timeout=120)
    assert done["result"]["expired"] == 1_234 and done["result"]["failed"] == 0
    assert overdue_count(reference_api, camp) == 0


class ListedThenRaced:
    """The real client, whose listing is overtaken by another writer before the calls.

    It reads the first page for real, then expires ``raced`` ids through the reference API
    directly, then hands out the listing it read: the job then meets real ``CONFLICT``s.
    """

    def __init__(self, client, reference_api, raced):
        self.client, self.reference_api, self.raced = client, reference_api, raced

    def iter_overdue_events(self, campaign_id, grace_period_ms, page_size):
        listed = list(self.client.iter_overdue_events(campaign_id, grace_period_ms, page_size))
        for event_id in self.raced:
            self.reference_api.data("mutation($id: ID!) { expireEvent(eventId: $id) { id } }",
                                    {"id": event_id})
        return iter(listed)

    def expire_event(self, event_id):
        return self.client.expire_event(event_id)


def test_an_event_completed_meanwhile_counts_as_skipped(services, reference_api):
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    ids = make_events(reference_api, camp, 10, NOW - timedelta(days=1))
    api = ListedThenRaced(get_api_client(services), reference_api, ids[:4])
    tally = expire_overdue_events(api, camp, grace_period_ms=0, concurrency=3)
    assert tally.as_result() == {"expired": 6, "skipped": 4, "failed": 0, "failedIds": []}
    assert all(completed(reference_api, e) for e in ids)


class SomeCallsRefused:
    """The real client, except that ``expireEvent`` of chosen ids goes through a second real
    client whose requests the reference API answers with an error (its test hook)."""

    def __init__(self, client, refusing, refused):
        self.client, self.refusing, self.refused = client, refusing, set(refused)

    def iter_overdue_events(self, *args, **kwargs):
        return self.client.iter_overdue_events(*args, **kwargs)

    def expire_event(self, event_id):
        target = self.refusing if event_id in self.refused else self.client
        return target.expire_event(event_id)


@pytest.mark.parametrize("code", ["FORBIDDEN", "INTERNAL"])
def test_failed_events_are_recorded_and_the_others_expired(services, reference_api, code,
                                                           monkeypatch):
    monkeypatch.setattr(event_expiration, "MAX_FAILED_IDS", 3)
    camp = reference_api.make_campaign(world_time=NOW)["id"]
    ids = make_events(reference_api, camp, 12, NOW - timedelta(days=1))
    # (its breaker kept closed: a failure that opens it makes the job wait for the breaker)
    refusing = ApiClient.from_settings(services.settings.replace(api_max_retries=0,
                                                                 api_breaker_threshold=100),
                                       headers={"x-test-error-code": code})
    try:
        api = SomeCallsRefused(get_api_client(services), refusing, ids[:5])
        tally = expire_overdue_events(api, camp, grace_period_ms=0, concurrency=4)
    finally:
        refusing.close()
    result = tally.as_result()
    # Every failure counts; the list of ids is capped (here at 3) and holds refused ids only
    assert (result["expired"], result["skipped"], result["failed"]) == (7, 0, 5)
    assert len(result["failedIds"]) == 3 and set(result["failedIds"]) <= set(ids[:5])
    assert not any(completed(reference_api, e) for e in ids[:5])
    assert all(completed(reference_api, e) for e in ids[5:])


def test_a_transient_failure_of_the_listing_retries_the_job(make_settings, redis_client):
    from scheduler_service.services import build_services

    closed = f"http://127.0.0.1:{free_port()}/graphql"
    services = build_services(make_settings(
        API_URL=closed, API_MAX_RETRIES=0, API_CIRCUIT_BREAKER_THRESHOLD=100,
        QUEUE_MAX_RETRIES=1))
    try:
        with running_worker(services):  # with the pump: retries wait on wall timers
            job, _ = send_job(services, "EVENT_EXPIRATION", "some-campaign", {})
            dead = wait_state(services, job["id"], "dead")
    finally:
        services.close()
    assert dead["attempts"] == 2
    details = [h["detail"] for h in services.jobs.history(job["id"])]
    assert any(d.startswith("will retry in") and "Transient" in d for d in details)


def test_system_enqueues_one_job_per_campaign_with_a_clock_once(make_settings, spawn_reference_api,
                                                               redis_client):
    from dramatiq import Worker

    from scheduler_service.services import build_services

    # Given a reference API of its own with three campaigns with a clock and one without
    api = spawn_reference_api("--seed", "none")
    camps = [api.make_campaign(world_time=NOW)["id"] for _ in range(3)]
    api.make_campaign(world_time=None)
    events = {c: make_events(api, c, 5, NOW - timedelta(days=1)) for c in camps}
    services = build_services(make_settings(API_URL=api.url, API_SERVICE_ACCOUNT_TOKEN=TEST_KEY,
                                            API_RATE_LIMIT_PER_SECOND=0))
    worker = Worker(services.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        # When a SYSTEM job runs at priority 8
        parent, _ = send_job(services, "EVENT_EXPIRATION", "SYSTEM", {}, priority=8)
        result = wait_state(services, parent["id"], "succeeded")["result"]
        assert result == {"campaigns": 4, "enqueued": 3, "alreadyEnqueued": 0,
                          "withoutWorldClock": 1}
        # Then one child per campaign ran, at the parent's priority, and expired its events
        children = wait_for(lambda: [
            j for j in services.jobs.list(job_type="EVENT_EXPIRATION", state="succeeded",
                                          limit=10)[0] if j["campaignId"] != "SYSTEM"
        ] if len(services.jobs.list(job_type="EVENT_EXPIRATION", state="succeeded",
                                    limit=10)[0]) == 4 else None, timeout=30,
            message="three children to succeed")
        assert sorted(j["campaignId"] for j in children) == sorted(camps)
        assert all(j["priority"] == 8 and j["result"]["expired"] == 5 for j in children)
        assert all(completed(api, e) for ids in events.values() for e in ids)
        # And a retried parent enqueues no campaign twice
        ctx = JobContext(job_id=parent["id"], job_type="EVENT_EXPIRATION", campaign_id="SYSTEM",
                         payload=EmptyPayload(), attempt=2, services=services)
        assert fan_out(ctx)["alreadyEnqueued"] == 3
    finally:
        worker.stop()
        get_api_client(services).close()
        services.close()


def test_an_open_circuit_stops_expiring_and_defers_the_job(services, reference_api):
    from scheduler_service.errors import CircuitOpen

    camp = reference_api.make_campaign(world_time=NOW)["id"]
    ids = make_events(reference_api, camp, 30, NOW - timedelta(days=1))
    # Every expireEvent goes to an API that fails, through a breaker that opens at once
    refusing = ApiClient.from_settings(
        services.settings.replace(api_max_retries=0, api_breaker_threshold=1,
                                  api_breaker_duration_ms=60_000),
        headers={"x-test-error-code": "INTERNAL"})
    try:
        api = SomeCallsRefused(get_api_client(services), refusing, ids)
        with pytest.raises(CircuitOpen):
            expire_overdue_events(api, camp, grace_period_ms=0, concurrency=2)
    finally:
        refusing.close()
    # It stopped instead of marking the rest failed; nothing was expired
    calls = refusing.stats.snapshot()[0]
    assert calls[("ExpireEvent", "circuit_open")] >= 1
    assert sum(calls.values()) <= 2 * 2 * 2  # at most what was queued when the breaker opened
    assert not any(completed(reference_api, e) for e in ids)
