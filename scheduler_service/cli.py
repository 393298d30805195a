"""The ``scheduler-service`` command line: one console script, one subcommand per role."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__
from .config import DEFAULT_DEV_API_TOKEN, load_settings
from .errors import ConfigError, PluginLoadError
from .green import WEB_WORKER_CLASSES
from .healthcheck import ROLES as HEALTH_ROLES
from .logs import configure_logging

logger = logging.getLogger(__name__)

#: Exit code when the configuration is invalid.
EXIT_CONFIG = 2
#: Exit code when a plugin fails to load.
EXIT_PLUGIN = 3


def _settings():
    """Load and validate settings, or exit with every problem named."""
    try:
        settings = load_settings()
    except ConfigError as e:
        click.echo(f"scheduler-service: {e}", err=True)
        sys.exit(EXIT_CONFIG)
    configure_logging(settings)
    if settings.supervisor_pid is not None:
        from .supervisor import stop_timeout_s, watch_parent

        watch_parent(settings.supervisor_pid, grace_s=stop_timeout_s(settings))
    return settings


def _registry():
    from .plugins import load_registry

    try:
        return load_registry()
    except PluginLoadError as e:
        click.echo(f"scheduler-service: plugin error: {e}", err=True)
        logger.error("plugin error: %s", e)
        sys.exit(EXIT_PLUGIN)


def _checked_registry(settings):
    """The registry, after checking every sweep's cron variable (exit 2 naming the bad ones)."""
    from .cron import configuration_problems

    registry = _registry()
    problems = configuration_problems(settings, registry)
    if problems:
        error = ConfigError(problems)
        click.echo(f"scheduler-service: {error}", err=True)
        logger.error("%s", error)
        sys.exit(EXIT_CONFIG)
    return registry


def _wait_for_redis(settings, role):
    """Wait until Redis answers (one log line per attempt); exit 0 on a stop signal first."""
    import signal

    from .redis_client import wait_until_reachable
    from .supervisor import stop_event_on_signals

    stop = stop_event_on_signals("giving up waiting for Redis")
    try:
        reached = wait_until_reachable(settings, role, stop)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not reached:
        sys.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scheduler-service")
def cli():
    """The scheduler service: durable timers, cron sweeps and job workers for campaigns.

    Configuration comes from environment variables (see docs/configuration.rst).
    """


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default: HOST).")
@click.option("--port", type=int, default=None, help="Port to bind (default: PORT, 9266).")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", type=int, default=8, show_default=True,
              help="Threads per worker (gthread workers only).")
@click.option("--worker-class", type=click.Choice(WEB_WORKER_CLASSES, case_sensitive=False),
              default=None, help="gevent or gthread (default: WEB_WORKER_CLASS, gevent).")
def web(host, port, workers, threads, worker_class):
    """Serve the HTTP API: /health, /metrics, /api/v1, the console at /admin/ and
    /admin/queues (gunicorn)."""
    settings = _settings()
    registry = _checked_registry(settings)
    from .webserver import BindError, GeventNotPatched, check_bind, serve, worker_class_option

    host, port = host or settings.host, port or settings.port
    worker_class = worker_class or settings.web_worker_class
    try:
        check_bind(host, port)
        worker_class_option(worker_class)
    except (BindError, GeventNotPatched) as e:
        click.echo(f"scheduler-service: {e}", err=True)
        logger.error("%s", e)
        sys.exit(EXIT_CONFIG)
    _wait_for_redis(settings, "web")
    serve(settings, registry, host, port, workers, threads, worker_class)


@cli.command()
@click.option("--processes", "-p", type=int, default=None,
              help="Worker processes (default: QUEUE_PROCESSES).")
@click.option("--threads", "-t", type=int, default=None,
              help="Threads per process (default: QUEUE_CONCURRENCY).")
@click.option("--queues", "-Q", multiple=True, help="Consume only these queues (repeatable).")
def worker(processes, threads, queues):
    """Run Dramatiq worker processes that execute the jobs of every plugin."""
    settings = _settings()
    registry = _registry()  # fail fast on a broken plugin, before anything starts
    processes = processes or settings.queue_processes
    threads = threads or settings.queue_concurrency
    if processes > 1:
        from .supervisor import Supervisor, self_command, stop_timeout_s

        extra = [arg for q in queues for arg in ("--queues", q)]
        commands = {f"worker-{i}": self_command("worker", "--processes", "1", "--threads",
                                                str(threads), *extra) for i in range(processes)}
        sys.exit(Supervisor(commands, grace_s=stop_timeout_s(settings)).run())
    from .worker import run_worker

    _wait_for_redis(settings, "worker")
    sys.exit(run_worker(settings, registry, threads, queues))


