"""CampaignDirectory: cached answers of the API about campaigns (a counting stand-in API)."""

from datetime import datetime, timezone

import pytest

from scheduler_service.campaigns import CampaignDirectory
from scheduler_service.errors import NotFound, Transient


class CountingApi:
    """Answers getCurrentWorldTime from a dict; counts the calls."""

    def __init__(self, clocks):
        self.clocks = clocks
        self.calls = 0

    def get_current_world_time(self, campaign_id):
        self.calls += 1
        if campaign_id not in self.clocks:
            raise NotFound(f"no campaign {campaign_id}", code="NOT_FOUND")
        value = self.clocks[campaign_id]
        if isinstance(value, Exception):
            raise value
        return value


T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)


def test_answers_are_cached_for_the_ttl_then_read_again():
    now = [0.0]
    api = CountingApi({"a": T0, "clockless": None})
    directory = CampaignDirectory(api, ttl_s=2, clock=lambda: now[0])
    assert directory.lookup("a").world_time_ms == T0_MS
    assert directory.lookup("clockless").exists and not directory.lookup("clockless").has_world_clock
    assert not directory.lookup("ghost").exists
    assert api.calls == 3
    directory.lookup("a"), directory.lookup("ghost")
    assert api.calls == 3
    now[0] = 2.5
    directory.lookup("a")
    assert api.calls == 4


def test_a_claimed_time_beyond_the_cached_answer_reads_again():
    api = CountingApi({"a": T0})
    directory = CampaignDirectory(api, ttl_s=60, clock=lambda: 0.0)
    directory.lookup("a")
    assert directory.lookup("a", at_least_ms=T0_MS).world_time_ms == T0_MS and api.calls == 1
    api.clocks["a"] = datetime(2026, 3, 2, tzinfo=timezone.utc)
    assert directory.lookup("a", at_least_ms=T0_MS + 1).world_time_ms == T0_MS + 86_400_000
    assert api.calls == 2
    # an unknown campaign stays unknown for the TTL, whatever a message claims
    directory.lookup("ghost")
    directory.lookup("ghost", at_least_ms=T0_MS)
    assert api.calls == 3


def test_failures_are_raised_and_not_cached():
    api = CountingApi({"a": Transient("down", code="TIMEOUT")})
    directory = CampaignDirectory(api, ttl_s=60, clock=lambda: 0.0)
    with pytest.raises(Transient):
        directory.lookup("a")
    api.clocks["a"] = T0
    assert directory.lookup("a").world_time_ms == T0_MS
