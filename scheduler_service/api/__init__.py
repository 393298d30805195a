"""The typed client of the main campaign API (CONTRACT.md), one per process.

Handlers reach it through :func:`get_api_client`; it returns the dataclasses of
:mod:`scheduler_service.api.models` and raises only the
:class:`~scheduler_service.errors.UpstreamError` tree. See ``docs/api_client.rst``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import (
    Campaign,
    Effect,
    EffectExecution,
    EffectExecutionResult,
    Event,
    Page,
    Settlement,
    Structure,
)

if TYPE_CHECKING:
    from .client import ApiClient

#: Key of the client in ``Services.extras``.
EXTRAS_KEY = "api"


def get_api_client(services) -> "ApiClient":
    """The process's API client, built from ``services.settings`` on first use.

    Building it makes no network call. A forked child process gets a client (and an HTTP
    connection pool) of its own instead of sharing its parent's sockets.
    """

    def build():
        from .client import ApiClient

        return use_api_client(services, ApiClient.from_settings(services.settings))

    return services.per_process(EXTRAS_KEY, build)


def use_api_client(services, client: "ApiClient") -> "ApiClient":
    """Make ``client`` the process's API client: its calls and request durations recorded in
    the metrics every process shares, its breaker's state reported, its openings alerted."""
    from ..alerts import get_alerter
    from ..metrics import API_CIRCUIT_OPENED
    from ..recorder import get_recorder

    recorder = get_recorder(services)
    client.stats.recorder = recorder
    breaker = client.breaker
    if breaker is not None:
        alerts = get_alerter(services)
        recorder.breaker_state = lambda: breaker.state_value

        def opened(breaker, error):
            recorder.incr(API_CIRCUIT_OPENED)
            recorder.flush_soon()
            alerts.breaker_opened(breaker.failure_count, breaker.duration_s, error)

        breaker.on_open = opened
        breaker.on_close = lambda breaker: recorder.flush_soon()
    services.extras[EXTRAS_KEY] = client
    return client


def __getattr__(name):
    if name == "ApiClient":
        from .client import ApiClient

        return ApiClient
    raise AttributeError(name)


__all__ = [
    "ApiClient", "Campaign", "Effect", "EffectExecution", "EffectExecutionResult", "Event",
    "Page", "Settlement", "Structure", "get_api_client", "use_api_client", "EXTRAS_KEY",
]
