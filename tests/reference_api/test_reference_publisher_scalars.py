"""The reference API's pub/sub publisher and DateTime scalar, on their own: what is
published (and what not), that a Redis failure never fails a write, and the DateTime forms."""

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from graphql import IntValueNode, StringValueNode

from helpers import wait_for
from scheduler_service.embedded_redis import free_port
from scheduler_service.reference_api.publisher import Publisher
from scheduler_service.reference_api.scalars import DateTime, parse_datetime


def test_settlement_changes_and_clock_advances_are_published_and_other_types_are_not(redis_server):
    client = redis_lib.Redis.from_url(redis_server.url)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.psubscribe("campaign.c7.*")
    wait_for(lambda: client.execute_command("PUBSUB", "NUMPAT") >= 1, message="the subscription")
    publisher = Publisher(redis_lib.Redis.from_url(redis_server.url))
    try:
        publisher.entity_modified("c7", "Kingdom", "k1", "UPDATE")  # not a contract type
        publisher.entity_modified("c7", "Settlement", "s1", "UPDATE")
        publisher.world_time_advanced("c7", None, "2026-03-01T12:00:00.000Z")
        messages = []

        def two_received():
            message = listener.get_message(timeout=0.2)
            if message:
                messages.append((message["channel"].decode(), json.loads(message["data"])))
            return len(messages) >= 2

        wait_for(two_received, timeout=10, message="two messages")
        # the Kingdom change, published first, would come first
        assert messages == [
            ("campaign.c7.entityModified", {"campaignId": "c7", "entityType": "Settlement",
                                            "entityId": "s1", "operation": "UPDATE"}),
            ("campaign.c7.worldTimeAdvanced", {"campaignId": "c7", "previousTime": None,
                                               "newTime": "2026-03-01T12:00:00.000Z"}),
        ]
    finally:
        publisher.close()
        listener.close()
        client.close()


def test_an_unreachable_redis_is_logged_and_never_raised(caplog):
    publisher = Publisher(redis_lib.Redis(port=free_port(), socket_connect_timeout=1))
    with caplog.at_level(logging.WARNING, "scheduler_service.reference_api.publisher"):
        publisher.world_time_advanced("c1", None, "2026-03-01T12:00:00.000Z")
    publisher.close()
    assert "could not publish to campaign.c1.worldTimeAdvanced" in caplog.text


def test_without_redis_nothing_is_published_and_start_up_says_so(caplog):
    with caplog.at_level(logging.DEBUG, "scheduler_service.reference_api.publisher"):
        publisher = Publisher(None)
        publisher.entity_modified("c1", "Structure", "st1", "DELETE")
        publisher.close()
    assert "Redis messages will not be published" in caplog.text
    assert "publishing skipped (no Redis): campaign.c1.entityModified" in caplog.text


def test_a_datetime_is_served_as_utc_milliseconds_whatever_it_was_given_as():
    paris = timezone(timedelta(hours=2))
    assert DateTime.serialize(datetime(2026, 3, 1, 14, 0, 0, 999999, paris)) == "2026-03-01T12:00:00.999Z"
    assert DateTime.serialize("2026-03-01T14:00:00+02:00") == "2026-03-01T12:00:00.000Z"
    with pytest.raises(TypeError, match="DateTime cannot represent 5"):
        DateTime.serialize(5)


@pytest.mark.parametrize("raw, message", [
    (1767225600, "DateTime must be an ISO-8601 string, got 1767225600"),
    ("yesterday", "DateTime must be ISO-8601 like 2026-03-01T12:00:00.000Z, got 'yesterday'"),
    ("2026-03-01T12:00:00", "DateTime must carry an offset"),
])
def test_a_datetime_variable_that_is_not_an_offset_iso_string_is_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_datetime(raw)


def test_a_datetime_literal_must_be_a_string():
    assert DateTime.parse_literal(StringValueNode(value="2026-03-01T12:00:00Z")) == \
        datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="DateTime must be an ISO-8601 string, got 17"):
        DateTime.parse_literal(IntValueNode(value="17"))
