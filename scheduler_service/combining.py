"""Group commit for calls that many threads make at once: one round trip for all of them.

A web worker's threads each create a job with one Lua call. Under load, most of a call's
cost is the round trip (two system calls on each side, a thread switch, the script's
set-up), not the work. :class:`Combiner` lets the first caller send at once; callers that
arrive while its call is in flight queue up, and when it returns the first of them sends
everyone's items in one call. Nothing waits for a batch to fill: one caller alone pays
nothing extra, and under load a call carries whatever came in during the previous one.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence


class _Slot:
    __slots__ = ("item", "value", "error", "ready", "batch")

    def __init__(self, item):
        self.item = item
        self.value = None
        self.error: BaseException | None = None
        self.ready: threading.Lock | None = None
        #: Set on the slot whose thread is to send the next call: the items it carries.
        self.batch: list | None = None

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class Combiner:
    """Calls ``send(items) -> results`` (one result per item, in order) for items that
    threads submit one at a time, combining those that wait into one call.

    ``send`` raising fails every item of that call with the same exception; items of other
    calls are unaffected.
    """

    def __init__(self, send: Callable[[Sequence[Any]], Sequence[Any]], limit: int = 64):
        self.send = send
        #: Most items in one call.
        self.limit = limit
        self._lock = threading.Lock()
        self._queued: list[_Slot] = []
        self._busy = False

    def __call__(self, item):
        slot = _Slot(item)
        with self._lock:
            if self._busy:
                slot.ready = threading.Lock()
                slot.ready.acquire()
                self._queued.append(slot)
            else:
                self._busy = True
                slot.batch = [slot]
        if slot.batch is None:
            slot.ready.acquire()  # released once its call is done, or to send the next one
        if slot.batch is not None:
            self._run(slot.batch)
        return slot.result()

    def _run(self, batch: list[_Slot]) -> None:
        try:
            results = self.send([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"send returned {len(results)} results for {len(batch)} items")
            for s, value in zip(batch, results):
                s.value = value
        except BaseException as e:  # noqa: B902 - every waiter must hear of it
            for s in batch:
                s.error = e
        finally:
            with self._lock:
                following = self._queued[:self.limit]
                del self._queued[:self.limit]
                if not following:
                    self._busy = False
            for s in batch[1:]:
                s.batch = None
                s.ready.release()
            batch[0].batch = None
            if following:
                following[0].batch = following
                following[0].ready.release()
