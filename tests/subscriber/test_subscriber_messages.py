"""The pure core of the subscriber: message validation, its decisions, reconnect waits."""

import json

import pytest

from scheduler_service.campaigns import CampaignClock
from scheduler_service.subscriber.messages import (
    ENTITY_MODIFIED,
    PATTERNS,
    WORLD_TIME_ADVANCED,
    Actions,
    EntityModified,
    InvalidMessage,
    WorldTimeAdvanced,
    actions_for,
    check_against_api,
    cooldown_key,
    needs_cooldown,
    parse_message,
    reconnect_delay,
    split_channel,
)
from scheduler_service.subscriber.status import STALE_MS, summarize

WTA = "campaign.c1.worldTimeAdvanced"
EM = "campaign.c1.entityModified"


def body(**fields):
    return json.dumps(fields).encode()


def test_patterns_are_the_contracts_channels():
    assert PATTERNS == ("campaign.*.worldTimeAdvanced", "campaign.*.entityModified")


@pytest.mark.parametrize("channel, expected", [
    (WTA, ("c1", WORLD_TIME_ADVANCED)),
    (b"campaign.c1.entityModified", ("c1", ENTITY_MODIFIED)),
    ("campaign.a.b.worldTimeAdvanced", ("a.b", WORLD_TIME_ADVANCED)),  # the pattern's * matches dots
])
def test_split_channel(channel, expected):
    assert split_channel(channel) == expected


@pytest.mark.parametrize("channel", [
    "campaign..worldTimeAdvanced", "campaign.c1.somethingElse", "other.c1.worldTimeAdvanced",
    b"campaign.\xff.worldTimeAdvanced", "campaign." + "x" * 300 + ".entityModified",
])
def test_unknown_channels_are_invalid(channel):
    with pytest.raises(InvalidMessage) as e:
        split_channel(channel)
    assert e.value.reason == "channel" and e.value.event == "unknown"


def test_world_time_advanced_is_parsed_to_epoch_milliseconds():
    m = parse_message(WTA, body(campaignId="c1", previousTime=None,
                                newTime="2026-03-01T12:00:00.000Z"))
    assert isinstance(m, WorldTimeAdvanced)
    assert (m.campaign_id, m.new_time_ms, m.previous_time_ms) == ("c1", 1772366400000, None)
    assert m.event == WORLD_TIME_ADVANCED
    m = parse_message(WTA, body(campaignId="c1", previousTime="2026-03-01T11:00:00+00:00",
                                newTime="2026-03-01T13:00:00+01:00"))
    assert (m.previous_time_ms, m.new_time_ms) == (1772362800000, 1772366400000)


def test_previous_time_may_be_absent():
    m = parse_message(WTA, body(campaignId="c1", newTime="2026-03-01T12:00:00Z"))
    assert m.previous_time_ms is None


def test_entity_modified_is_parsed():
    m = parse_message(EM, body(campaignId="c1", entityType="Settlement", entityId="s9",
                               operation="DELETE"))
    assert m == EntityModified("c1", "Settlement", "s9", "DELETE", m.body)
    assert m.body["entityId"] == "s9"


@pytest.mark.parametrize("channel, data, reason", [
    (WTA, b"{not json", "bad_json"),
    (WTA, b"\xff\xfe", "bad_json"),
    (WTA, b"[1, 2]", "not_object"),
    (WTA, b"null", "not_object"),
    (WTA, body(newTime="2026-03-01T12:00:00Z"), "missing_field"),
    (WTA, body(campaignId="c1"), "missing_field"),
    (WTA, body(campaignId="c1", newTime=None), "missing_field"),
    (WTA, body(campaignId="c1", newTime="yesterday"), "bad_time"),
    (WTA, body(campaignId="c1", newTime="2026-03-01T12:00:00"), "bad_time"),  # no offset
    (WTA, body(campaignId="c1", newTime=12345), "bad_time"),
    (WTA, body(campaignId="c1", newTime="2026-03-01T12:00:00Z", previousTime="soon"), "bad_time"),
    (WTA, body(campaignId="c2", newTime="2026-03-01T12:00:00Z"), "campaign_mismatch"),
    (WTA, body(campaignId=7, newTime="2026-03-01T12:00:00Z"), "bad_value"),
    (WTA, body(campaignId="", newTime="2026-03-01T12:00:00Z"), "bad_value"),
    (WTA, b" " * (64 * 1024 + 1), "too_large"),
    (EM, body(campaignId="c1", entityType="Dragon", entityId="s1", operation="CREATE"), "bad_value"),
    (EM, body(campaignId="c1", entityType="Structure", entityId="s1", operation="MOVE"), "bad_value"),
    (EM, body(campaignId="c1", entityType="Structure", operation="UPDATE"), "missing_field"),
    (EM, body(campaignId="c1", entityType="Structure", entityId=["x"], operation="UPDATE"), "bad_value"),
])
def test_malformed_messages_are_invalid_with_a_reason(channel, data, reason):
    with pytest.raises(InvalidMessage) as e:
        parse_message(channel, data)
    assert e.value.reason == reason
    assert e.value.event == channel.rsplit(".", 1)[1]
    assert str(e.value)