@cli.command()
def cron():
    """Fire the periodic sweeps on their cron triggers, and pump wall-clock timers.

    Any number may run: one leader (a Redis lock renewed every third of CRON_LEADER_TTL_S)
    fires; the others stand by and one takes over within CRON_LEADER_TTL_S when it dies.
    A tick only enqueues the sweep's job, once per tick in total. Schedules changed over
    /api/v1/schedules are obeyed within seconds. SIGINT or SIGTERM stops it and hands the
    lock over at once.
    """
    settings = _settings()
    registry = _checked_registry(settings)
    from .cron import unused_cron_variables
    from .cron.process import run_cron

    for name in unused_cron_variables(settings, registry):
        logger.warning("%s is set but no sweep reads it", name)
    _wait_for_redis(settings, "cron")
    sys.exit(run_cron(settings, registry, _stop_event()))


@cli.command()
def pump():
    """Promote due wall-clock timers into their queues, continuously.

    `cron` runs this pump already; this command is for extra pumps or operators.
    Several pumps may run at once: each timer is still promoted exactly once.
    """
    settings = _settings()
    registry = _registry()
    from .services import build_services
    from .repair import job_repair
    from .timers import WallTimerPump

    _wait_for_redis(settings, "pump")
    services = build_services(settings, registry)
    stop = _stop_event()
    timer_pump = WallTimerPump(services.jobs, settings.timer_pump_interval_ms,
                               settings.timer_pump_batch,
                               repair=job_repair(services)).start()
    logger.info("wall-timer pump running every %s ms at most", settings.timer_pump_interval_ms)
    stop.wait()
    timer_pump.stop()
    services.close()


@cli.command()
def subscriber():
    """Follow the main API's campaign messages (Redis pattern subscription).

    worldTimeAdvanced pumps that campaign's world timers and, once per campaign and
    SUBSCRIBER_COOLDOWN_MS across all replicas, enqueues EVENT_EXPIRATION (priority 8) and
    the plugins' world-time reactions; entityModified goes to the plugins' reactions.
    Invalid messages are logged and counted. After losing Redis it reconnects forever
    (backoff up to SUBSCRIBER_RECONNECT_MAX_MS) and enqueues a catch-up expiration for
    every campaign. Any number may run. SIGINT or SIGTERM stops it cleanly.
    """
    settings = _settings()
    registry = _registry()
    from .subscriber import run_subscriber

    _wait_for_redis(settings, "subscriber")
    sys.exit(run_subscriber(settings, registry))


def _stop_event():
    from .supervisor import stop_event_on_signals

    return stop_event_on_signals()


def _run_group(settings, env, extra=None):
    from .supervisor import Supervisor, self_command, stop_timeout_s

    commands = {
        "web": self_command("web"),
        "worker": self_command("worker"),
        "cron": self_command("cron"),
        "subscriber": self_command("subscriber"),
        **(extra or {}),
    }
    return Supervisor(commands, env=env, grace_s=stop_timeout_s(settings)).run()


@cli.command()
def run():
    """Run web, worker, cron (sweeps and the timer pump) and the subscriber as one process
    group (single machine).

    SIGINT or SIGTERM stops every process; if one dies, the others are stopped too.
    """
    settings = _settings()
    _checked_registry(settings)
    sys.exit(_run_group(settings, env=None))


@cli.command("reference-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to bind (default: REFERENCE_API_PORT, 9264).")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="SQLite file (default: REFERENCE_API_DB, else DATA_DIR/reference.sqlite3).")
@click.option("--seed", type=click.Choice(["demo", "none"]), default="none", show_default=True,
              help="Fill an empty database with the demo campaigns.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Threads of the single gunicorn worker.")
def reference_api(host, port, db, seed, threads):
    """Serve the reference campaign API (GraphQL on /graphql, SQLite storage, gunicorn)."""
    settings = _settings()
    if db:
        settings = settings.replace(reference_api_db=db)
    from .reference_api.app import check_settings
    from .reference_api.server import serve

    try:
        check_settings(settings)
    except ConfigError as e:
        click.echo(f"scheduler-service: {e}", err=True)
        sys.exit(EXIT_CONFIG)
    serve(settings, host, port or settings.reference_api_port, seed, threads)


