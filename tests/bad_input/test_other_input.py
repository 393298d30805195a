"""Bad input outside the REST API, as a table: command-line arguments, environment variables
and pub/sub messages.

Each case gives the exact exit code (or the subscriber's counter), checks that the error
names the argument, variable or field and why, and that the namespace holds exactly what it
held before (:func:`helpers.redis_state`). The operator commands run through click's runner
in this process against a real HTTP server on the test's services (so a command that did
reach the service would show in the snapshot); environment variables are checked through
the runner too, and as real processes for one case of each role.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from scheduler_service.cli import EXIT_CONFIG, cli
from scheduler_service.dispatch import send_job
from scheduler_service.subscriber.messages import MAX_BODY_BYTES
from scheduler_service.subscriber.status import read_stats
from scheduler_service.web import create_app
from helpers import redis_state, wait_for

USAGE = 2  # click's exit code of a usage error, and the operator commands' EXIT_USAGE


@pytest.fixture
def seeded(services):
    """The test's services holding one scheduled job, so that a snapshot is not empty."""
    send_job(services, "PING", "SYSTEM", {}, run_at_ms=32503680000000)
    return services


def snapshot(services):
    return redis_state(services.redis, services.settings.redis_namespace)


def every_key(services):
    """Every key of the namespace, bookkeeping included (a process that started would
    leave a heartbeat or a status)."""
    return sorted(services.redis.scan_iter(f"{services.settings.redis_namespace}:*"))


# -- command-line arguments -----------------------------------------------------------

