"""Metrics that every process records and any web process reports: kept in Redis.

The worker, cron, subscriber and web roles run as separate processes, often on separate
hosts, and the web role itself under several gunicorn workers. A counter kept in one
process's memory is seen only by a scrape that reaches that process, so these metrics
live in Redis instead, and ``/metrics`` reads them at scrape time: every scrape of every
web process sees the same, ever-growing totals.

Keys (under ``REDIS_NAMESPACE``), one hash per metric family named after it:

* ``metrics:<counter>`` — field: the label values joined by ``|`` → count;
* ``metrics:<histogram>`` — ``<labels>|<i>`` → observations in bucket ``i`` (not
  cumulative; ``i`` = ``len(buckets)`` is ``+Inf``), ``<labels>|sum`` → their sum;
* ``metrics:<gauge>`` — ``<labels>`` → value (set, not added);
* ``metrics:processes`` — process id → JSON ``{"breaker": 0|1|2, "seen": epoch ms}`` of
  every process that has an API client, for the breaker gauges.

Where each family is written:

* job attempts, retries, dead letters and durations: by the worker's acknowledgement
  script (:data:`scheduler_service.jobscripts.OUTCOMES`), from :func:`job_deltas` worked
  out by the worker for each batch, so no extra round trip is made on the job path;
* timer promotions and promotion lateness: by the pump's script
  (:data:`~scheduler_service.jobscripts.PUMP`), from the timers' scores;
* sweep success time, duration and consecutive failures: by the acknowledgement script
  for jobs a sweep tick created, and by the cron process for ticks that failed;
* API calls, retries, request durations, breaker openings and alerts: by the
  :class:`~scheduler_service.recorder.Recorder` of each process, which adds them up in
  memory and writes them with one pipelined call every few seconds (and when a scrape is
  served).
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

logger = logging.getLogger(__name__)

#: A process whose entry is older than this no longer counts in the breaker gauges.
PROCESS_STALE_MS = 30_000
#: Entries of processes gone this long are removed.
PROCESS_PRUNE_MS = 3_600_000
#: Separates label values in a field.
SEP = "|"

#: Upper bounds (seconds) of the job-duration buckets.
JOB_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        60.0, 120.0, 300.0, 600.0)
#: Upper bounds (seconds) of the API request-duration buckets.
API_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Upper bounds (seconds) of the timer-promotion lateness buckets.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Family:
    """One metric family kept in Redis.

    Attributes:
        name: the exported name (a counter's ``_total`` is added on export).
        kind: ``counter``, ``histogram`` or ``gauge``.
        labels: label names, in field order.
        doc: the help text.
        buckets: a histogram's upper bounds, in seconds.
        zero_from: a counter whose first label's values this one reports as 0 until it
            counts them itself (so ``rate()`` has a series from the start).
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    doc: str
    buckets: tuple[float, ...] = ()
    zero_from: str | None = None


JOB_ATTEMPTS = Family("scheduler_job_attempts", "counter", ("type", "outcome"),
                      "Job attempts by job type and outcome: succeeded, failed (a retry is "
                      "scheduled), dead (dead-lettered), deferred (the API circuit was open).")
JOB_RETRIES = Family("scheduler_job_retries", "counter", ("type",),
                     "Failed attempts for which another attempt was scheduled.",
                     zero_from=JOB_ATTEMPTS.name)
JOB_DEAD_LETTERS = Family("scheduler_job_dead_letters", "counter", ("type",),
                          "Jobs dead-lettered (retries spent or a permanent error).",
                          zero_from=JOB_ATTEMPTS.name)
JOB_DURATION = Family("scheduler_job_duration_seconds", "histogram", ("type",),
                      "Time a worker spent on one job attempt, by job type.", JOB_DURATION_BUCKETS)
TIMER_PROMOTIONS = Family("scheduler_timer_promotions", "counter", ("clock",),
                          "Jobs the timer pumps moved from a timer into their queue, by clock "
                          "(wall, world).")
TIMER_LATENESS = Family("scheduler_timer_promotion_lateness_seconds", "histogram", ("clock",),
                        "How long after its due time a wall-clock timer was promoted into its "
                        "queue.", LATENESS_BUCKETS)
SWEEP_LAST_SUCCESS = Family("scheduler_cron_sweep_last_success_timestamp_seconds", "gauge",
                            ("sweep",), "When the job of a sweep's tick last succeeded (Unix time).")
SWEEP_LAST_DURATION = Family("scheduler_cron_sweep_last_duration_seconds", "gauge", ("sweep",),
                             "From a sweep's tick to its job's success, for the last success.")
SWEEP_FAILURES_IN_A_ROW = Family("scheduler_cron_sweep_consecutive_failures", "gauge", ("sweep",),
                                 "Failed runs of a sweep (tick or job attempt) since it last "
                                 "succeeded.")
API_CALLS = Family("scheduler_api_calls", "counter", ("operation", "outcome"),
                   "Calls of the main API by operation and outcome (ok, not_found, conflict, "
                   "bad_input, unauthenticated, forbidden, transient, circuit_open, error), "
                   "from every process.")
API_RETRIES = Family("scheduler_api_retries", "counter", ("operation",),
                     "Retries of transient API failures by operation.", zero_from=API_CALLS.name)
API_DURATION = Family("scheduler_api_request_duration_seconds", "histogram", ("operation",),
                      "Duration of one HTTP request to the main API, by operation.",
                      API_DURATION_BUCKETS)
API_CIRCUIT_OPENED = Family("scheduler_api_circuit_opened", "counter", (),
                            "Times a process's API circuit breaker opened.")
ALERTS = Family("scheduler_alerts", "counter", ("kind", "result"),
                "Alerts by kind and result: sent, failed (the webhook refused or timed out), "
                "suppressed (a repeat within ALERT_COOLDOWN_S), dropped (the send queue was full).")

#: Every family kept in Redis, in export order.
FAMILIES: tuple[Family, ...] = (
    JOB_ATTEMPTS, JOB_RETRIES, JOB_DEAD_LETTERS, JOB_DURATION, TIMER_PROMOTIONS, TIMER_LATENESS,
    SWEEP_LAST_SUCCESS, SWEEP_LAST_DURATION, SWEEP_FAILURES_IN_A_ROW, API_CALLS, API_RETRIES,
    API_DURATION, API_CIRCUIT_OPENED, ALERTS,
)


def family_key(prefix: str, family: Family) -> str:
    """The hash of ``family`` (``prefix`` is ``"<namespace>:"``)."""
    return f"{prefix}metrics:{family.name}"


def processes_key(prefix: str) -> str:
    return f"{prefix}metrics:processes"


def label_field(values) -> str:
    """The field of one label set (``|`` inside a value becomes ``_``)."""
    return SEP.join(str(v).replace(SEP, "_") for v in values)


def bucket_index(buckets, seconds: float) -> int:
    """The bucket of an observation: the first bound at or above it (``len`` = ``+Inf``)."""
    return bisect.bisect_left(buckets, seconds)


def _lua_bounds_ms(buckets) -> str:
    return "{" + ", ".join(repr(round(b * 1000, 3)) for b in buckets) + "}"


#: Lua: metric writes. Expects ``P`` (the key prefix) in scope. ``apply_deltas(i)`` applies
#: the deltas of :func:`job_deltas` found in ARGV from position ``i``;
#: ``observe_lateness(counts, ms)`` adds a lateness to a local table that
#: ``flush_lateness(counts, clock)`` then writes.
LUA_METRICS = r"""
local function apply_deltas(i)
  local n = tonumber(ARGV[i] or '0')
  i = i + 1
  for _ = 1, n do
    redis.call('hincrby', P .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  end
  n = tonumber(ARGV[i] or '0')
  i = i + 1
  for _ = 1, n do
    redis.call('hincrbyfloat', P .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  end
end
local LATENESS_MS = LATENESS_BOUNDS
local function observe_lateness(counts, ms)
  local b = #LATENESS_MS
  for k = 1, #LATENESS_MS do
    if ms <= LATENESS_MS[k] then b = k - 1 break end
  end
  counts[b] = (counts[b] or 0) + 1
  counts.sum = (counts.sum or 0) + ms / 1000
end
local function flush_lateness(counts, clock, moved)
  if moved > 0 then
    redis.call('hincrby', P .. 'metrics:PROMOTIONS', clock, moved)
  end
  if counts.sum == nil then return end
  local key = P .. 'metrics:LATENESS'
  for b, n in pairs(counts) do
    if b ~= 'sum' then redis.call('hincrby', key, clock .. '|' .. b, n) end
  end
  redis.call('hincrbyfloat', key, clock .. '|sum', counts.sum)
end
-- A job a sweep's tick created (its idempotency key says which) moved to `to` at `now`.
local function sweep_outcome(idem, to, now, created)
  if not idem or string.sub(idem, 1, 15) ~= 'internal:sweep:' then return end
  local name = string.match(idem, '^internal:sweep:([^:]+):')
  if not name then return end
  if to == 'succeeded' then
    redis.call('hset', P .. 'metrics:SWEEP_SUCCESS', name, tonumber(now) / 1000)
    redis.call('hset', P .. 'metrics:SWEEP_DURATION', name,
               (tonumber(now) - (tonumber(created) or tonumber(now))) / 1000)
    redis.call('hset', P .. 'metrics:SWEEP_FAILURES', name, 0)
  elseif to == 'failed' or to == 'dead' then
    redis.call('hincrby', P .. 'metrics:SWEEP_FAILURES', name, 1)
  end
end
""".replace("LATENESS_BOUNDS", _lua_bounds_ms(LATENESS_BUCKETS)) \
    .replace("PROMOTIONS", TIMER_PROMOTIONS.name).replace("LATENESS", TIMER_LATENESS.name) \
    .replace("SWEEP_SUCCESS", SWEEP_LAST_SUCCESS.name) \
    .replace("SWEEP_DURATION", SWEEP_LAST_DURATION.name) \
    .replace("SWEEP_FAILURES", SWEEP_FAILURES_IN_A_ROW.name)


class Attempt(NamedTuple):
    """What the worker observed of one job attempt, for the metrics and the alerts (a tuple:
    one is made per job on the acknowledgement path)."""

    job_id: str
    job_type: str
    campaign_id: str
    #: ``succeeded``, ``failed``, ``dead`` or ``scheduled`` (deferred: circuit open).
    to: str
    seconds: float
    error: str | None = None


#: The ``outcome`` label of each state an attempt ends in.
ATTEMPT_OUTCOMES = {"succeeded": "succeeded", "failed": "failed", "dead": "dead",
                    "scheduled": "deferred"}


#: ``(job type, state, bucket) -> (the (key, field) pairs an attempt adds 1 to, the
#: (key, field) of its duration sum)``, built once per combination.
_JOB_FIELDS: dict[tuple[str, str, int], tuple[tuple, tuple]] = {}


def _job_fields(job_type: str, to: str, bucket: int) -> tuple[tuple, tuple]:
    outcome = ATTEMPT_OUTCOMES[to]
    label = label_field([job_type])
    duration_key = f"metrics:{JOB_DURATION.name}"
    ones = [(f"metrics:{JOB_ATTEMPTS.name}", f"{label}{SEP}{outcome}"),
            (duration_key, f"{label}{SEP}{bucket}")]
    if outcome == "failed":
        ones.append((f"metrics:{JOB_RETRIES.name}", label))
    elif outcome == "dead":
        ones.append((f"metrics:{JOB_DEAD_LETTERS.name}", label))
    return tuple(ones), (duration_key, f"{label}{SEP}sum")


def job_deltas(attempts) -> list:
    """The ARGV tail the acknowledgement script applies (``apply_deltas``) for a batch.

    One HINCRBY per distinct (family, field) of the batch, however many jobs it holds:
    ``[n, (key, field, amount) * n, m, (key, field, float amount) * m]`` with keys
    relative to the prefix.
    """
    ints: dict[tuple[str, str], int] = {}
    sums: dict[tuple[str, str], float] = {}
    bisect_left = bisect.bisect_left
    for a in attempts:
        if a.to not in ATTEMPT_OUTCOMES:
            continue
        combination = (a.job_type, a.to, bisect_left(JOB_DURATION_BUCKETS, a.seconds))
        fields = _JOB_FIELDS.get(combination)
        if fields is None:
            fields = _JOB_FIELDS[combination] = _job_fields(*combination)
        ones, total = fields
        for pair in ones:
            ints[pair] = ints.get(pair, 0) + 1
        sums[total] = sums.get(total, 0.0) + a.seconds
    out: list = [len(ints)]
    for (key, field), n in ints.items():
        out += [key, field, n]
    out.append(len(sums))
    for (key, field), x in sums.items():
        out += [key, field, repr(x)]
    return out


# -- reading -----------------------------------------------------------------------------

def read_families(redis, prefix: str, families=FAMILIES) -> dict[str, dict[str, str]]:
    """Every family's hash, in one round trip: ``{family name: {field: value}}``."""
    pipe = redis.pipeline(transaction=False)
    for family in families:
        pipe.hgetall(family_key(prefix, family))
    out = {}
    for family, raw in zip(families, pipe.execute()):
        out[family.name] = {(k.decode() if isinstance(k, bytes) else k):
                            (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
    return out


def histogram_series(family: Family, raw: dict[str, str]) -> dict[tuple, tuple[list, float]]:
    """``{label values: (cumulative [(le, count)...] ending with +Inf, sum)}`` of a histogram."""
    per: dict[tuple, dict] = defaultdict(dict)
    for field, value in raw.items():
        head, _, tail = field.rpartition(SEP)
        labels = tuple(head.split(SEP)) if family.labels else ()
        per[labels][tail] = value
    out = {}
    for labels, fields in per.items():
        running, buckets = 0, []
        bounds = [repr(float(b)) for b in family.buckets] + ["+Inf"]
        for i, le in enumerate(bounds):
            running += int(fields.get(str(i), 0))
            buckets.append((le, running))
        out[labels] = (buckets, float(fields.get("sum", 0.0)))
    return out


def sweep_failed(redis, prefix: str, sweep: str) -> int:
    """Count a failed tick of ``sweep`` (its job's failures are counted by the worker's
    script); returns its failures in a row."""
    return int(redis.hincrby(family_key(prefix, SWEEP_FAILURES_IN_A_ROW), sweep, 1))


def sweep_failures(redis, prefix: str) -> dict[str, int]:
    """``{sweep: failures in a row}`` as the worker's script and the cron process keep them."""
    raw = redis.hgetall(family_key(prefix, SWEEP_FAILURES_IN_A_ROW))
    return {(k.decode() if isinstance(k, bytes) else k): int(float(v)) for k, v in raw.items()}


def read_processes(redis, prefix: str, now_ms: int, max_age_ms: int = PROCESS_STALE_MS) -> dict:
    """Entries of processes with an API client heard from within ``max_age_ms``."""
    out = {}
    for name, raw in redis.hgetall(processes_key(prefix)).items():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if now_ms - int(entry.get("seen") or 0) <= max_age_ms:
            out[name.decode() if isinstance(name, bytes) else name] = entry
    return out


def prune_processes(redis, prefix: str, now_ms: int) -> int:
    """Drop entries of processes gone for :data:`PROCESS_PRUNE_MS`; returns how many."""
    key = processes_key(prefix)
    gone = []
    for name, raw in redis.hgetall(key).items():
        try:
            seen = int(json.loads(raw).get("seen") or 0)
        except (ValueError, AttributeError):
            seen = 0
        if now_ms - seen > PROCESS_PRUNE_MS:
            gone.append(name)
    return redis.hdel(key, *gone) if gone else 0
