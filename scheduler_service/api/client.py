"""The typed client of the main campaign API.

One call of a client method goes through, in order:

1. the TTL cache (``campaigns`` and ``get_effect`` only, unless bypassed);
2. the circuit breaker, which refuses the call at once with
   :class:`~scheduler_service.errors.CircuitOpen` while open;
3. up to ``1 + max_retries`` attempts, each first taking a token from the process's rate
   limiter, then one HTTP POST with the request timeout; a
   :class:`~scheduler_service.errors.Transient` failure is retried after a jittered
   exponential backoff, anything else is raised at once;
4. the typed result (:mod:`scheduler_service.api.models`) built from the answer.

A call that ends in a transient error after its retries counts as *one* failure of the
breaker; the half-open trial call is a single attempt, and a call stops retrying as soon as
other calls have opened the breaker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any, Callable, Iterator

from ..metrics import API_CALLS, API_DURATION, API_RETRIES
from ..errors import (
    BadInput,
    CircuitOpen,
    Conflict,
    Forbidden,
    NotFound,
    Transient,
    Unauthenticated,
    UpstreamError,
)
from . import operations as ops
from .breaker import ApiCircuitBreaker
from .cache import TTLCache
from .models import Campaign, Effect, EffectExecutionResult, Event, Page, Settlement, Structure
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .transport import Transport, encode

logger = logging.getLogger(__name__)

#: Page size of the iterating helpers (the contract allows at most 500).
DEFAULT_PAGE_SIZE = 500

#: Outcome label of each error class in the call counters (most specific first).
OUTCOMES: tuple[tuple[type[UpstreamError], str], ...] = (
    (CircuitOpen, "circuit_open"),
    (NotFound, "not_found"),
    (Conflict, "conflict"),
    (BadInput, "bad_input"),
    (Unauthenticated, "unauthenticated"),
    (Forbidden, "forbidden"),
    (Transient, "transient"),
    (UpstreamError, "error"),
)


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label of a call that ended with ``error`` (``ok`` for None)."""
    if error is None:
        return "ok"
    for cls, label in OUTCOMES:
        if isinstance(error, cls):
            return label
    return "error"