@pytest.fixture
def web_url(seeded):
    """The web app on the test's services, served over HTTP in a thread."""
    server = make_server("127.0.0.1", 0, create_app(services=seeded), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def invoke(args, env=None):
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stderr


CLI_CASES = [
    # (arguments, exit code, what stderr must name)
    (["jobs", "list", "--limit", "0"], USAGE, "'--limit'"),
    (["jobs", "list", "--limit", "many"], USAGE, "'--limit'"),
    (["jobs", "list", "--state", "sleeping"], USAGE, "'--state'"),
    (["jobs", "create", "PING", "--campaign", "SYSTEM", "--priority", "11"], USAGE, "'--priority'"),
    (["jobs", "create", "PING"], USAGE, "'--campaign'"),
    (["jobs", "create", "PING", "--campaign", "SYSTEM", "--payload", "{not json"], USAGE,
     "--payload: not valid JSON"),
    (["jobs", "create", "PING", "--campaign", "SYSTEM", "--payload", "[1, 2]"], USAGE,
     "--payload: must be a JSON object"),
    (["jobs", "create", "PING", "--campaign", "SYSTEM", "--payload", "@/nonexistent/p.json"], USAGE,
     "--payload: cannot read"),
    (["jobs", "create", "PING", "--campaign", "SYSTEM", "--run-at", "2999-01-01T00:00:00Z",
      "--run-at-world-time", "2999-01-01T00:00:00Z"], USAGE, "--run-at or --run-at-world-time"),
    (["jobs", "cancel"], USAGE, "give job ids"),
    (["jobs", "cancel", "some-id", "--state", "queued"], USAGE, "not both"),
    (["jobs", "list", "--timeout", "0"], USAGE, "'--timeout'"),
    (["dead-letters", "requeue", "a", "b", "--payload", "{}"], USAGE, "--payload corrects one"),
    (["dead-letters", "discard", "--type", "PING"], USAGE, "--type and --campaign select"),
    (["schedules", "enable"], USAGE, "'NAME'"),
    (["healthcheck", "--role", "janitor"], USAGE, "'--role'"),
    (["reference-api", "--port", "70000"], USAGE, "'--port'"),
    (["web", "--port", "eighty"], USAGE, "'--port'"),
    (["frobnicate"], USAGE, "'frobnicate'"),
]


@pytest.mark.parametrize("args,code,names", CLI_CASES, ids=[" ".join(c[0])[:60] for c in CLI_CASES])
def test_bad_command_line_arguments(web_url, seeded, args, code, names):
    before = snapshot(seeded)
    url = ["--url", web_url] if args[0] in ("jobs", "schedules", "dead-letters") else []
    exit_code, err = invoke(args + url, env={"SCHEDULER_API_TOKEN": "dev-token"})
    assert exit_code == code, err
    assert names in err, err
    assert snapshot(seeded) == before


def test_a_bad_url_is_refused_before_any_request(seeded):
    before = snapshot(seeded)
    code, err = invoke(["jobs", "list", "--url", "ftp://example.org"])
    assert code == USAGE and "--url (or SCHEDULER_URL) must be an http(s) URL" in err
    assert snapshot(seeded) == before


def test_the_same_runner_sees_a_good_command_change_the_service(web_url, seeded):
    # the control of the table: through the same harness a valid create is stored
    before = snapshot(seeded)
    code, err = invoke(["jobs", "create", "PING", "--campaign", "SYSTEM", "--url", web_url],
                       env={"SCHEDULER_API_TOKEN": "dev-token"})
    assert code == 0, err
    assert snapshot(seeded) != before


# -- environment variables --------------------------------------------------------------

PRODUCTION = {"SCHEDULER_ENV": "production", "API_SERVICE_ACCOUNT_TOKEN": "main-api-key",
              "ADMIN_DASHBOARD_ENABLED": "false"}

ENV_CASES = [
    # (role, variables, what the message says)
    ("worker", {"QUEUE_CONCURRENCY": "lots"}, "QUEUE_CONCURRENCY must be an integer from 1 to 256, got 'lots'"),
    ("worker", {"QUEUE_PROCESSES": "0"}, "QUEUE_PROCESSES must be an integer from 1 to 64, got '0'"),
    ("web", {"PORT": "70000"}, "PORT must be an integer from 1 to 65535, got '70000'"),
    ("web", {"HOST": "no host!"}, "HOST must be an IP address or host name to bind"),
    ("worker", {"REDIS_URL": "http://localhost:6379/0"}, "REDIS_URL must be a URL with scheme redis"),
    ("cron", {"API_URL": "ftp://api.example.org/graphql"}, "API_URL must be a URL with scheme http or https"),
    ("subscriber", {"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of json, text, got 'xml'"),
    ("worker", {"SCHEDULER_ENV": "staging"}, "SCHEDULER_ENV must be one of development, production, test"),
    ("web", {"ADMIN_DASHBOARD_ENABLED": "maybe"}, "ADMIN_DASHBOARD_ENABLED must be a boolean"),
    ("web", {**PRODUCTION}, "SCHEDULER_API_TOKEN is required in production"),
    ("web", {**PRODUCTION, "SCHEDULER_API_TOKEN": "short"}, "SCHEDULER_API_TOKEN must be at least 16"),
    ("web", {**PRODUCTION, "SCHEDULER_API_TOKEN": "dev-token"},
     "SCHEDULER_API_TOKEN must not be the development token"),
    ("worker", {"QUEUE_RETRY_BACKOFF_MS": "5000", "QUEUE_MAX_BACKOFF_MS": "1000"},
     "QUEUE_MAX_BACKOFF_MS must be >= QUEUE_RETRY_BACKOFF_MS"),
    ("cron", {"CRON_EVENT_EXPIRATION": "every minute"}, "CRON_EVENT_EXPIRATION must be a cron expression"),
    ("pump", {"TIMER_PUMP_BATCH": "-1"}, "TIMER_PUMP_BATCH must be an integer from 1 to 100000, got '-1'"),
]


def child_environment(base_env, variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "REDIS_", "API_"))}
    return {**env, **base_env, **variables}


@pytest.mark.parametrize("role,variables,message", ENV_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}={next(iter(c[1].values()))}"[:50]
                              if len(c[1]) == 1 else f"{c[0]}-{c[2][:30]}" for c in ENV_CASES])
