"""Periodic sweeps: cron expressions, leader election, schedule state and the ``cron`` process.

* :mod:`.expr` — parsing cron expressions and fire-time arithmetic (pure);
* :mod:`.leader` — the Redis leader lock and the lease a leader fires under;
* :mod:`.schedules` — what every replica obeys: enabled, cron, overlap, history, runs;
* :mod:`.process` — the ``scheduler-service cron`` process;
* :mod:`.status` — the ``cron`` health component and metrics.
"""

from __future__ import annotations

from ..config import FIELDS
from .expr import cron_error


def configuration_problems(settings, registry) -> list[str]:
    """Every sweep whose cron variable holds an invalid expression, as ConfigError lines."""
    problems = []
    for sweep in sorted(registry.sweeps.values(), key=lambda s: s.env_var):
        value = settings.cron_overrides.get(sweep.env_var)
        if value is None:
            continue
        error = cron_error(value)
        if error:
            problems.append(f"{sweep.env_var} must be a cron expression (sweep {sweep.name}): "
                            f"{error}, got {value!r}")
    return problems


def unused_cron_variables(settings, registry) -> list[str]:
    """``CRON_*`` variables that no sweep reads (a typo, or a plugin not installed)."""
    used = {s.env_var for s in registry.sweeps.values()} | {f.env for f in FIELDS}
    return sorted(set(settings.cron_overrides) - used)
