"""A client-side rate limit shared by the threads of a process: a token bucket with a lock.

The bucket refills at ``rate`` tokens a second up to ``burst`` tokens. A caller takes one
token; when none is left it *reserves* the next one (the balance goes negative) and sleeps
until that token exists, outside the lock, so waiting callers are served in arrival order
and the long-run rate never exceeds ``rate``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimiter:
    """Token bucket of ``rate`` calls a second.

    Args:
        rate: tokens added per second; must be positive.
        burst: most tokens the bucket holds (calls allowed at once after a quiet spell);
            one tenth of a second's worth, at least 1, when omitted.
        clock: monotonic clock in seconds (injected by tests).
        sleep: how to wait (injected by tests).
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive; use no limiter for 'off'")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token now; return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a call is allowed; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