def test_bad_environment_variables_stop_a_role_before_it_starts(base_env, seeded, role, variables,
                                                                message):
    keys, before = every_key(seeded), snapshot(seeded)
    code, err = invoke([role], env={**base_env, **variables})
    assert code == EXIT_CONFIG, err
    assert "scheduler-service: invalid configuration" in err and f"- {message}" in err, err
    assert every_key(seeded) == keys and snapshot(seeded) == before


def test_a_bad_secret_variable_is_named_but_not_shown(base_env, seeded):
    value = "hooks.example.org/s3cr3t-path"
    code, err = invoke(["worker"], env={**base_env, "ALERT_WEBHOOK_URL": value})
    assert code == EXIT_CONFIG and "ALERT_WEBHOOK_URL must be a URL with scheme http or https" in err
    assert "<redacted>" in err and "s3cr3t" not in err


def test_every_problem_is_reported_at_once(base_env, seeded):
    code, err = invoke(["worker"], env={**base_env, "PORT": "0", "LOG_LEVEL": "loud",
                                        "QUEUE_CONCURRENCY": "x"})
    assert code == EXIT_CONFIG
    for name in ("PORT", "LOG_LEVEL", "QUEUE_CONCURRENCY"):
        assert name in err


@pytest.mark.parametrize("role,variables,message", [
    ("worker", {"QUEUE_CONCURRENCY": "lots"}, "QUEUE_CONCURRENCY must be an integer"),
    ("web", {**PRODUCTION}, "SCHEDULER_API_TOKEN is required in production"),
    ("cron", {"CRON_EVENT_EXPIRATION": "every minute"}, "CRON_EVENT_EXPIRATION must be a cron expression"),
    ("subscriber", {"REDIS_URL": "redis://:pw@[::1/0"}, "REDIS_URL must be a URL"),
])
def test_a_real_process_with_a_bad_variable_exits_2_at_once(base_env, seeded, role, variables, message):
    keys, before = every_key(seeded), snapshot(seeded)
    proc = subprocess.run([sys.executable, "-m", "scheduler_service", role],
                          env=child_environment(base_env, variables), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert message in proc.stderr
    assert "pw@" not in proc.stderr  # a URL's password is never echoed
    assert every_key(seeded) == keys and snapshot(seeded) == before


# -- pub/sub messages -----------------------------------------------------------------------

CAMPAIGN = "camp-bad-input"
WORLD = f"campaign.{CAMPAIGN}.worldTimeAdvanced"
ENTITY = f"campaign.{CAMPAIGN}.entityModified"
NOON = "2026-03-01T12:00:00Z"


def entity(**changes):
    body = {"campaignId": CAMPAIGN, "entityType": "Event", "entityId": "e1", "operation": "UPDATE"}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...})


