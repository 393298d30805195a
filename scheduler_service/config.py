"""Settings: read once from the environment at start-up, validated, then frozen.

Nothing else in the service reads ``os.environ``. Every variable is declared once in
:data:`FIELDS` with its parser, default and whether it is a secret; the documentation
page ``docs/configuration.rst`` is checked against this table by the tests.

A missing or invalid value never stops at the first problem: :func:`load_settings`
collects every problem and raises one :class:`~scheduler_service.errors.ConfigError`
naming each variable and why. Secret values never appear in those messages.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError
from .green import DEFAULT_WEB_WORKER_CLASS, WEB_WORKER_CLASS_VARIABLE, WEB_WORKER_CLASSES

ENVIRONMENTS = ("development", "production", "test")

#: Port of the web process (the original service used 9266).
DEFAULT_PORT = 9266
#: Redis used when ``REDIS_URL`` is unset outside production.
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: Endpoint of the main campaign API.
DEFAULT_API_URL = "http://localhost:9264/graphql"
#: Service-account key accepted by the reference API outside production.
DEFAULT_DEV_API_KEY = "dev-key"
#: Bearer token of the REST API outside production.
DEFAULT_DEV_API_TOKEN = "dev-token"
#: Shortest SCHEDULER_API_TOKEN a production web app starts with.
MIN_PRODUCTION_TOKEN_LENGTH = 16
#: Port of the reference campaign API (the same as the default API_URL's).
DEFAULT_REFERENCE_API_PORT = 9264
#: File name of the reference API's SQLite database under DATA_DIR.
DEFAULT_REFERENCE_API_DB_NAME = "reference.sqlite3"


#: Longest retry delay: Dramatiq refuses delays of 7 days or more.
MAX_DELAY_MS = 7 * 86_400_000 - 1


class _Invalid(ValueError):
    """A parser's complaint; the message completes "NAME must be ..."."""


