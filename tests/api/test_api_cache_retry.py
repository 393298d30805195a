"""The TTL cache and the retry backoff."""

import random


from scheduler_service.api.cache import TTLCache
from scheduler_service.api.retry import RetryPolicy


class FakeClock:
    now = 0.0

    def __call__(self):
        return self.now


def test_an_entry_lives_for_the_ttl_then_is_gone():
    clock = FakeClock()
    cache = TTLCache(300, clock=clock)
    cache.put("k", "v")
    clock.now = 299.9
    assert cache.get("k") == "v"
    clock.now = 300
    assert cache.get("k") is None and len(cache) == 0


def test_a_ttl_of_zero_caches_nothing():
    cache = TTLCache(0)
    cache.put("k", "v")
    assert cache.get("k", "missing") == "missing"


def test_invalidate_one_key_or_all():
    cache = TTLCache(10)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.invalidate("a")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.invalidate()
    assert cache.get("b") is None


def test_the_oldest_entry_is_evicted_beyond_the_bound():
    cache = TTLCache(10, max_entries=2)
    for key in "abc":
        cache.put(key, key)
    assert cache.get("a") is None and cache.get("b") == "b" and cache.get("c") == "c"


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(max_retries=6, base_delay_s=0.2, max_delay_s=1.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_is_jittered_within_the_ceiling():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, rng=random.Random(7))
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 150
    assert max(delays) > 3.0 and min(delays) < 1.0
