import re
from pathlib import Path

import pytest

from scheduler_service.config import (
    DEFAULT_DEV_API_TOKEN,
    DEFAULT_REDIS_URL,
    FIELDS,
    Settings,
    load_settings,
    reference_rst,
)
from scheduler_service.errors import ConfigError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.rst"


def test_defaults_outside_production():
    s = load_settings({})
    assert s.env == "development"
    assert s.port == 9266
    assert s.redis_url == DEFAULT_REDIS_URL and not s.redis_url_explicit
    assert s.queue_max_retries == 3 and s.queue_retry_backoff_ms == 5000
    assert s.queue_concurrency == 5
    assert s.api_request_timeout_ms == 10000
    assert s.api_breaker_threshold == 5 and s.api_breaker_duration_ms == 30000
    assert s.event_expiration_grace_minutes == 5
    assert s.admin_dashboard_enabled is True
    assert s.api_token == "dev-key"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"QUEUE_CONCURRENCY": "abc"}, "QUEUE_CONCURRENCY must be an integer from 1 to 256, got 'abc'"),
        ({"QUEUE_CONCURRENCY": "0"}, "QUEUE_CONCURRENCY must be an integer from 1 to 256, got '0'"),
        ({"PORT": "70000"}, "PORT must be an integer from 1 to 65535, got '70000'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of json, text, got 'xml'"),
        ({"SCHEDULER_ENV": "staging"}, "SCHEDULER_ENV must be one of development, production, test"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must be a URL with scheme redis or rediss or unix"),
        ({"EVENT_EXPIRATION_GRACE_MINUTES": "-1"}, "EVENT_EXPIRATION_GRACE_MINUTES must be an integer from 0"),
        ({"REDIS_URL": "redis://127.0.0.1:notaport/0"}, "REDIS_URL must be a URL with scheme redis or rediss or unix (Port could not be cast"),
        ({"REDIS_URL": "redis:typo"}, "REDIS_URL must be a URL with scheme redis or rediss or unix and a host"),
        ({"REDIS_URL": "redis://localhost:6379/db"}, "REDIS_URL must be a URL with scheme redis or rediss or unix: the path must be a database number"),
        ({"API_URL": "http:nohost"}, "API_URL must be a URL with scheme http or https and a host"),
        ({"API_URL": "http://300.1.1.1/graphql"}, "API_URL must be a URL with scheme http or https: '300.1.1.1' is not a valid IPv4 address"),
        ({"HOST": "999.1.1.1"}, "HOST must be an IP address or host name to bind: '999.1.1.1' is not a valid IPv4 address"),
        ({"HOST": "bad host"}, "HOST must be an IP address or host name to bind"),
        ({"JOB_RETENTION_HOURS": "10000000000000"}, "JOB_RETENTION_HOURS must be an integer from 1 to 87600"),
        ({"QUEUE_MAX_BACKOFF_MS": "604800000"}, "QUEUE_MAX_BACKOFF_MS must be an integer from 1 to 604799999"),
        ({"JOB_TIME_LIMIT_MS": "99999999999"}, "JOB_TIME_LIMIT_MS must be an integer from 1000 to 604800000"),
        ({"ADMIN_DASHBOARD_ENABLED": "maybe"}, "ADMIN_DASHBOARD_ENABLED must be a boolean"),
        ({"ADMIN_DASHBOARD_USER": "ops"}, "ADMIN_DASHBOARD_USER and ADMIN_DASHBOARD_PASSWORD must be set together"),
        ({"QUEUE_RETRY_BACKOFF_MS": "5000", "QUEUE_MAX_BACKOFF_MS": "10"}, "QUEUE_MAX_BACKOFF_MS must be >= QUEUE_RETRY_BACKOFF_MS"),
    ],
)
def test_each_invalid_value_is_named_with_the_reason(env, expected):
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert expected in str(e.value)


@pytest.mark.parametrize("env", [{"REDIS_URL": "redis://ops:hunter2@localhost:notaport/0"},
                                 {"API_URL": "http://ops:hunter2@:99999/graphql"}])
def test_a_password_in_a_bad_url_is_never_shown(env):
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert "hunter2" not in str(e.value) and "ops:***@" in str(e.value)


