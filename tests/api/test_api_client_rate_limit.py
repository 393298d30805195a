"""The client-side rate limit holds across the threads of a process, over HTTP."""

import threading
import time

from scheduler_service.errors import UpstreamError

SECONDS = 5.0
LIMIT = 20


def test_threads_sharing_a_client_stay_within_ten_percent_of_the_limit_over_five_seconds(make_client):
    # Given one client limited to 20 calls/s, shared by 6 threads that call as fast as they can
    client = make_client(API_RATE_LIMIT_PER_SECOND=LIMIT)
    client.campaigns(use_cache=False)  # connect before measuring
    time.sleep(1.0)  # let the bucket refill to its (small) burst, as after any quiet spell
    counts = [0] * 6
    failures = []
    start = threading.Barrier(len(counts) + 1)
    deadline = [0.0]

    def hammer(i):
        start.wait()
        while time.monotonic() < deadline[0]:
            try:
                client.campaigns(use_cache=False)
            except UpstreamError as e:
                failures.append(e)
            if time.monotonic() <= deadline[0]:  # answered within the window
                counts[i] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(counts))]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + SECONDS
    start.wait()
    for t in threads:
        t.join(30)

    # Then 100 calls were answered in those 5 s, within 10 %
    total = sum(counts)
    assert not failures
    print(f"{total} calls in {SECONDS}s at a limit of {LIMIT}/s: {counts}")
    assert LIMIT * SECONDS * 0.9 <= total <= LIMIT * SECONDS * 1.1, counts
    assert all(c > 0 for c in counts)  # every thread got its turn


def test_a_limit_of_zero_means_no_limiter(make_client):
    client = make_client(API_RATE_LIMIT_PER_SECOND=0)
    assert client.limiter is None