class CallStats:
    """Thread-safe counters of calls by (operation, outcome) and of retries by operation.

    With a ``recorder`` (:class:`scheduler_service.recorder.Recorder`, attached by
    :func:`scheduler_service.api.use_api_client`) each call, retry and request duration is
    also recorded in the metrics every process shares.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.calls: Counter = Counter()
        self.retries: Counter = Counter()
        self.recorder = None

    def call(self, operation: str, outcome: str) -> None:
        with self._lock:
            self.calls[(operation, outcome)] += 1
        if self.recorder is not None:
            self.recorder.incr(API_CALLS, (operation, outcome))

    def retry(self, operation: str) -> None:
        with self._lock:
            self.retries[operation] += 1
        if self.recorder is not None:
            self.recorder.incr(API_RETRIES, (operation,))

    def request(self, operation: str, seconds: float) -> None:
        """One HTTP request of ``operation`` took ``seconds`` (answered or not)."""
        if self.recorder is not None:
            self.recorder.observe(API_DURATION, (operation,), seconds)

    def snapshot(self) -> tuple[dict, dict]:
        """Copies of ``(calls, retries)``."""
        with self._lock:
            return dict(self.calls), dict(self.retries)


class ApiClient:
    """Reads and writes campaign data through the main API's GraphQL endpoint.

    Thread-safe: one instance serves every thread of a process (see
    :func:`scheduler_service.api.get_api_client`). Build it with :meth:`from_settings`.

    Args:
        transport: sends one request.
        retry: how often and how long to retry transient failures.
        breaker: the circuit breaker, or None for none.
        limiter: the rate limiter, or None for no limit.
        cache: the TTL cache of campaigns and effects (a TTL of 0 disables it).
        sleep: how to wait between retries (injected by tests).
    """

    def __init__(self, transport: Transport, *, retry: RetryPolicy | None = None,
                 breaker: ApiCircuitBreaker | None = None, limiter: RateLimiter | None = None,
                 cache: TTLCache | None = None, sleep: Callable[[float], None] = time.sleep):
        self.transport = transport
        self.retry = retry if retry is not None else RetryPolicy()
        self.breaker = breaker
        self.limiter = limiter
        self.cache = cache if cache is not None else TTLCache(0)
        self.stats = CallStats()
        self._sleep = sleep
        #: The process that built the client; a forked child must build its own.
        self.pid = os.getpid()

    @classmethod
    def from_settings(cls, settings, *, headers: dict | None = None, **overrides) -> "ApiClient":
        """A client configured by the ``API_*`` settings.

        Args:
            settings: the service's :class:`~scheduler_service.config.Settings`.
            headers: extra HTTP headers sent with every request.
            overrides: keyword arguments of the constructor to use instead of the defaults.
        """
        timeout_s = settings.api_request_timeout_ms / 1000
        parts = {
            "transport": Transport(settings.api_url, settings.api_token, settings.api_auth_scheme,
                                   timeout_s=timeout_s, headers=headers),
            "retry": RetryPolicy(max_retries=settings.api_max_retries),
            "breaker": ApiCircuitBreaker(settings.api_breaker_threshold,
                                         settings.api_breaker_duration_ms / 1000,
                                         trial_wait_s=timeout_s),
            "limiter": (RateLimiter(settings.api_rate_limit_per_second)
                        if settings.api_rate_limit_per_second > 0 else None),
            "cache": TTLCache(settings.api_cache_ttl_s),
        }
        parts.update(overrides)
        return cls(**parts)

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self.transport.close()

    # -- the call path ---------------------------------------------------------------------

    def execute(self, prepared: ops.Prepared, variables: dict | None = None, *,
                confirm: Callable[[], Any] | None = None,
                resend_safe: bool | None = None) -> Any:
        """Send a prepared operation through breaker, retries and rate limit; return its result.

        A query is simply sent again after a transient failure. A mutation is not, when the
        failure may have applied it (a timeout or reset after the request went out, a 5xx):
        the client waits the retry delay, then calls ``confirm()``, which reads the API and
        returns the mutation's result when it did land (that becomes the call's result) or
        None when it did not (then, and only then, the mutation is sent again). Without a
        ``confirm`` such a failure is raised at once.

        Args:
            prepared: the operation.
            variables: its variables.
            confirm: how to find out whether a lost mutation was carried out.
            resend_safe: overrides ``prepared.resend_safe`` (a dry run changes nothing).

        Raises:
            CircuitOpen: the breaker is open; no request was made.
            Transient: still failing after the retries, or a mutation that may have been
                applied and has no ``confirm``; its ``circuit_open`` is set when the breaker
                was open once it had failed (this call opened it, or others did).
            NotFound, Conflict, BadInput, Unauthenticated, Forbidden, UpstreamError: the API's
                permanent answers (or ``confirm``'s), never retried.
        """
        body = encode(prepared.text, variables, prepared.name)
        safe = prepared.resend_safe if resend_safe is None else resend_safe
        try:
            if self.breaker is None:
                outcome = self._attempts(prepared.name, body, self.retry.max_retries, safe, confirm)
            else:
                outcome = self.breaker.run(prepared.name, lambda trial: self._attempts(
                    prepared.name, body, 0 if trial else self.retry.max_retries, safe, confirm))
            result = outcome.result if isinstance(outcome, _Confirmed) else \
                self._interpret(prepared, outcome)
        except UpstreamError as e:
            self.stats.call(prepared.name, outcome_of(e))
            if isinstance(e, Transient) and self.breaker is not None:
                e.circuit_open = self.breaker.refusal(prepared.name)
            raise
        self.stats.call(prepared.name, "ok")
        return result

    def _attempts(self, operation: str, body: bytes, retries: int, resend_safe: bool,
                  confirm: Callable[[], Any] | None) -> "dict | _Confirmed":
        attempt = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            started = time.perf_counter()
            try:
                try:
                    return self.transport.post(body, operation)
                finally:
                    self.stats.request(operation, time.perf_counter() - started)
            except Transient as e:
                ambiguous = e.maybe_applied and not resend_safe
                if attempt >= retries or self._breaker_opened() or (ambiguous and confirm is None):
                    raise
                attempt += 1
                delay = self.retry.delay(attempt)
                self.stats.retry(operation)
                logger.warning("API %s failed transiently (%s); %s %s of %s in %.2fs",
                               operation, e, "check, then retry" if ambiguous else "retry",
                               attempt, retries, delay)
                self._sleep(delay)
                if ambiguous:
                    landed = confirm()
                    if landed is not None:
                        logger.info("API %s had been carried out although its answer was "
                                    "lost; not sending it again", operation)
                        return _Confirmed(landed)

    def _breaker_opened(self) -> bool:
        """Whether other calls opened the breaker meanwhile (then retrying is pointless)."""
        return self.breaker is not None and self.breaker.opened

    @staticmethod
    def _interpret(prepared: ops.Prepared, data: dict) -> Any:
        try:
            return prepared.interpret(data)
        except Exception as e:  # an answer that does not match the contract
            raise UpstreamError(f"unexpected answer to {prepared.name}: {e!r}",
                                operation=prepared.name, code="BAD_RESPONSE") from e

    # -- queries ---------------------------------------------------------------------------

    def campaigns(self, use_cache: bool = True) -> list[Campaign]:
        """The campaigns the service account can see (cached; ``use_cache=False`` to re-read).

        Their ``current_world_time`` may be as old as the cache: read a campaign's clock with
        :meth:`get_current_world_time`.
        """
        if use_cache:
            cached = self.cache.get(("campaigns",))
            if cached is not None:
                return list(cached)
        result = self.execute(ops.CAMPAIGNS)
        self.cache.put(("campaigns",), tuple(result))
        return result

    def campaign(self, campaign_id: str) -> Campaign | None:
        """One campaign, or None when it does not exist."""
        return self.execute(ops.CAMPAIGN, {"id": campaign_id})

    def get_current_world_time(self, campaign_id: str) -> datetime | None:
        """The campaign's world time, or None when it has no world clock (never cached)."""
        return self.execute(ops.CURRENT_WORLD_TIME, {"campaignId": campaign_id})

    def get_overdue_events(self, campaign_id: str, grace_period_ms: int | None = None,
                           first: int | None = None, after: str | None = None) -> Page[Event]:
        """One page of the campaign's overdue events, oldest first."""
        return self.execute(ops.OVERDUE_EVENTS, {
            "campaignId": campaign_id, "gracePeriodMs": grace_period_ms,
            "first": first, "after": after})

    def get_effect(self, effect_id: str, use_cache: bool = True) -> Effect | None:
        """An effect with its executions, or None when it does not exist.

        Args:
            effect_id: the effect.
            use_cache: False reads it from the API (and refreshes the cache); pass False
                whenever the ``executions`` matter, as in the idempotency check.
        """
        key = ("effect", effect_id)
        if use_cache:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        effect = self.execute(ops.EFFECT, {"id": effect_id})
        if effect is not None:
            self.cache.put(key, effect)
        return effect

    def settlements_by_campaign(self, campaign_id: str, first: int | None = None,
                                after: str | None = None) -> Page[Settlement]:
        """One page of a campaign's settlements."""
        return self.execute(ops.SETTLEMENTS_BY_CAMPAIGN,
                            {"campaignId": campaign_id, "first": first, "after": after})

    def structures_by_campaign(self, campaign_id: str, first: int | None = None,
                               after: str | None = None) -> Page[Structure]:
        """One page of a campaign's structures."""
        return self.execute(ops.STRUCTURES_BY_CAMPAIGN,
                            {"campaignId": campaign_id, "first": first, "after": after})

    def unit(self, settlement_id: str) -> tuple[Settlement, list[Structure]] | None:
        """A settlement and its structures in one request, or None when it does not exist."""
        try:
            return self.execute(ops.UNIT, {"id": settlement_id})
        except NotFound:
            return None

    def structures_by_settlement(self, settlement_id: str) -> list[Structure]:
        """Every structure of one settlement."""
        return self.execute(ops.STRUCTURES_BY_SETTLEMENT, {"settlementId": settlement_id})

    def settlement(self, settlement_id: str) -> Settlement | None:
        """One settlement, or None when it does not exist."""
        return self.execute(ops.SETTLEMENT, {"id": settlement_id})

    def structure(self, structure_id: str) -> Structure | None:
        """One structure, or None when it does not exist."""
        return self.execute(ops.STRUCTURE, {"id": structure_id})

    def event(self, event_id: str) -> Event | None:
        """One event, or None when it does not exist."""
        return self.execute(ops.EVENT, {"id": event_id})

    # -- paging helpers --------------------------------------------------------------------

    def iter_settlements(self, campaign_id: str,
                         page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Settlement]:
        """Every settlement of a campaign, fetching pages of ``page_size`` as needed."""
        return self._iterate(
            lambda after: self.settlements_by_campaign(campaign_id, page_size, after))

    def iter_structures(self, campaign_id: str,
                        page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Structure]:
        """Every structure of a campaign, fetching pages of ``page_size`` as needed."""
        return self._iterate(
            lambda after: self.structures_by_campaign(campaign_id, page_size, after))

    def iter_overdue_events(self, campaign_id: str, grace_period_ms: int | None = None,
                            page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Event]:
        """Every overdue event of a campaign, oldest first, fetching pages as needed."""
        return self._iterate(
            lambda after: self.get_overdue_events(campaign_id, grace_period_ms, page_size, after))

    @staticmethod
    def _iterate(fetch: Callable[[str | None], Page]) -> Iterator:
        after = None
        while True:
            page = fetch(after)
            yield from page.nodes
            if not page.has_next_page or not page.end_cursor:
                return
            if page.end_cursor == after:
                raise UpstreamError(f"the API returned the cursor {after!r} twice; "
                                    "stopping instead of looping", code="BAD_RESPONSE")
            after = page.end_cursor

    # -- mutations -------------------------------------------------------------------------

    def expire_event(self, event_id: str) -> Event:
        """Mark an event completed without running its effects.

        Raises:
            Conflict: it is already completed.
            NotFound: it does not exist.
        """
        def confirm():
            event = self.event(event_id)
            return event if event is not None and event.is_completed else None

        return self.execute(ops.EXPIRE_EVENT, {"eventId": event_id}, confirm=confirm)

    def execute_effect(self, effect_id: str, context: dict | None = None,
                       dry_run: bool = False) -> EffectExecutionResult:
        """Execute an effect; ``context`` is recorded on the execution unchanged.

        The scheduler passes ``{"schedulerJobId": job_id}`` and checks
        :meth:`~scheduler_service.api.models.Effect.execution_for_job` on a fresh
        :meth:`get_effect` first, so a redelivered job does not run an effect twice. The
        same check decides what to do when the answer to this call is lost: an execution
        carrying that id means the effect ran (its result is returned); none means it is
        sent again. Without a ``schedulerJobId`` a lost answer is raised, never re-sent.
        """
        job_id = context.get("schedulerJobId") if isinstance(context, dict) else None

        def confirm():
            effect = self.get_effect(effect_id, use_cache=False)
            done = effect.execution_for_job(job_id) if effect is not None else None
            return None if done is None else EffectExecutionResult.of_execution(done)

        try:
            return self.execute(ops.EXECUTE_EFFECT, {"input": {
                "effectId": effect_id, "context": context, "dryRun": dry_run}},
                confirm=confirm if job_id else None, resend_safe=True if dry_run else None)
        finally:
            self.cache.invalidate(("effect", effect_id))

    def update_settlement(self, settlement_id: str, *, expected_version: int,
                          level: int | None = None, variables: dict | None = None,
                          branch_id: str | None = None,
                          world_time: datetime | None = None) -> Settlement:
        """Change a settlement's level and/or merge ``variables`` into its variables.

        Raises:
            Conflict: ``expected_version`` is not the stored version (re-read, then decide).
            NotFound: it does not exist.
        """
        return self.execute(ops.UPDATE_SETTLEMENT, {
            "id": settlement_id,
            "input": _update_input(expected_version, level, variables, branch_id, world_time)},
            confirm=lambda: _confirm_update(self.settlement(settlement_id), expected_version,
                                            level, variables))

    def update_structure(self, structure_id: str, *, expected_version: int,
                         level: int | None = None, variables: dict | None = None,
                         branch_id: str | None = None,
                         world_time: datetime | None = None) -> Structure:
        """Change a structure's level and/or merge ``variables`` into its variables.

        Raises:
            Conflict: ``expected_version`` is not the stored version (re-read, then decide).
            NotFound: it does not exist.
        """
        return self.execute(ops.UPDATE_STRUCTURE, {
            "id": structure_id,
            "input": _update_input(expected_version, level, variables, branch_id, world_time)},
            confirm=lambda: _confirm_update(self.structure(structure_id), expected_version,
                                            level, variables))


def _update_input(expected_version, level, variables, branch_id, world_time) -> dict:
    values = {"expectedVersion": expected_version, "level": level, "variables": variables,
              "branchId": branch_id, "worldTime": world_time}
    return {k: v for k, v in values.items() if v is not None}


class _Confirmed:
    """A mutation's result found by ``confirm`` after its own answer was lost."""

    __slots__ = ("result",)

    def __init__(self, result):
        self.result = result


def _confirm_update(entity, expected_version: int, level, variables):
    """Whether a versioned update whose answer was lost was stored: the entity, or None.

    The stored version tells: still ``expected_version`` means it was not stored (send it
    again); one more, with our level and variables in place, means it was; anything else
    means another writer got there, which is the :class:`Conflict` the caller handles anyway.
    """
    if entity is None or entity.version == expected_version:
        return None
    ours = (entity.version == expected_version + 1
            and (level is None or entity.level == level)
            and all(entity.variables.get(k) == v for k, v in (variables or {}).items()))
    if ours:
        return entity
    raise Conflict(f"version {entity.version} is stored, not {expected_version}: another "
                   "writer changed it while the answer to our update was lost",
                   code="CONFLICT")
