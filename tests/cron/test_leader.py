"""Leader election: the lease rule (pure) and the Redis lock with real Redis."""

import time

import pytest

from scheduler_service.cron.leader import Elector, LeaderLock, Lease
from helpers import wait_for


# -- the lease, on a fake monotonic clock ----------------------------------------------

def test_lease_ends_before_the_lock_can_expire_in_redis():
    lease = Lease(ttl_s=10, safety=0.2)
    assert not lease.held and not lease.valid(0)
    # Given the lock was taken by a command sent at t=100
    lease.grant(100)
    # Then this replica fires until 8 s later, not 10: the rest covers clock drift
    assert lease.valid(100) and lease.valid(107.99)
    assert not lease.valid(108)
    assert lease.held  # it still believes it holds the lock: only a renewal can tell


def test_renewal_extends_from_when_the_command_was_sent_and_keeps_since():
    lease = Lease(ttl_s=10, safety=0.2)
    lease.grant(100)
    lease.grant(103)
    assert lease.since == 100
    assert lease.valid(110.9) and not lease.valid(111)


def test_revoked_lease_stops_firing_at_once():
    lease = Lease(ttl_s=10)
    lease.grant(100)
    lease.revoke()
    assert not lease.valid(100.001) and not lease.held


# -- the lock in Redis -----------------------------------------------------------------

@pytest.fixture
def lock_key(settings, redis_client):
    key = f"{settings.redis_namespace}:cron:leader"
    yield key
    redis_client.delete(key)


def test_only_one_replica_takes_the_lock(redis_client, lock_key):
    a = LeaderLock(redis_client, lock_key, "a", 10_000)
    b = LeaderLock(redis_client, lock_key, "b", 10_000)
    assert a.try_acquire()
    assert not b.try_acquire()
    assert b.holder() == "a" and 0 < redis_client.pttl(lock_key) <= 10_000


def test_a_replica_takes_back_a_lock_that_still_names_it(redis_client, lock_key):
    # Given a's renewal failed (a Redis error) while the key still names it
    a = LeaderLock(redis_client, lock_key, "a", 10_000)
    b = LeaderLock(redis_client, lock_key, "b", 10_000)
    assert a.try_acquire()
    redis_client.pexpire(lock_key, 2_000)
    # Then a takes it back at once, with a fresh TTL, and b still cannot
    assert a.try_acquire() and redis_client.pttl(lock_key) > 5_000
    assert not b.try_acquire() and b.holder() == "a"


def test_renew_and_release_only_touch_ones_own_lock(redis_client, lock_key):
    a = LeaderLock(redis_client, lock_key, "a", 10_000)
    b = LeaderLock(redis_client, lock_key, "b", 10_000)
    assert a.try_acquire()
    assert not b.renew() and not b.release()
    assert a.holder() == "a"
    redis_client.pexpire(lock_key, 500)
    assert a.renew() and redis_client.pttl(lock_key) > 5_000
    assert a.release() and a.holder() is None
    assert not a.renew()  # nothing left to renew


def test_a_standby_takes_an_expired_lock_and_the_old_leader_cannot_renew_it(redis_client, lock_key):
    a = LeaderLock(redis_client, lock_key, "a", 300)
    b = LeaderLock(redis_client, lock_key, "b", 10_000)
    assert a.try_acquire()
    wait_for(b.try_acquire, timeout=10, message="b to take the expired lock")
    assert not a.renew() and b.holder() == "b"


# -- the elector thread ----------------------------------------------------------------

def test_one_of_two_electors_leads_and_the_other_takes_over_when_it_stops(redis_client, lock_key):
    elected = []
    a = Elector(LeaderLock(redis_client, lock_key, "a", 1_000), on_elected=lambda: elected.append("a"))
    b = Elector(LeaderLock(redis_client, lock_key, "b", 1_000), on_elected=lambda: elected.append("b"))
    a.start()
    wait_for(a.is_leader, timeout=10, message="a to lead")
    b.start()
    try:
        time.sleep(1.5)  # more than a TTL: a keeps renewing, b keeps standing by
        assert a.is_leader() and not b.is_leader() and elected == ["a"]
        # When a stops, it releases the lock, and b leads at its next attempt
        a.stop()
        assert not a.is_leader()
        wait_for(b.is_leader, timeout=10, message="b to lead")
        assert elected == ["a", "b"] and b.lock.holder() == "b"
    finally:
        a.stop()
        b.stop()


def test_a_leader_whose_lock_was_taken_stops_firing_at_its_next_renewal(redis_client, lock_key):
    lost = []
    a = Elector(LeaderLock(redis_client, lock_key, "a", 60_000), on_lost=lost.append)
    a.step()
    assert a.is_leader()
    # Given someone else holds the lock now (as after an expiry during a long pause)
    redis_client.set(lock_key, "intruder")
    # When the leader tries to renew, it stops being leader at once
    a.step()
    assert not a.is_leader() and "intruder" in lost[0]
    # and it does not take the lock back while the other holds it
    a.step()
    assert not a.is_leader()
