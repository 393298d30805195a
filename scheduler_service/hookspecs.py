"""Hook specifications: what a plugin may contribute to the scheduler.

A plugin is a module (usually of its own pip-installable distribution) that declares an
entry point in the group ``scheduler_service.plugins`` and implements some of these hooks
with the :data:`hookimpl` marker. The core registers its own job types through the very
same hooks. Each hook is called once at start-up and returns a list of value objects from
:mod:`scheduler_service.jobtypes`; a plugin never imports Dramatiq or Redis.
"""

import pluggy

PROJECT = "scheduler_service"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_job_types():
    """Called once at start-up; returns a list of :class:`~scheduler_service.jobtypes.JobType`."""


@hookspec
def register_sweeps():
    """Called once at start-up; returns a list of :class:`~scheduler_service.jobtypes.Sweep` (periodic cron sweeps)."""


@hookspec
def register_reactions():
    """Called once at start-up; returns a list of :class:`~scheduler_service.jobtypes.Reaction` to campaign messages."""


@hookspec
def register_rules():
    """Called once at start-up; returns a list of :class:`~scheduler_service.jobtypes.Rule` for the simulation engine."""


@hookspec
def register_health_checks():
    """Called once at start-up; returns a list of :class:`~scheduler_service.jobtypes.HealthCheck` shown on ``/health``."""
