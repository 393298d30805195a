"""Loading plugins and collecting what they register.

The core's own job types come through the same hooks as third-party ones: the core
plugin (:mod:`scheduler_service.core_jobs`) is registered first, then every entry point
in the group ``scheduler_service.plugins``.

Entry points are loaded here rather than with pluggy's ``load_setuptools_entrypoints``
so that a failure names the distribution and the entry point (flake8 does the same):
pluggy's loader lets the bare import error escape with no word of which plugin raised it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Iterable, Mapping

import pluggy

from . import hookspecs
from .errors import PluginLoadError, UnknownJobType
from .jobtypes import HealthCheck, JobType, Reaction, Rule, Sweep

logger = logging.getLogger(__name__)

#: Entry-point group a plugin distribution declares.
ENTRY_POINT_GROUP = "scheduler_service.plugins"
#: Name under which the core's own hooks are registered.
CORE_PLUGIN = "core"


@dataclass(frozen=True)
class Registry:
    """Everything the loaded plugins contribute, keyed by name."""

    job_types: Mapping[str, JobType]
    sweeps: Mapping[str, Sweep]
    reactions: tuple[Reaction, ...]
    rules: tuple[Rule, ...]
    health_checks: tuple[HealthCheck, ...]
    plugins: Mapping[str, str]

    def job_type(self, name: str) -> JobType:
        """Return the job type called ``name``.

        Raises:
            UnknownJobType: when no plugin registered it.
        """
        try:
            return self.job_types[name]
        except KeyError:
            raise UnknownJobType(
                f"unknown job type {name!r}; known: {', '.join(sorted(self.job_types))}"
            ) from None


def make_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the scheduler's hook specifications and the core plugin."""
    from . import core_jobs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(core_jobs, name=CORE_PLUGIN)
    return pm


def load_entry_point_plugins(pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP) -> dict:
    """Import and register every plugin declared in ``group``.

    Returns:
        ``{plugin name: "distribution version"}`` of what was loaded.

    Raises:
        PluginLoadError: naming the distribution, the entry point and the cause.
    """
    loaded = {}
    for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        dist_name = f"{dist.metadata['Name']} {dist.version}" if dist else "unknown distribution"
        if pm.get_plugin(ep.name) is not None or ep.name in loaded:
            raise PluginLoadError(
                f"plugin {ep.name!r} of {dist_name}: another plugin already uses that name"
            )
        try:
            plugin = ep.load()
        except Exception as e:  # any import-time failure of third-party code
            raise PluginLoadError(
                f"plugin {ep.name!r} ({ep.value}) of {dist_name} failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as e:
            raise PluginLoadError(f"plugin {ep.name!r} of {dist_name} is invalid: {e}") from e
        loaded[ep.name] = dist_name
        logger.info("loaded plugin %s from %s", ep.name, dist_name)
    return loaded


def _collect(pm: pluggy.PluginManager, hook_name: str) -> Iterable[tuple[str, object]]:
    """Call one hook on each plugin separately, yielding ``(plugin name, item)``."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: core first
        try:
            items = impl.function() or []
        except Exception as e:
            raise PluginLoadError(
                f"plugin {impl.plugin_name!r} failed in {hook_name}(): {type(e).__name__}: {e}"
            ) from e
        for item in items:
            yield impl.plugin_name, item


def _unique(pm, hook_name, kind, expected_type):
    found: dict[str, object] = {}
    for plugin_name, item in _collect(pm, hook_name):
        if not isinstance(item, expected_type):
            raise PluginLoadError(
                f"plugin {plugin_name!r} returned {item!r} from {hook_name}(), "
                f"expected {expected_type.__name__}"
            )
        item = replace(item, plugin=plugin_name)
        previous = found.get(item.name)
        if previous is not None:
            raise PluginLoadError(
                f"{kind} {item.name!r} is registered twice: by plugin {previous.plugin!r} "
                f"and by plugin {plugin_name!r}"
            )
        found[item.name] = item
    return found


def build_registry(pm: pluggy.PluginManager, plugins: Mapping[str, str] | None = None) -> Registry:
    """Collect job types, sweeps, reactions, rules and health checks from ``pm``.

    Raises:
        PluginLoadError: on a duplicate name (naming both plugins) or a malformed item.
    """
    job_types = _unique(pm, "register_job_types", "job type", JobType)
    sweeps = _unique(pm, "register_sweeps", "sweep", Sweep)
    for sweep in sweeps.values():
        if sweep.job_type not in job_types:
            raise PluginLoadError(
                f"sweep {sweep.name!r} of plugin {sweep.plugin!r} enqueues unknown job type "
                f"{sweep.job_type!r}"
            )
    reactions = _unique(pm, "register_reactions", "reaction", Reaction)
    rules = _unique(pm, "register_rules", "rule", Rule)
    checks = _unique(pm, "register_health_checks", "health check", HealthCheck)
    return Registry(
        job_types=MappingProxyType(job_types),
        sweeps=MappingProxyType(sweeps),
        reactions=tuple(reactions.values()),
        rules=tuple(sorted(rules.values(), key=lambda r: r.order)),
        health_checks=tuple(checks.values()),
        plugins=MappingProxyType({CORE_PLUGIN: "scheduler-service (built in)", **(plugins or {})}),
    )


def load_registry() -> Registry:
    """Load the core and every installed plugin; the one call start-up makes.

    Raises:
        PluginLoadError: when any plugin fails to load or clashes with another.
    """
    pm = make_plugin_manager()
    loaded = load_entry_point_plugins(pm)
    return build_registry(pm, loaded)