def _int(minimum=None, maximum=None):
    def parse(raw: str) -> int:
        bounds = _bounds_text(minimum, maximum)
        try:
            value = int(raw.strip())
        except ValueError:
            raise _Invalid(f"must be an integer{bounds}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise _Invalid(f"must be an integer{bounds}")
        return value

    return parse


def _bounds_text(minimum, maximum):
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _choice(*choices):
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise _Invalid("must be a boolean (true/false)")


def redact_url(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _check_host(host: str) -> str | None:
    """Why ``host`` is not an IP address or a host name, or None when it is one."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", name):
        return f"{host!r} is not a valid IPv4 address"
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"{host!r} is not a valid host name or IP address"
    return None


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _url(*schemes, db_path: bool = False):
    """A URL of one of ``schemes`` with a real host and port (``unix:`` needs a path).

    Args:
        schemes: the accepted schemes.
        db_path: the path may only be a Redis database number (``/0``).
    """
    def parse(raw: str) -> str:
        value = raw.strip()
        wanted = f"must be a URL with scheme {' or '.join(schemes)}"
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as e:
            raise _Invalid(f"{wanted} ({e})") from None
        if parts.scheme not in schemes:
            raise _Invalid(wanted)
        if parts.scheme == "unix":
            if not parts.path:
                raise _Invalid(f"{wanted}: unix:// needs the socket's path")
            return value
        if not parts.netloc or not parts.hostname:
            raise _Invalid(f"{wanted} and a host, e.g. {parts.scheme}://localhost")
        problem = _check_host(parts.hostname)
        if problem:
            raise _Invalid(f"{wanted}: {problem}")
        if port == 0:
            raise _Invalid(f"{wanted}: port 0 is not a port")
        if db_path and parts.path not in ("", "/") and not re.fullmatch(r"/\d{1,5}", parts.path):
            raise _Invalid(f"{wanted}: the path must be a database number such as /0")
        return value

    return parse


def _host_ports(raw: str) -> tuple[tuple[str, int], ...]:
    """A comma-separated list of ``host:port`` (``[v6]:port`` for an IPv6 address)."""
    wanted = "must be a comma-separated list of host:port"
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            raise _Invalid(f"{wanted}: an entry is empty")
        host, sep, port_text = item.rpartition(":")
        if not sep:
            raise _Invalid(f"{wanted}: {item!r} has no port")
        if not host:
            raise _Invalid(f"{wanted}: {item!r} has no host")
        if ":" in host and not (host.startswith("[") and host.endswith("]")):
            raise _Invalid(f"{wanted}: write an IPv6 address in brackets, e.g. [::1]:26379")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise _Invalid(f"{wanted}: the port of {item!r} is not a number from 1 to 65535")
        problem = _check_host(host)
        if problem:
            raise _Invalid(f"{wanted}: {problem}")
        entry = (host[1:-1] if host.startswith("[") else host, int(port_text))
        if entry in found:
            raise _Invalid(f"{wanted}: {item!r} is listed twice")
        found.append(entry)
    return tuple(found)


def _host(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _Invalid("must not be empty")
    problem = _check_host(value)
    if problem:
        raise _Invalid(f"must be an IP address or host name to bind: {problem}")
    return value


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _Invalid("must not be empty")
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value == "WARN":
        value = "WARNING"
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise _Invalid("must be one of debug, info, warning, error, critical")
    return value


@dataclass(frozen=True)
class Field:
    """One environment variable: its attribute, parser, default and documentation."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    secret: bool = False


#: Every environment variable the service reads, in documentation order.
FIELDS: tuple[Field, ...] = (
    Field("SCHEDULER_ENV", "env", _choice(*ENVIRONMENTS), "development",
          "development, production or test; production makes secrets mandatory."),
    Field("HOST", "host", _host, "127.0.0.1",
          "Interface the web process binds; set 0.0.0.0 to listen on every interface (the "
          "Docker image does)."),
    Field("PORT", "port", _int(1, 65535), DEFAULT_PORT, "Port of the web process."),
    Field(WEB_WORKER_CLASS_VARIABLE, "web_worker_class", _choice(*WEB_WORKER_CLASSES),
          DEFAULT_WEB_WORKER_CLASS,
          "gunicorn worker class of the web process: gevent (one greenlet a request) or "
          "gthread (a pool of --threads threads a worker); `web --worker-class` overrides it."),
    Field("REDIS_URL", "redis_url", _url("redis", "rediss", "unix", db_path=True), None,
          "Redis holding queues, timers and job records. Required in production unless "
          "REDIS_SENTINELS is set; elsewhere defaults to redis://localhost:6379/0, and `dev` "
          "starts an embedded Redis."),
    Field("REDIS_SENTINELS", "redis_sentinels", _host_ports, None,
          "Redis Sentinel nodes as host:port,host:port: every role then asks them for the "
          "current master and follows it through a failover (see the Redis failover page). "
          "Needs REDIS_SENTINEL_MASTER; takes the place of REDIS_URL, which must then be unset."),
    Field("REDIS_SENTINEL_MASTER", "redis_sentinel_master", _text, None,
          "Name under which the sentinels monitor the master (their `sentinel monitor` line)."),
    Field("REDIS_PASSWORD", "redis_password", _text, None,
          "Password of the master and replicas found through the sentinels (their "
          "requirepass). With REDIS_URL, the password goes in the URL instead.", secret=True),
    Field("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password", _text, None,
          "Password of the sentinels themselves, when they have a requirepass of their own.",
          secret=True),
    Field("REDIS_DB", "redis_db", _int(0, 65535), None,
          "Database number on the master found through the sentinels; 0 when unset. With "
          "REDIS_URL, the database is the URL's path."),
    Field("REDIS_NAMESPACE", "redis_namespace", _text, "scheduler",
          "Prefix of every Redis key the service writes (queues included)."),
    Field("API_URL", "api_url", _url("http", "https"), DEFAULT_API_URL,
          "GraphQL endpoint of the main campaign API."),
    Field("API_SERVICE_ACCOUNT_TOKEN", "api_token", _text, None,
          "Service-account credential for the main API. Required in production; "
          "defaults to dev-key elsewhere.", secret=True),
    Field("API_AUTH_SCHEME", "api_auth_scheme", _choice("api-key", "bearer"), "api-key",
          "Send the token as an x-api-key header or as Authorization: Bearer."),
    Field("API_REQUEST_TIMEOUT_MS", "api_request_timeout_ms", _int(1, 600_000), 10000,
          "Timeout of each HTTP call to the main API."),
    Field("API_MAX_RETRIES", "api_max_retries", _int(0, 20), 3,
          "Retries of a transient API failure within one call."),
    Field("API_CIRCUIT_BREAKER_THRESHOLD", "api_breaker_threshold", _int(1, 10_000), 5,
          "Consecutive transient failures that open the circuit breaker."),
    Field("API_CIRCUIT_BREAKER_DURATION_MS", "api_breaker_duration_ms", _int(1, 86_400_000), 30000,
          "How long the breaker stays open before a trial call."),
    Field("API_RATE_LIMIT_PER_SECOND", "api_rate_limit_per_second", _int(0, 1_000_000), 50,
          "Client-side limit of API calls per second per process; 0 turns it off."),
    Field("API_CACHE_TTL_S", "api_cache_ttl_s", _int(0, 86_400), 300,
          "Lifetime of cached campaigns and effect definitions; 0 turns caching off."),
    Field("CAMPAIGN_CACHE_MS", "campaign_cache_ms", _int(0, 600_000), 2000,
          "How long an answer of the main API about a campaign (does it exist, its world time) "
          "is reused when checking pub/sub messages and new jobs; 0 asks every time."),
    Field("QUEUE_MAX_RETRIES", "queue_max_retries", _int(0, 100), 3,
          "Retries of a failing job before it is dead-lettered (job types may override)."),
    Field("QUEUE_RETRY_BACKOFF_MS", "queue_retry_backoff_ms", _int(1, MAX_DELAY_MS), 5000,
          "First retry delay; each further retry doubles it (with jitter)."),
    Field("QUEUE_MAX_BACKOFF_MS", "queue_max_backoff_ms", _int(1, MAX_DELAY_MS), 3600000,
          "Upper bound of a retry delay."),
    Field("QUEUE_CONCURRENCY", "queue_concurrency", _int(1, 256), 5,
          "Worker threads per worker process."),
    Field("QUEUE_PROCESSES", "queue_processes", _int(1, 64), 1,
          "Worker processes started by `scheduler-service worker`."),
    Field("QUEUE_HEARTBEAT_TIMEOUT_MS", "queue_heartbeat_timeout_ms", _int(1000, 86_400_000), 60000,
          "How long a silent worker keeps its unacknowledged jobs before they are redelivered."),
    Field("QUEUE_MAINTENANCE_CHANCE", "queue_maintenance_chance", _int(0, 1_000_000), 20_000,
          "Broker commands per million that also run queue maintenance (redelivering the "
          "unacknowledged jobs of workers whose heartbeat is older than the timeout)."),
    Field("QUEUE_DEAD_LETTER_TTL_MS", "queue_dead_letter_ttl_ms", _int(1000, 10 * 365 * 86_400_000), 7 * 86400 * 1000,
          "How long a dead-lettered job is kept."),
    Field("JOB_TIME_LIMIT_MS", "job_time_limit_ms", _int(1000, 7 * 86_400_000), 600000,
          "Default time limit of one job attempt (job types may override)."),
    Field("QUEUE_POLL_INTERVAL_MS", "queue_poll_interval_ms", _int(10, 5000), 100,
          "Longest a worker's idle queue consumer sleeps between fetches (bounds start lateness)."),
    Field("TIMER_PUMP_INTERVAL_MS", "timer_pump_interval_ms", _int(5, 5000), 50,
          "Longest the wall-timer pump sleeps between checks (it also wakes at the next due time)."),
    Field("TIMER_PUMP_BATCH", "timer_pump_batch", _int(1, 100000), 1000,
          "Timers promoted per Lua call of the pump."),
    Field("JOB_RETENTION_HOURS", "job_retention_hours", _int(1, 87_600), 168,
          "How long finished job records (succeeded, dead, cancelled) and their history are kept."),
    Field("SCHEDULER_API_TOKEN", "scheduler_api_token", _text, None,
          "Bearer token every /api/v1 request must carry. Required in production; "
          "defaults to dev-token elsewhere.", secret=True),
    Field("LOG_LEVEL", "log_level", _log_level, "INFO", "debug, info, warning, error or critical."),
    Field("LOG_FORMAT", "log_format", _choice("json", "text"), "json",
          "json: one JSON object a line; text: for people at a terminal."),
    Field("EVENT_EXPIRATION_GRACE_MINUTES", "event_expiration_grace_minutes", _int(0, 35_791), 5,
          "World-time minutes an event may be overdue before it is expired."),
    Field("EVENT_EXPIRATION_CONCURRENCY", "event_expiration_concurrency", _int(1, 100), 10,
          "expireEvent calls one EVENT_EXPIRATION job keeps in flight at once."),
    Field("SIMULATION_MAX_STEPS", "simulation_max_steps", _int(1, 10_000_000), 100_000,
          "Rule occurrences one settlement-unit job applies at most; past that it writes back "
          "and continues in a new job."),
    Field("RECURRING_MAX_PER_PASS", "recurring_max_per_pass", _int(1, 100_000), 1000,
          "Occurrences one pass of a recurring job creates at most (a catch-up with "
          "catchUp all); past that, the next pass goes on at once."),
    Field("SUBSCRIBER_COOLDOWN_MS", "subscriber_cooldown_ms", _int(0, 86_400_000), 5000,
          "Window in which further worldTimeAdvanced messages of a campaign only pump its "
          "timers (no second expiration job or world-time reactions), across all subscriber "
          "replicas; 0 turns deduplication off."),
    Field("SUBSCRIBER_RECONNECT_MAX_MS", "subscriber_reconnect_max_ms", _int(100, 3_600_000), 30000,
          "Longest wait between the subscriber's attempts to reconnect to Redis "
          "(the wait doubles from 0.5 s up to this)."),
    Field("CRON_LEADER_TTL_S", "cron_leader_ttl_s", _int(1, 3600), 15,
          "Lifetime of the cron leader lock; the leader renews it every third of it, and a "
          "standby takes over at most this long (plus a third) after the leader dies."),
    Field("CRON_MISFIRE_GRACE_S", "cron_misfire_grace_s", _int(1, 86400), 60,
          "How late a sweep tick may still run (missed ticks coalesce into one run); keep it "
          "above CRON_LEADER_TTL_S so a tick due during a leader hand-over still runs."),
    Field("ADMIN_DASHBOARD_ENABLED", "admin_dashboard_enabled", _bool, None,
          "Serve the scheduler console at /admin/ and the queue dashboard at /admin/queues. "
          "Defaults to true outside production, false in production."),
    Field("ADMIN_DASHBOARD_USER", "admin_dashboard_user", _text, None,
          "Basic-auth user of the console and the dashboard (the actor of the console's "
          "changes); required with the password in production."),
    Field("ADMIN_DASHBOARD_PASSWORD", "admin_dashboard_password", _text, None,
          "Basic-auth password of the console and the dashboard.", secret=True),
    Field("SCHEDULER_SUPERVISOR_PID", "supervisor_pid", _int(1), None,
          "Set by `run`, `dev` and a multi-process `worker` on the processes they start; a "
          "process whose parent is no longer that pid stops itself within about a second. "
          "Not for users to set."),
    Field("SHUTDOWN_GRACE_S", "shutdown_grace_s", _int(1, 3600), 30,
          "On SIGTERM, how long a process lets the work in hand finish before handing back "
          "what is left and exiting."),
    Field("ALERT_WEBHOOK_URL", "alert_webhook_url", _url("http", "https"), None,
          "Receives a JSON POST for each alert (dead letter, breaker open, failing sweep, "
          "subscriber disconnected, cron leadership change); unset turns alerts off.",
          secret=True),
    Field("ALERT_COOLDOWN_S", "alert_cooldown_s", _int(0, 86_400), 300,
          "Repeats of one alert within this many seconds are suppressed; 0 sends every one."),
    Field("ALERT_SUBSCRIBER_DOWN_S", "alert_subscriber_down_s", _int(1, 86_400), 60,
          "How long a subscriber stays disconnected from Redis before it alerts."),
    Field("DATA_DIR", "data_dir", _text, ".data",
          "Where `dev` keeps the embedded Redis and the reference API's database."),
    Field("REFERENCE_API_KEY", "reference_api_key", _text, None,
          "API key the reference campaign API accepts (x-api-key or Authorization: Bearer). "
          "Required in production; defaults to dev-key elsewhere.", secret=True),
    Field("REFERENCE_API_PORT", "reference_api_port", _int(1, 65535), DEFAULT_REFERENCE_API_PORT,
          "Port of `scheduler-service reference-api`."),
    Field("REFERENCE_API_DB", "reference_api_db", _text, None,
          "SQLite file of the reference API; DATA_DIR/reference.sqlite3 when unset."),
    Field("REFERENCE_API_TEST_HOOKS", "reference_api_test_hooks", _bool, False,
          "Let the reference API honour test-only request headers (x-test-delay-ms). "
          "Refused in production."),
)


@dataclass(frozen=True)
class Settings:
    """The validated configuration; build it with :func:`load_settings`."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    web_worker_class: str = DEFAULT_WEB_WORKER_CLASS
    redis_url: str = DEFAULT_REDIS_URL
    redis_url_explicit: bool = False
    #: Sentinel nodes ``((host, port), ...)``; empty when Redis is found through REDIS_URL.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_db: int = 0
    redis_namespace: str = "scheduler"
    api_url: str = DEFAULT_API_URL
    api_token: str = field(default=DEFAULT_DEV_API_KEY, repr=False)
    api_auth_scheme: str = "api-key"
    api_request_timeout_ms: int = 10000
    api_max_retries: int = 3
    api_breaker_threshold: int = 5
    api_breaker_duration_ms: int = 30000
    api_rate_limit_per_second: int = 50
    api_cache_ttl_s: int = 300
    campaign_cache_ms: int = 2000
    queue_max_retries: int = 3
    queue_retry_backoff_ms: int = 5000
    queue_max_backoff_ms: int = 3600000
    queue_concurrency: int = 5
    queue_processes: int = 1
    queue_heartbeat_timeout_ms: int = 60000
    queue_maintenance_chance: int = 20_000
    queue_dead_letter_ttl_ms: int = 7 * 86400 * 1000
    job_time_limit_ms: int = 600000
    queue_poll_interval_ms: int = 100
    timer_pump_interval_ms: int = 50
    timer_pump_batch: int = 1000
    job_retention_hours: int = 168
    scheduler_api_token: str = field(default="dev-token", repr=False)
    log_level: str = "INFO"
    log_format: str = "json"
    event_expiration_grace_minutes: int = 5
    event_expiration_concurrency: int = 10
    simulation_max_steps: int = 100_000
    recurring_max_per_pass: int = 1000
    subscriber_cooldown_ms: int = 5000
    subscriber_reconnect_max_ms: int = 30000
    cron_leader_ttl_s: int = 15
    cron_misfire_grace_s: int = 60
    admin_dashboard_enabled: bool = True
    admin_dashboard_user: str | None = None
    admin_dashboard_password: str | None = field(default=None, repr=False)
    supervisor_pid: int | None = None
    shutdown_grace_s: int = 30
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_cooldown_s: int = 300
    alert_subscriber_down_s: int = 60
    data_dir: str = ".data"
    #: None only in production without REFERENCE_API_KEY (the reference API then refuses to start).
    reference_api_key: str | None = field(default=DEFAULT_DEV_API_KEY, repr=False)
    reference_api_port: int = DEFAULT_REFERENCE_API_PORT
    reference_api_db: str | None = None
    reference_api_test_hooks: bool = False
    #: Every ``CRON_*`` variable not declared above, for the sweeps that name them as overrides.
    cron_overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def redis_configured(self) -> bool:
        """Whether Redis was configured (REDIS_URL or the sentinels), not left to the default."""
        return self.redis_url_explicit or bool(self.redis_sentinels)

    @property
    def reference_api_db_path(self) -> str:
        """The reference API's SQLite file: REFERENCE_API_DB, else DATA_DIR/reference.sqlite3."""
        return self.reference_api_db or os.path.join(self.data_dir, DEFAULT_REFERENCE_API_DB_NAME)

    def replace(self, **changes) -> "Settings":
        """Return a copy with some values changed (used by `dev` and by tests)."""
        return dataclasses.replace(self, **changes)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an environment mapping.

    Args:
        environ: the variables to read; ``os.environ`` when omitted.

    Returns:
        The frozen :class:`Settings`.

    Raises:
        ConfigError: naming every missing or invalid variable at once.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    values: dict[str, Any] = {}
    for f in FIELDS:
        raw = environ.get(f.env)
        if raw is None or raw == "":
            values[f.attr] = f.default
            continue
        try:
            values[f.attr] = f.parse(raw)
        except _Invalid as e:
            shown = "<redacted>" if f.secret else repr(redact_url(raw) if f.attr.endswith("_url") else raw)
            problems.append(f"{f.env} {e}, got {shown}")
            values[f.attr] = f.default

    env = values["env"]
    production = env == "production"
    values["redis_url_explicit"] = values["redis_url"] is not None
    _check_redis_choice(values, problems, production)
    if values["redis_url"] is None:
        values["redis_url"] = DEFAULT_REDIS_URL
    if values["api_token"] is None:
        if production and "API_SERVICE_ACCOUNT_TOKEN" not in _bad(problems):
            problems.append("API_SERVICE_ACCOUNT_TOKEN is required in production")
        values["api_token"] = DEFAULT_DEV_API_KEY
    if values["scheduler_api_token"] is None:
        if production and "SCHEDULER_API_TOKEN" not in _bad(problems):
            problems.append("SCHEDULER_API_TOKEN is required in production")
        values["scheduler_api_token"] = DEFAULT_DEV_API_TOKEN
    elif production and values["scheduler_api_token"] == DEFAULT_DEV_API_TOKEN:
        problems.append("SCHEDULER_API_TOKEN must not be the development token in production")
    elif production and len(values["scheduler_api_token"]) < MIN_PRODUCTION_TOKEN_LENGTH:
        problems.append(f"SCHEDULER_API_TOKEN must be at least {MIN_PRODUCTION_TOKEN_LENGTH} "
                        "characters in production")
    if values["admin_dashboard_enabled"] is None:
        values["admin_dashboard_enabled"] = not production
    user, password = values["admin_dashboard_user"], values["admin_dashboard_password"]
    if (user is None) != (password is None):
        problems.append("ADMIN_DASHBOARD_USER and ADMIN_DASHBOARD_PASSWORD must be set together")
    elif production and values["admin_dashboard_enabled"] and user is None:
        problems.append(
            "ADMIN_DASHBOARD_USER and ADMIN_DASHBOARD_PASSWORD are required in production "
            "when ADMIN_DASHBOARD_ENABLED=true"
        )
    if values["reference_api_key"] is None and not production:
        values["reference_api_key"] = DEFAULT_DEV_API_KEY
    if production and values["reference_api_test_hooks"]:
        problems.append("REFERENCE_API_TEST_HOOKS must not be enabled in production "
                        "(test-only request hooks such as x-test-delay-ms)")
    if values["queue_max_backoff_ms"] < values["queue_retry_backoff_ms"]:
        problems.append("QUEUE_MAX_BACKOFF_MS must be >= QUEUE_RETRY_BACKOFF_MS")

    if problems:
        raise ConfigError(problems)
    values["cron_overrides"] = MappingProxyType(
        {k: v for k, v in environ.items()
         if k.startswith("CRON_") and v.strip() and k not in _DECLARED}
    )
    return Settings(**values)


_DECLARED = frozenset(f.env for f in FIELDS)


def _check_redis_choice(values: dict, problems: list[str], production: bool) -> None:
    """Redis is found one way: REDIS_URL, or the sentinels with their master's name."""
    bad = _bad(problems)
    url, sentinels, master = (values["redis_url"], values["redis_sentinels"],
                              values["redis_sentinel_master"])
    if url is not None and sentinels is not None:
        problems.append("REDIS_URL and REDIS_SENTINELS are two ways to find Redis: set one, "
                        "not both")
    if sentinels is not None and master is None and "REDIS_SENTINEL_MASTER" not in bad:
        problems.append("REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS (the name "
                        "the sentinels monitor the master under)")
    if master is not None and sentinels is None and "REDIS_SENTINELS" not in bad:
        problems.append("REDIS_SENTINELS is required with REDIS_SENTINEL_MASTER")
    if sentinels is None and "REDIS_SENTINELS" not in bad:
        for name, attr, instead in (("REDIS_PASSWORD", "redis_password", "put it in REDIS_URL"),
                                    ("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password", None),
                                    ("REDIS_DB", "redis_db", "use REDIS_URL's path")):
            if values[attr] is not None:
                problems.append(f"{name} only applies with REDIS_SENTINELS"
                                + (f" ({instead} instead)" if instead and url is not None else ""))
    if (production and url is None and sentinels is None
            and not {"REDIS_URL", "REDIS_SENTINELS"} & bad):
        problems.append("REDIS_URL is required in production (or REDIS_SENTINELS with "
                        "REDIS_SENTINEL_MASTER)")
    values["redis_sentinels"] = sentinels or ()
    if values["redis_db"] is None:
        values["redis_db"] = 0


def _shown_default(f: Field) -> str:
    if f.default is None:
        return "(none)"
    if isinstance(f.default, bool):
        return "true" if f.default else "false"
    return str(f.default)


def reference_rst() -> str:
    """The variables section of ``docs/configuration.rst``, rendered from :data:`FIELDS`.

    The test suite holds the page to this text, so the reference cannot drift from the code.
    """
    blocks = []
    for f in FIELDS:
        text = f"{f.doc} Default: ``{_shown_default(f)}``."
        if f.secret:
            text += " Secret: never logged."
        blocks.append(f"``{f.env}``\n   {text}\n")
    return "\n".join(blocks)


def _bad(problems):
    return {p.split(" ", 1)[0] for p in problems}