def world(ms=1000):
    return WorldTimeAdvanced("c1", ms, None, {})


def entity():
    return EntityModified("c1", "Structure", "s1", "UPDATE", {})


def test_world_time_always_pumps_and_reacts_only_first_in_its_window():
    assert actions_for(world(5), first_in_window=True) == Actions(5, WORLD_TIME_ADVANCED)
    # a later (newer) message inside the window still pumps the timers
    assert actions_for(world(9), first_in_window=False) == Actions(9, None)


def test_entity_messages_always_react_and_never_pump():
    assert actions_for(entity(), first_in_window=True) == Actions(None, ENTITY_MODIFIED)
    assert not needs_cooldown(entity(), 5000)


def test_cooldown_applies_to_world_time_unless_turned_off():
    assert needs_cooldown(world(), 5000)
    assert not needs_cooldown(world(), 0)
    assert cooldown_key("ns:", "c1") == "ns:subscriber:cooldown:c1"


@pytest.mark.parametrize("failures, low, high", [
    (1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (6, 8.0, 16.0), (7, 15.0, 30.0),
    (8, 15.0, 30.0), (100, 15.0, 30.0), (0, 0.25, 0.5),
])
def test_reconnect_delay_doubles_up_to_the_cap_with_jitter(failures, low, high):
    assert reconnect_delay(failures, cap_s=30, rand=lambda: 0.0) == pytest.approx(low)
    assert reconnect_delay(failures, cap_s=30, rand=lambda: 1.0) == pytest.approx(high)


def test_reconnect_delay_never_exceeds_a_small_cap():
    assert max(reconnect_delay(n, cap_s=2) for n in range(1, 50)) <= 2


NOW = 10_000_000


def entry(state="connected", age_ms=1000, last=None):
    return {"state": state, "since": NOW - 60_000, "heartbeat": NOW - age_ms,
            "lastMessageAt": last}


@pytest.mark.parametrize("instances, status", [
    ({}, "up"),
    ({"a": entry()}, "up"),
    ({"a": entry(), "b": entry("disconnected")}, "up"),
    ({"a": entry("disconnected")}, "down"),
    ({"a": entry(age_ms=STALE_MS + 1)}, "down"),  # silent: dead or cut off
    ({"a": entry("starting")}, "down"),
])
def test_health_summary(instances, status):
    result = summarize(instances, NOW)
    assert result.status == status
    assert result.details["connected"] == sum(
        1 for e in instances.values()
        if e["state"] == "connected" and NOW - e["heartbeat"] <= STALE_MS)


def test_health_summary_names_the_last_message():
    result = summarize({"a": entry(last=NOW - 2500), "b": entry(last=NOW - 9000)}, NOW)
    assert "last message 2.5s ago" in result.message
    assert result.details["lastMessageAt"] == NOW - 2500
    assert set(result.details["subscribers"]) == {"a", "b"}
    # the shared time is newer than the entries' (refreshed only with their heartbeats)
    assert summarize({"a": entry(last=NOW - 2500)}, NOW, NOW - 500).details["lastMessageAt"] == NOW - 500


def _world(new_ms, campaign="c1"):
    return WorldTimeAdvanced(campaign, new_ms, None, {"campaignId": campaign})


@pytest.mark.parametrize("known, message, expected_ms, reason", [
    (CampaignClock("c1", False, None), _world(10), None, "unknown_campaign"),
    (CampaignClock("c1", True, None), _world(10), None, "no_world_clock"),
    (CampaignClock("c1", True, 5), _world(10), 5, "clamped"),
    (CampaignClock("c1", True, 10), _world(10), 10, None),
    (CampaignClock("c1", True, 20), _world(10), 10, None),   # a message may lag the API
])
def test_a_world_time_is_believed_only_up_to_the_apis_clock(known, message, expected_ms, reason):
    checked, why = check_against_api(message, known)
    assert why == reason
    assert (checked.new_time_ms if checked else None) == expected_ms


def test_an_entity_message_needs_only_a_known_campaign():
    message = EntityModified("c1", "Event", "e1", "CREATE", {})
    assert check_against_api(message, CampaignClock("c1", True, None)) == (message, None)
    assert check_against_api(message, CampaignClock("c1", False, None)) == (None, "unknown_campaign")