@pytest.mark.parametrize("env", [{"HOST": "::"}, {"HOST": "localhost"}, {"HOST": "127.0.0.1"},
                                 {"REDIS_URL": "unix:///run/redis.sock"},
                                 {"REDIS_URL": "rediss://:pw@[::1]:6380/2"},
                                 {"API_URL": "http://reference-api:9264/graphql"}])
def test_good_hosts_and_urls_pass(env):
    load_settings(env)


def test_redact_url_hides_only_the_password():
    from scheduler_service.config import redact_url

    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://ops:s3cret@host/0") == "redis://ops:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379", "REDIS_SENTINEL_MASTER": "jobs"}


@pytest.mark.parametrize("env, expected", [
    ({**SENTINELS, "REDIS_SENTINELS": "10.0.0.1"},
     "REDIS_SENTINELS must be a comma-separated list of host:port: '10.0.0.1' has no port"),
    ({**SENTINELS, "REDIS_SENTINELS": "a:26379,b:http"},
     "REDIS_SENTINELS must be a comma-separated list of host:port: the port of 'b:http' is not "
     "a number from 1 to 65535"),
    ({**SENTINELS, "REDIS_SENTINELS": "a:26379,,b:26379"}, "REDIS_SENTINELS must be a "
     "comma-separated list of host:port: an entry is empty"),
    ({**SENTINELS, "REDIS_SENTINELS": "300.1.1.1:26379"}, "REDIS_SENTINELS must be a "
     "comma-separated list of host:port: '300.1.1.1' is not a valid IPv4 address"),
    ({**SENTINELS, "REDIS_SENTINELS": "::1:26379"}, "REDIS_SENTINELS must be a comma-separated "
     "list of host:port: write an IPv6 address in brackets, e.g. [::1]:26379"),
    ({**SENTINELS, "REDIS_SENTINELS": "a:1,a:1"}, "'a:1' is listed twice"),
    ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS"),
    ({"REDIS_SENTINEL_MASTER": "jobs"}, "REDIS_SENTINELS is required with REDIS_SENTINEL_MASTER"),
    ({**SENTINELS, "REDIS_URL": "redis://r:6379/0"},
     "REDIS_URL and REDIS_SENTINELS are two ways to find Redis: set one, not both"),
    ({"REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD": "pw"},
     "REDIS_PASSWORD only applies with REDIS_SENTINELS (put it in REDIS_URL instead)"),
    ({"REDIS_DB": "2"}, "REDIS_DB only applies with REDIS_SENTINELS"),
    ({**SENTINELS, "REDIS_DB": "-1"}, "REDIS_DB must be an integer from 0 to 65535"),
])
def test_sentinel_settings_are_checked_and_name_the_variable(env, expected):
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert expected in str(e.value)


