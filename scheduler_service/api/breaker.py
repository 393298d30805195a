"""The circuit breaker in front of the main API, built on the ``circuitbreaker`` package.

The package's :class:`~circuitbreaker.CircuitBreaker` supplies the states, the failure
predicate (only :class:`~scheduler_service.errors.Transient` counts) and the counters. This
subclass adds what a multi-threaded worker needs and the package lacks:

* a lock around every transition (the package's counters are not thread-safe);
* a real half-open state: once ``duration_s`` has passed, exactly **one** trial call goes
  through; the others keep failing fast until the trial ends. A successful trial closes the
  breaker, a transient failure opens it again for another ``duration_s``;
* an injectable clock, so the state machine is tested without sleeping;
* :class:`~scheduler_service.errors.CircuitOpen` with ``retry_after_s`` instead of the
  package's own error, so callers can wait and try again later, and ``spread_s`` (a
  quarter of ``duration_s``), how widely waiting callers should spread their return so
  that the half-open trial is not met by all of them at once.

What counts as one failure is one *call* that ended in a transient error after its retries
(see :mod:`scheduler_service.api.client`). A call ending in a permanent answer (``NOT_FOUND``,
``CONFLICT``...) proves the API is up and resets the count, like a success. Anything else
(a time limit interrupting the call, a bug) leaves the state unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker

from ..errors import CircuitOpen, Transient, UpstreamError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Value of the ``scheduler_api_circuit_state`` gauge for each state.
STATE_VALUES = {STATE_CLOSED: 0, STATE_HALF_OPEN: 1, STATE_OPEN: 2}
#: ``spread_s`` of a refusal, as a share of the breaker's duration.
SPREAD_SHARE = 0.25


class ApiCircuitBreaker(CircuitBreaker):
    """Opens after ``threshold`` consecutive transient failures, for ``duration_s`` seconds.

    Args:
        threshold: consecutive failed calls that open the breaker.
        duration_s: how long it stays open before one trial call is let through.
        clock: monotonic clock in seconds (injected by tests).
        trial_wait_s: ``retry_after_s`` given to callers refused while a trial is running.
        name: name in messages.
    """

    def __init__(self, threshold: int, duration_s: float, *,
                 clock: Callable[[], float] = time.monotonic, trial_wait_s: float = 1.0,
                 name: str = "api"):
        super().__init__(failure_threshold=threshold, recovery_timeout=duration_s,
                         expected_exception=Transient, name=name)
        self._clock = clock
        self._lock = threading.Lock()
        self._opened = clock()
        self._trial_running = False
        self.trial_wait_s = trial_wait_s
        #: How many times the breaker has opened (a counter for metrics).
        self.times_opened = 0
        #: ``on_open(breaker, error)``: called (outside the lock) each time it opens.
        self.on_open: Callable[["ApiCircuitBreaker", BaseException], None] | None = None
        #: ``on_close(breaker)``: called (outside the lock) when a call closes it again.
        self.on_close: Callable[["ApiCircuitBreaker"], None] | None = None

    @property
    def threshold(self) -> int:
        return self._failure_threshold

    @property
    def duration_s(self) -> float:
        return self._recovery_timeout

    @property
    def open_remaining(self) -> float:
        """Seconds until the breaker lets a trial call through (negative once it would)."""
        return self._opened + self._recovery_timeout - self._clock()

    @property
    def state_value(self) -> int:
        """0 closed, 1 half-open, 2 open (the metric's encoding)."""
        return STATE_VALUES[self.state]

    def admit(self, operation: str | None = None) -> bool:
        """Let a call through or refuse it.

        Returns:
            True when this call is the half-open trial (the caller should make it a single
            attempt), False for an ordinary call of a closed breaker.

        Raises:
            CircuitOpen: the breaker is open, or half-open with its trial already running.
        """
        with self._lock:
            state = self.state
            if state == STATE_CLOSED:
                return False
            if state == STATE_HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            refused = self._refusal(state, operation)
        raise refused

    def refusal(self, operation: str | None = None) -> CircuitOpen | None:
        """The :class:`CircuitOpen` a call would meet now, or None when one would go through
        (closed, or half-open with no trial running); takes no trial."""
        with self._lock:
            state = self.state
            if state == STATE_CLOSED or (state == STATE_HALF_OPEN and not self._trial_running):
                return None
            return self._refusal(state, operation)

    def _refusal(self, state: str, operation: str | None) -> CircuitOpen:
        if state == STATE_OPEN:
            retry_after = max(0.0, self.open_remaining)
            why = f"open for another {retry_after:.1f}s"
        else:
            retry_after = self.trial_wait_s
            why = "half-open and its trial call is running"
        last = f" (last failure: {self._last_failure})" if self._last_failure else ""
        return CircuitOpen(f"API circuit breaker is {why}{last}", retry_after_s=retry_after,
                           operation=operation, spread_s=SPREAD_SHARE * self._recovery_timeout)

    def record(self, error: BaseException | None, trial: bool) -> None:
        """Account for the end of an admitted call.

        Args:
            error: what the call raised, or None on success.
            trial: what :meth:`admit` returned for it.
        """
        opened = closed = False
        with self._lock:
            if trial:
                self._trial_running = False
            if error is not None and self.is_failure(type(error), error):
                self._last_failure = error
                self._failure_count += 1
                if trial or self._failure_count >= self._failure_threshold:
                    if self._state != STATE_OPEN or trial:
                        self.times_opened += 1
                        opened = True
                        logger.warning("API circuit breaker opened for %.1fs after %s transient "
                                       "failure(s): %s", self._recovery_timeout,
                                       self._failure_count, error)
                    self._state = STATE_OPEN
                    self._opened = self._clock()
            elif error is None or isinstance(error, UpstreamError):
                if self._state == STATE_OPEN:
                    logger.info("API circuit breaker closed: a call succeeded")
                    closed = True
                self.reset()
        self._notify(opened, closed, error)

    def _notify(self, opened: bool, closed: bool, error) -> None:
        try:
            if opened and self.on_open is not None:
                self.on_open(self, error)
            if closed and self.on_close is not None:
                self.on_close(self)
        except Exception:  # an observer's failure must never fail the call
            logger.exception("circuit breaker observer failed")

    def run(self, operation: str | None, func: Callable[[bool], T]) -> T:
        """Call ``func(trial)`` under the breaker; see :meth:`admit` and :meth:`record`."""
        trial = self.admit(operation)
        try:
            result = func(trial)
        except BaseException as e:
            self.record(e, trial)
            raise
        self.record(None, trial)
        return result

    # The package's context-manager protocol, kept consistent with the lock.
    def __enter__(self):
        return None

    def __exit__(self, exc_type, exc_value, _traceback):
        self.record(exc_value if exc_type else None, trial=False)
        return False
