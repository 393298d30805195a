"""A small thread-safe TTL cache for data that rarely changes (campaigns, effect definitions)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

_MISSING = object()


class TTLCache:
    """Values kept for ``ttl_s`` seconds after they were stored.

    Args:
        ttl_s: lifetime of an entry; 0 stores nothing.
        clock: monotonic clock in seconds (injected by tests).
        max_entries: entries beyond this evict the oldest stored one.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 10_000):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The live value of ``key``, or ``default`` when missing or expired."""
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is _MISSING:
                return default
            expires, value = entry
            if self._clock() >= expires:
                del self._entries[key]
                return default
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key`` (no-op when the TTL is 0)."""
        if not self.enabled:
            return
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (self._clock() + self.ttl_s, value)

    def invalidate(self, key: Hashable | None = None) -> None:
        """Forget ``key``, or everything when ``key`` is None."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
