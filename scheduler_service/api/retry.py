"""When to try a failed API call again: bounded exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Delay before the first retry, in seconds (before jitter).
DEFAULT_BASE_DELAY_S = 0.2
#: Upper bound of one delay, in seconds.
DEFAULT_MAX_DELAY_S = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` further attempts after a transient failure.

    The n-th retry (n = 1, 2...) waits a random time in ``[0, min(max_delay_s,
    base_delay_s * 2 ** (n - 1))]`` ("full jitter"), so many clients failing together do
    not come back together.
    """

    max_retries: int = 3
    base_delay_s: float = DEFAULT_BASE_DELAY_S
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, retry: int) -> float:
        """Longest wait before retry number ``retry`` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * (2 ** (retry - 1)))

    def delay(self, retry: int) -> float:
        """A jittered wait before retry number ``retry`` (1-based)."""
        return self.rng.uniform(0, self.ceiling(retry))
