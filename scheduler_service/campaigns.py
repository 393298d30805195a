"""What the main API says about a campaign: does it exist, and where is its world clock.

The API is the truth about campaigns; a pub/sub message or a REST request only claims
things about them. :class:`CampaignDirectory` asks ``getCurrentWorldTime`` and keeps each
answer for ``CAMPAIGN_CACHE_MS``, so that a burst of messages or requests about one
campaign costs one call. The subscriber pumps a campaign's world timers no further than
this time; job creation refuses unknown campaigns and world times without a clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .api.cache import TTLCache
from .errors import NotFound

#: Key of the directory in ``Services.extras``.
EXTRAS_KEY = "campaigns"


@dataclass(frozen=True)
class CampaignClock:
    """One answer of the API about a campaign.

    Attributes:
        campaign_id: the campaign asked about.
        exists: False when the API does not know it.
        world_time_ms: its world time in epoch ms; None without a world clock (or unknown).
    """

    campaign_id: str
    exists: bool
    world_time_ms: int | None

    @property
    def has_world_clock(self) -> bool:
        return self.world_time_ms is not None


class CampaignDirectory:
    """Cached lookups of campaigns through the API client.

    Args:
        api: the :class:`~scheduler_service.api.client.ApiClient` (or anything with its
            ``get_current_world_time``).
        ttl_s: how long an answer is kept; 0 asks every time.
        clock: monotonic clock in seconds (injected by tests).
    """

    def __init__(self, api, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.cache = TTLCache(ttl_s, clock=clock)

    def lookup(self, campaign_id: str, use_cache: bool = True,
               at_least_ms: int | None = None) -> CampaignClock:
        """What the API says about ``campaign_id`` now (or at most ``ttl_s`` ago).

        Args:
            campaign_id: the campaign.
            use_cache: False always asks the API.
            at_least_ms: a world time somebody claims; a cached answer behind it is read
                again, since the clock may have moved since. (A message claiming a time
                the API has not reached therefore costs a call each; the client's rate
                limit bounds a flood of them.)

        Raises:
            Transient, CircuitOpen, UpstreamError: the API could not be asked; nothing is
                cached, the caller decides (the subscriber defers to the sweep, a REST
                create answers 503).
        """
        if use_cache:
            cached = self.cache.get(campaign_id)
            if cached is not None and not self._stale(cached, at_least_ms):
                return cached
        try:
            world_time = self.api.get_current_world_time(campaign_id)
        except NotFound:
            answer = CampaignClock(campaign_id, False, None)
        else:
            ms = None if world_time is None else int(round(world_time.timestamp() * 1000))
            answer = CampaignClock(campaign_id, True, ms)
        self.cache.put(campaign_id, answer)
        return answer

    def _stale(self, cached: CampaignClock, at_least_ms: int | None) -> bool:
        if at_least_ms is None or not cached.exists:
            return False
        return cached.world_time_ms is None or cached.world_time_ms < at_least_ms

    def forget(self, campaign_id: str | None = None) -> None:
        """Drop a cached answer (all of them with None)."""
        self.cache.invalidate(campaign_id)


def campaign_problem(clock: CampaignClock, *, scoped: bool,
                     world_time: bool) -> tuple[str, str] | None:
    """Why a job for ``clock``'s campaign could never run: ``(field, message)``, or None.

    Args:
        clock: what the API said about the campaign.
        scoped: the job type works on the campaign's data (it must exist).
        world_time: the job is due at a time on the campaign's world clock.
    """
    name = clock.campaign_id
    if (scoped or world_time) and not clock.exists:
        return "campaignId", f"campaign {name!r} does not exist in the main API"
    if world_time and not clock.has_world_clock:
        return "runAtWorldTime", (f"campaign {name!r} has no world clock, so a world time "
                                  "would never come; give runAt instead")
    return None


def get_campaign_directory(services) -> CampaignDirectory:
    """The process's directory, built on first use over its API client."""
    from .api import get_api_client

    directory = services.extras.get(EXTRAS_KEY)
    api = get_api_client(services)
    if directory is None or directory.api is not api:
        directory = CampaignDirectory(api, services.settings.campaign_cache_ms / 1000)
        services.extras[EXTRAS_KEY] = directory
    return directory
