"""Cron settings, cron variables of the sweeps, and the Sweep value object."""

import pytest

from scheduler_service.config import load_settings
from scheduler_service.cron import configuration_problems, unused_cron_variables
from scheduler_service.errors import ConfigError, PluginLoadError
from scheduler_service.hookspecs import hookimpl
from scheduler_service.jobtypes import Sweep
from scheduler_service.plugins import build_registry, load_registry, make_plugin_manager


def test_leader_ttl_and_grace_defaults_and_bounds():
    s = load_settings({})
    assert s.cron_leader_ttl_s == 15 and s.cron_misfire_grace_s == 60
    with pytest.raises(ConfigError) as e:
        load_settings({"CRON_LEADER_TTL_S": "0", "CRON_MISFIRE_GRACE_S": "soon"})
    assert "CRON_LEADER_TTL_S must be an integer from 1 to 3600, got '0'" in str(e.value)
    assert "CRON_MISFIRE_GRACE_S must be an integer" in str(e.value)


def test_cron_settings_are_not_taken_for_sweep_overrides():
    s = load_settings({"CRON_LEADER_TTL_S": "5", "CRON_SAMPLE_TICK": "* * * * *"})
    assert dict(s.cron_overrides) == {"CRON_SAMPLE_TICK": "* * * * *"}


def test_every_invalid_cron_variable_is_named_with_its_sweep_and_reason():
    registry = load_registry()
    settings = load_settings({"CRON_EVENT_EXPIRATION": "*/5 * *", "CRON_SAMPLE_PING": "0 0 30 2 *",
                              "CRON_SAMPLE_TICK": "*/10 * * * * *"})
    problems = configuration_problems(settings, registry)
    assert len(problems) == 2
    assert problems[0].startswith("CRON_EVENT_EXPIRATION must be a cron expression (sweep "
                                  "event-expiration): has 3 field(s)")
    assert problems[1].startswith("CRON_SAMPLE_PING must be a cron expression (sweep sample-ping)")
    assert "never fires" in problems[1] and "got '0 0 30 2 *'" in problems[1]


def test_cron_variables_no_sweep_reads_are_reported():
    settings = load_settings({"CRON_EVENT_EXPIRATON": "* * * * *", "CRON_LEADER_TTL_S": "3",
                              "CRON_SAMPLE_TICK": "* * * * *"})
    assert unused_cron_variables(settings, load_registry()) == ["CRON_EVENT_EXPIRATON"]


@pytest.mark.parametrize("fields, words", [
    (dict(name="Event_Expiration"), "kebab-case"),
    (dict(env_var="EVENT_CRON"), "CRON_NAME"),
    (dict(cron="*/5 * *"), "3 field(s)"),
])
def test_sweep_value_object_rejects_bad_definitions(fields, words):
    base = dict(name="nightly", job_type="PING", cron="0 0 * * *", env_var="CRON_NIGHTLY")
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Sweep(**{**base, **fields})


def test_a_plugin_sweep_with_a_bad_default_cron_stops_startup_naming_the_plugin():
    class Plugin:
        @hookimpl
        def register_sweeps(self):
            return [Sweep("nightly", "PING", "0 25 * * *", "CRON_NIGHTLY")]

    pm = make_plugin_manager()
    pm.register(Plugin(), name="nightly-plugin")
    with pytest.raises(PluginLoadError) as e:
        build_registry(pm)
    assert "nightly-plugin" in str(e.value) and "hour field '25'" in str(e.value)


def test_core_registers_the_event_expiration_sweep():
    sweep = load_registry().sweeps["event-expiration"]
    assert (sweep.plugin, sweep.job_type, sweep.cron, sweep.env_var, sweep.campaign_id) == (
        "core", "EVENT_EXPIRATION", "*/5 * * * *", "CRON_EVENT_EXPIRATION", "SYSTEM")
