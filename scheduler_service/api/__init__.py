"""The typed client of the main campaign API (CONTRACT.md), one per process.

Handlers reach it through :func:`get_api_client`; it returns the dataclasses of
:mod:`scheduler_service.api.models` and raises only the
:class:`~scheduler_service.errors.UpstreamError` tree. See ``docs/api_client.rst``.
"""

from __future__ import annotations

import os
import threading
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

_build_lock = threading.Lock()


def get_api_client(services) -> "ApiClient":
    """The process's API client, built from ``services.settings`` on first use.

    Building it makes no network call. A forked child process gets a client (and an HTTP
    connection pool) of its own instead of sharing its parent's sockets.
    """
    client = services.extras.get(EXTRAS_KEY)
    if client is not None and client.pid == os.getpid():
        return client
    with _build_lock:
        client = services.extras.get(EXTRAS_KEY)
        if client is None or client.pid != os.getpid():
            from .client import ApiClient

            client = ApiClient.from_settings(services.settings)
            services.extras[EXTRAS_KEY] = client
        return client


def __getattr__(name):
    if name == "ApiClient":
        from .client import ApiClient

        return ApiClient
    raise AttributeError(name)


__all__ = [
    "ApiClient", "Campaign", "Effect", "EffectExecution", "EffectExecutionResult", "Event",
    "Page", "Settlement", "Structure", "get_api_client", "EXTRAS_KEY",
]
