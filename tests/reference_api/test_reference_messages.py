"""The Redis messages of the contract, with their exact bodies, on the session Redis."""

import json
import time

import pytest
import redis

T0 = "2026-03-01T12:00:00.000Z"


@pytest.fixture
def listen(redis_server):
    """``listen(campaign_id)``: subscribe to a campaign's channels; ``.take(n)`` returns messages."""
    subscriptions = []

    class Listener:
        def __init__(self, campaign_id):
            self.client = redis.Redis.from_url(redis_server.url)
            self.pubsub = self.client.pubsub()
            self.pubsub.psubscribe(f"campaign.{campaign_id}.*")
            # Subscribed only once Redis confirms it; a message published before is lost.
            deadline = time.monotonic() + 5
            while True:
                message = self.pubsub.get_message(timeout=0.1)
                if message and message["type"] == "psubscribe":
                    break
                assert time.monotonic() < deadline, "no psubscribe confirmation"

        def take(self, count, timeout=5.0):
            messages, deadline = [], time.monotonic() + timeout
            while len(messages) < count and time.monotonic() < deadline:
                message = self.pubsub.get_message(timeout=0.1)
                if message and message["type"] == "pmessage":
                    messages.append((message["channel"].decode(), json.loads(message["data"])))
            return messages

        def close(self):
            self.pubsub.close()
            self.client.close()

    def listen(campaign_id):
        listener = Listener(campaign_id)
        subscriptions.append(listener)
        return listener

    yield listen
    for listener in subscriptions:
        listener.close()


def test_world_time_advanced_message(reference_api, listen):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    listener = listen(camp)
    reference_api.advance(camp, "2026-03-01T18:30:00+02:00")
    assert listener.take(1) == [(f"campaign.{camp}.worldTimeAdvanced", {
        "campaignId": camp, "previousTime": T0, "newTime": "2026-03-01T16:30:00.000Z"})]


def test_world_time_advanced_from_no_clock_has_null_previous_time(reference_api, listen):
    camp = reference_api.make_campaign()["id"]
    listener = listen(camp)
    reference_api.advance(camp, T0)
    assert listener.take(1) == [(f"campaign.{camp}.worldTimeAdvanced", {
        "campaignId": camp, "previousTime": None, "newTime": T0})]


def test_refused_advance_publishes_nothing(reference_api, listen):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    listener = listen(camp)
    body = reference_api.gql(
        "mutation($i: AdvanceWorldTimeInput!) { advanceWorldTime(input: $i) { campaignId } }",
        {"i": {"campaignId": camp, "to": "2026-01-01T00:00:00Z"}})
    assert body["errors"]
    assert listener.take(1, timeout=0.5) == []


def test_entity_modified_on_every_settlement_structure_and_event_write(reference_api, listen):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    kingdom = reference_api.make_kingdom(camp)["id"]
    listener = listen(camp)

    settlement = reference_api.make_settlement(kingdom)["id"]
    structure = reference_api.make_structure(settlement)["id"]
    event = reference_api.make_event(camp, "2026-03-01T10:00:00Z")["id"]
    reference_api.data("mutation($id: ID!) { updateSettlement(id: $id, input: {expectedVersion: 1, "
                       "variables: {a: 1}}) { id } }", {"id": settlement})
    reference_api.data("mutation($id: ID!) { updateStructure(id: $id, input: {expectedVersion: 1, "
                       "level: 2}) { id } }", {"id": structure})
    reference_api.data("mutation($id: ID!) { expireEvent(eventId: $id) { id } }", {"id": event})
    effect = reference_api.make_effect("Settlement", settlement,
                                       [{"op": "add", "path": "/variables/b", "value": 2}])["id"]
    reference_api.data("mutation($id: ID!) { executeEffect(input: {effectId: $id}) { success } }",
                       {"id": effect})
    reference_api.data("mutation($id: ID!) { executeEffect(input: {effectId: $id, dryRun: true}) "
                       "{ success } }", {"id": effect})

    channel = f"campaign.{camp}.entityModified"

    def body(entity_type, entity_id, operation):
        return (channel, {"campaignId": camp, "entityType": entity_type, "entityId": entity_id,
                          "operation": operation})

    assert listener.take(7) == [
        body("Settlement", settlement, "CREATE"),
        body("Structure", structure, "CREATE"),
        body("Event", event, "CREATE"),
        body("Settlement", settlement, "UPDATE"),
        body("Structure", structure, "UPDATE"),
        body("Event", event, "UPDATE"),
        body("Settlement", settlement, "UPDATE"),  # the effect
    ]
    assert listener.take(1, timeout=0.3) == []  # the dry run published nothing


def test_conflicting_update_publishes_nothing(reference_api, listen):
    world = reference_api.make_world()
    settlement = world["settlements"][0]["id"]
    listener = listen(world["campaign"]["id"])
    body = reference_api.gql("mutation($id: ID!) { updateSettlement(id: $id, input: "
                             "{expectedVersion: 9}) { id } }", {"id": settlement})
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert listener.take(1, timeout=0.5) == []