def test_sentinels_take_the_place_of_redis_url_even_in_production():
    base = {"SCHEDULER_ENV": "production", "API_SERVICE_ACCOUNT_TOKEN": "s3cret",
            "SCHEDULER_API_TOKEN": "t" * 16}
    s = load_settings({**base, "REDIS_SENTINELS": " s1:26379, [::1]:26380 ",
                       "REDIS_SENTINEL_MASTER": "jobs", "REDIS_PASSWORD": "data-hunter2",
                       "REDIS_SENTINEL_PASSWORD": "sentinel-hunter2", "REDIS_DB": "4"})
    assert s.redis_sentinels == (("s1", 26379), ("::1", 26380)) and s.redis_configured
    assert (s.redis_sentinel_master, s.redis_db) == ("jobs", 4)
    assert "hunter2" not in repr(s)
    from scheduler_service.redis_client import describe

    assert describe(s) == "master 'jobs' of sentinels s1:26379,[::1]:26380, db 4"
    # a bad sentinel list is not also reported as a missing REDIS_URL
    with pytest.raises(ConfigError) as e:
        load_settings({**base, "REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "jobs"})
    assert [p.split(" ", 1)[0] for p in e.value.problems] == ["REDIS_SENTINELS"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_settings({"SCHEDULER_ENV": "production", "QUEUE_CONCURRENCY": "abc", "PORT": "x",
                       "API_CIRCUIT_BREAKER_THRESHOLD": "-3"})
    names = {p.split(" ", 1)[0] for p in e.value.problems}
    assert {"QUEUE_CONCURRENCY", "PORT", "API_CIRCUIT_BREAKER_THRESHOLD", "REDIS_URL",
            "API_SERVICE_ACCOUNT_TOKEN"} <= names


def test_production_requires_secrets_and_dashboard_credentials():
    base = {"SCHEDULER_ENV": "production", "REDIS_URL": "redis://r:6379/0",
            "API_SERVICE_ACCOUNT_TOKEN": "s3cret", "SCHEDULER_API_TOKEN": "t" * 16}
    s = load_settings(base)
    assert s.admin_dashboard_enabled is False
    with pytest.raises(ConfigError, match="required in production when ADMIN_DASHBOARD_ENABLED=true"):
        load_settings({**base, "ADMIN_DASHBOARD_ENABLED": "true"})
    s = load_settings({**base, "ADMIN_DASHBOARD_ENABLED": "true", "ADMIN_DASHBOARD_USER": "ops",
                       "ADMIN_DASHBOARD_PASSWORD": "pw"})
    assert s.admin_dashboard_user == "ops"


@pytest.mark.parametrize("token, reason", [
    (DEFAULT_DEV_API_TOKEN, "must not be the development token"),
    ("short-token", "must be at least 16 characters"),
])
def test_production_refuses_a_weak_api_token(token, reason):
    base = {"SCHEDULER_ENV": "production", "REDIS_URL": "redis://r:6379/0",
            "API_SERVICE_ACCOUNT_TOKEN": "s3cret", "SCHEDULER_API_TOKEN": token}
    with pytest.raises(ConfigError) as e:
        load_settings(base)
    assert any(p.startswith("SCHEDULER_API_TOKEN " + reason) for p in e.value.problems)
    assert load_settings({**base, "SCHEDULER_API_TOKEN": "x" * 16}).scheduler_api_token == "x" * 16
    # outside production the development token is the default
    assert load_settings({}).scheduler_api_token == DEFAULT_DEV_API_TOKEN


def test_secret_values_never_appear_in_messages_or_repr():
    secret = "hunter2-very-secret"
    with pytest.raises(ConfigError) as e:
        load_settings({"API_SERVICE_ACCOUNT_TOKEN": "  ", "ADMIN_DASHBOARD_PASSWORD": secret})
    assert secret not in str(e.value)
    s = load_settings({"API_SERVICE_ACCOUNT_TOKEN": secret, "ADMIN_DASHBOARD_USER": "u",
                       "ADMIN_DASHBOARD_PASSWORD": secret})
    assert secret not in repr(s)


def test_settings_are_frozen_and_collect_cron_overrides():
    s = load_settings({"CRON_EVENT_EXPIRATION": "*/2 * * * *"})
    assert s.cron_overrides["CRON_EVENT_EXPIRATION"] == "*/2 * * * *"
    with pytest.raises(Exception):
        s.port = 1  # type: ignore[misc]
    assert isinstance(s.replace(port=1), Settings)


def test_configuration_page_is_the_rendering_of_the_settings_table():
    text = DOCS.read_text()
    assert reference_rst() in text, ("docs/configuration.rst differs from the settings table: "
                                     "paste scheduler_service.config.reference_rst() into it")
    defaults = Settings()
    for f in FIELDS:  # the table and the settings object agree on every attribute
        assert hasattr(defaults, f.attr), f.env
        if f.default is not None:
            assert getattr(defaults, f.attr) == f.default, f.env


def test_configuration_page_documents_every_variable():
    text = DOCS.read_text()
    documented = set(re.findall(r"^``([A-Z_]+)``", text, re.M))
    declared = {f.env for f in FIELDS}
    assert declared - documented == set(), "undocumented variables"
    assert documented - declared - {"CRON_EVENT_EXPIRATION", "CRON_SETTLEMENT_GROWTH",
                                    "CRON_STRUCTURE_MAINTENANCE", "CRON_RECURRING_REPAIR"} == set(), \
        "documented but unknown"