@cli.command()
def dev():
    """Development stack: an embedded Redis (unless REDIS_URL or REDIS_SENTINELS is set), the
    reference API seeded with the demo campaigns, then `run` pointed at that API.

    Data is kept under DATA_DIR (default .data/). Every URL is printed at start.
    """
    settings = _settings()
    _checked_registry(settings)
    from .embedded_redis import EmbeddedRedis
    from .redis_client import describe as describe_redis
    from .supervisor import self_command

    env = dict(os.environ)
    env.setdefault("SCHEDULER_ENV", settings.env)
    embedded = None
    if not settings.redis_configured:
        embedded = EmbeddedRedis(Path(settings.data_dir) / "redis", persist=True).start()
        env["REDIS_URL"] = embedded.url
        settings = settings.replace(redis_url=embedded.url, redis_url_explicit=True)
    api_url = f"http://127.0.0.1:{settings.reference_api_port}/graphql"
    env["API_URL"] = api_url
    env.setdefault("API_SERVICE_ACCOUNT_TOKEN", settings.reference_api_key or "")
    base = f"http://127.0.0.1:{settings.port}"
    click.echo("\n".join([
        "scheduler-service dev is starting:",
        f"  health      {base}/health",
        f"  metrics     {base}/metrics",
        f"  console     {base}/admin/",
        f"  dashboard   {base}/admin/queues/",
        f"  job API     {base}/api/v1/jobs  (Authorization: Bearer "
        + ("dev-token)" if settings.scheduler_api_token == DEFAULT_DEV_API_TOKEN else "<SCHEDULER_API_TOKEN>)"),
        f"  redis       {describe_redis(settings)}" + ("  (embedded, data in %s)" % embedded.data_dir if embedded else ""),
        f"  campaign API {api_url}  (reference API, demo seed, data in {settings.reference_api_db_path})",
        "Press Ctrl-C to stop everything.",
    ]), err=True)
    try:
        code = _run_group(settings, env=env, extra={
            "reference-api": self_command("reference-api", "--seed", "demo",
                                          "--port", str(settings.reference_api_port)),
        })
    finally:
        if embedded is not None:
            embedded.stop()
    sys.exit(code)


@cli.command()
@click.option("--role", required=True, type=click.Choice(HEALTH_ROLES), help="The role to check.")
@click.option("--max-age", "max_age_s", type=click.FloatRange(min=0.1), default=None,
              help="Seconds after which a heartbeat counts as dead (default: three of the "
                   "role's heartbeats).")
def healthcheck(role, max_age_s):
    """Exit 0 if this host's process of ROLE is alive, 1 if not, saying why in one line.

    web and reference-api: GET /health answers 200. worker, cron, subscriber: the role's
    heartbeat in Redis from this host is fresh (and the subscriber is connected).
    """
    from .healthcheck import check

    try:
        settings = load_settings()
    except ConfigError as e:
        click.echo("unhealthy: " + " ".join(str(e).split()))
        sys.exit(1)
    verdict = check(role, settings, max_age_s=max_age_s)
    click.echo(f"{'healthy' if verdict.healthy else 'unhealthy'}: {role}: {verdict.reason}")
    sys.exit(0 if verdict.healthy else 1)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json):
    """List the loaded plugins and the job types, sweeps and reactions they register."""
    _settings()
    registry = _registry()
    data = {
        "plugins": dict(registry.plugins),
        "jobTypes": {
            name: {"plugin": jt.plugin, "priority": jt.priority, "maxRetries": jt.max_retries,
                   "timeLimitMs": jt.time_limit_ms, "description": jt.description}
            for name, jt in sorted(registry.job_types.items())
        },
        "sweeps": {name: {"plugin": s.plugin, "cron": s.cron, "envVar": s.env_var}
                   for name, s in sorted(registry.sweeps.items())},
        "reactions": [{"name": r.name, "event": r.event, "plugin": r.plugin} for r in registry.reactions],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("plugins:")
    for name, dist in data["plugins"].items():
        click.echo(f"  {name:20} {dist}")
    click.echo("job types:")
    for name, jt in data["jobTypes"].items():
        click.echo(f"  {name:32} plugin={jt['plugin']} priority={jt['priority']}")


from .ops_cli import register_operator_commands  # noqa: E402 - the operator commands

register_operator_commands(cli)


def main():
    """Console-script entry point."""
    cli(prog_name="scheduler-service")