PUBSUB_CASES = [
    # (id, channel, body, event counted, reason counted, what the log line says)
    ("malformed-json", WORLD, "{not json", "worldTimeAdvanced", "bad_json", "body is not JSON"),
    ("not-an-object", WORLD, "[1, 2]", "worldTimeAdvanced", "not_object", "body must be a JSON object"),
    ("missing-newTime", WORLD, json.dumps({"campaignId": CAMPAIGN}), "worldTimeAdvanced",
     "missing_field", "newTime is missing"),
    ("newTime-a-number", WORLD, json.dumps({"campaignId": CAMPAIGN, "newTime": 1740830400000}),
     "worldTimeAdvanced", "bad_time", "newTime must be an ISO-8601 time"),
    ("previousTime-not-a-time", WORLD, json.dumps({"campaignId": CAMPAIGN, "newTime": NOON,
                                                   "previousTime": "yesterday"}),
     "worldTimeAdvanced", "bad_time", "previousTime must be an ISO-8601 time"),
    ("campaignId-a-number", WORLD, json.dumps({"campaignId": 42, "newTime": NOON}),
     "worldTimeAdvanced", "bad_value", "campaignId must be a non-empty string"),
    ("missing-campaignId", ENTITY, entity(campaignId=...), "entityModified", "missing_field",
     "campaignId is missing"),
    ("wrong-campaign", ENTITY, entity(campaignId="someone-else"), "entityModified",
     "campaign_mismatch", "campaignId 'someone-else' is not the channel's"),
    ("unknown-entityType", ENTITY, entity(entityType="Dragon"), "entityModified", "bad_value",
     "entityType must be one of"),
    ("unknown-operation", ENTITY, entity(operation="UPSERT"), "entityModified", "bad_value",
     "operation must be one of"),
    ("missing-entityId", ENTITY, entity(entityId=...), "entityModified", "missing_field",
     "entityId is missing"),
    ("empty-entityId", ENTITY, entity(entityId=""), "entityModified", "bad_value",
     "entityId must be a non-empty string"),
    ("oversized", ENTITY, json.dumps({"campaignId": CAMPAIGN, "pad": "x" * MAX_BODY_BYTES}),
     "entityModified", "too_large", f"body larger than {MAX_BODY_BYTES} bytes"),
    ("non-utf8", WORLD, b'{"campaignId": "\xff\xfe"}', "worldTimeAdvanced", "bad_json",
     "body is not JSON"),
    ("campaign-id-too-long", f"campaign.{'c' * 300}.worldTimeAdvanced",
     json.dumps({"campaignId": "c" * 300, "newTime": NOON}), "unknown", "channel",
     "not a campaign message channel"),
]


@pytest.mark.parametrize("channel,body,event,reason,logged", [c[1:] for c in PUBSUB_CASES],
                         ids=[c[0] for c in PUBSUB_CASES])
def test_bad_pubsub_messages_are_logged_counted_and_change_nothing(
        seeded, subscribers, redis_client, caplog, channel, body, event, reason, logged):
    sub = subscribers.start(seeded)
    prefix = f"{seeded.settings.redis_namespace}:"
    before = snapshot(seeded)
    caplog.set_level(logging.WARNING, logger="scheduler_service.subscriber")
    assert redis_client.publish(channel, body) >= 1
    counter = f"invalid:{event}:{reason}"
    # the outcome is the last counter the subscriber writes for a message
    wait_for(lambda: read_stats(seeded.redis, prefix).get(f"outcome:{event}:invalid") == 1,
             timeout=15, message=f"the {counter} counter")
    stats = read_stats(seeded.redis, prefix)
    assert stats[f"received:{event}"] == 1 and stats[counter] == 1
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("scheduler_service.subscriber")]
    assert any(logged in line for line in lines), lines
    assert any(getattr(r, "reason", None) == reason for r in caplog.records)
    # the subscriber carries on: the next message is read and counted too
    assert redis_client.publish(WORLD, "still not json") >= 1
    wait_for(lambda: read_stats(seeded.redis, prefix).get("outcome:worldTimeAdvanced:invalid", 0)
             >= (2 if event == "worldTimeAdvanced" else 1), timeout=15,
             message="the next message to be read")
    assert sub.connected.is_set()
    assert snapshot(seeded) == before


def test_a_message_of_an_event_not_in_the_contract_reaches_nothing(seeded, subscribers, redis_client):
    subscribers.start(seeded)
    prefix = f"{seeded.settings.redis_namespace}:"
    before = snapshot(seeded)
    # the subscriber listens to the contract's two events only: nobody receives this one
    assert redis_client.publish(f"campaign.{CAMPAIGN}.worldTimeReversed",
                                json.dumps({"campaignId": CAMPAIGN, "newTime": NOON})) == 0
    assert redis_client.publish(WORLD, "{") >= 1
    wait_for(lambda: read_stats(seeded.redis, prefix).get("invalid:worldTimeAdvanced:bad_json") == 1,
             timeout=15, message="the following message")
    assert not any(k.startswith("received:unknown") for k in read_stats(seeded.redis, prefix))
    assert snapshot(seeded) == before
