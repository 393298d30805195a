"""Schedule state in Redis, shared by every ``cron`` replica and every web replica.

Keys (all under ``REDIS_NAMESPACE``):

* ``cron:leader`` — the leader lock (see :mod:`scheduler_service.cron.leader`);
* ``cron:version`` — a counter bumped by every change, which replicas poll;
* ``cron:state:{sweep}`` — hash: what the API changed (``enabled``, ``cron``,
  ``overlap``) and ``changedAt``; a missing field means the configured value;
* ``cron:history:{sweep}`` — list: every change (what, from, to, when, who);
* ``cron:run:{sweep}`` — hash: the last run (start, duration, outcome, error, tick,
  job, trigger), the last tick enqueued and the job it created; the last tick only
  moves forward, by one Lua call, however many leaders (a stale one included) write it;
* ``cron:runs:{sweep}`` — list: the latest runs, newest first (``RUNS_KEPT`` of them);
* ``cron:stats`` — hash: run counts per sweep and outcome (the metrics read it);
* ``cron:replicas`` — hash: each replica's last heartbeat, role and applied version;
* ``cron:last-leader`` — the identity of the replica that was elected last.

The web process writes the state and history; the cron leader writes runs and stats;
both read everything through this class and nothing else knows these keys. ``now``
comes from the store's ``clock`` (epoch ms; the wall clock unless one is passed in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import redis

from ..jobstore import iso_ms, now_ms
from .expr import from_ms, next_fire_times, parse_cron

#: Changes kept per sweep in its history.
HISTORY_LIMIT = 1000
#: Runs kept per sweep in its run log (the console lists them).
RUNS_KEPT = 50
#: Overlap policies: ``skip`` a tick while the previous tick's job is unfinished, or ``allow``.
OVERLAP_POLICIES = ("skip", "allow")
DEFAULT_OVERLAP = "skip"
#: Outcomes of a tick or a manual run, as counted in ``cron:stats``.
OUTCOMES = ("enqueued", "duplicate", "skipped", "failed", "missed")

# Compare and write in one step: a leader that read an older tick cannot write it over a
# later one that another leader stored meanwhile.
_ADVANCE_TICK = """
local current = tonumber(redis.call('hget', KEYS[1], 'lastTick'))
if current and current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('hset', KEYS[1], 'lastTick', ARGV[1])
return 1
"""


@dataclass(frozen=True)
class ScheduleState:
    """What a sweep does now, every source taken into account.

    Attributes:
        enabled: whether its ticks fire.
        cron: the expression in force.
        cron_source: ``api`` (changed over the REST API), ``env`` (its variable) or ``default``.
        overlap: ``skip`` or ``allow``.
        changed_at_ms: when the API last changed it (None: never).
    """

    enabled: bool
    cron: str
    cron_source: str
    overlap: str
    changed_at_ms: int | None

    def trigger(self):
        return parse_cron(self.cron)


def effective_state(sweep, env_cron: str | None, raw: dict) -> ScheduleState:
    """Combine a sweep's default, its environment override and what the API stored."""
    raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
           for k, v in raw.items()}
    if raw.get("cron"):
        cron, source = raw["cron"], "api"
    elif env_cron:
        cron, source = env_cron, "env"
    else:
        cron, source = sweep.cron, "default"
    overlap = raw.get("overlap") if raw.get("overlap") in OVERLAP_POLICIES else DEFAULT_OVERLAP
    changed = raw.get("changedAt")
    return ScheduleState(enabled=raw.get("enabled", "1") != "0", cron=cron, cron_source=source,
                         overlap=overlap, changed_at_ms=int(changed) if changed else None)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


class ScheduleStore:
    """Reads and changes the schedule state of every registered sweep.

    Args:
        client: the Redis client.
        namespace: ``REDIS_NAMESPACE``.
        registry: the plugin registry (its sweeps).
        settings: the settings (the sweeps' cron variables).
        clock: the wall clock in epoch ms, for change, history and heartbeat times.
    """

    def __init__(self, client: redis.Redis, namespace: str, registry, settings,
                 clock: Callable[[], int] = now_ms):
        self.redis = client
        self.prefix = f"{namespace}:cron:"
        self.sweeps = registry.sweeps
        self.settings = settings
        self.clock = clock
        self._advance_tick = client.register_script(_ADVANCE_TICK)

    # -- keys ------------------------------------------------------------------------
    def key(self, *parts) -> str:
        return self.prefix + ":".join(parts)

    @property
    def leader_key(self) -> str:
        return self.key("leader")

    # -- state -----------------------------------------------------------------------
    def sweep(self, name: str):
        """The registered sweep called ``name``; KeyError when there is none."""
        return self.sweeps[name]

    def env_cron(self, sweep) -> str | None:
        return self.settings.cron_overrides.get(sweep.env_var)

    def configured_cron(self, sweep) -> str:
        """The expression before any API change: the variable's, else the default."""
        return self.env_cron(sweep) or sweep.cron

    def state(self, name: str) -> ScheduleState:
        sweep = self.sweep(name)
        raw = self.redis.hgetall(self.key("state", name))
        return effective_state(sweep, self.env_cron(sweep), raw)

    def states(self) -> dict[str, ScheduleState]:
        """Every sweep's state, in one round trip."""
        names = sorted(self.sweeps)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.key("state", name))
        return {name: effective_state(self.sweeps[name], self.env_cron(self.sweeps[name]), raw)
                for name, raw in zip(names, pipe.execute())}

    def version(self) -> int:
        return int(self.redis.get(self.key("version")) or 0)

    def update(self, name: str, *, actor: str, enabled=None, cron=..., overlap=None):
        """Change a sweep's state and record each change in its history, atomically.

        Args:
            name: the sweep.
            actor: who asked (the ``X-Actor`` header, else ``api``).
            enabled: True or False; None leaves it.
            cron: a new expression; None goes back to the configured one; ``...`` leaves it.
            overlap: ``skip`` or ``allow``; None leaves it.

        Returns:
            ``(new state, list of history entries written)``.

        Raises:
            KeyError: no such sweep.
            InvalidCron: the expression is not valid.
            ValueError: an unknown overlap policy.
        """
        sweep = self.sweep(name)
        if cron not in (None, ...):
            parse_cron(cron)
        if overlap is not None and overlap not in OVERLAP_POLICIES:
            raise ValueError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}")
        state_key, history_key = self.key("state", name), self.key("history", name)
        entries: list[dict] = []

        def apply(pipe):
            entries.clear()
            before = effective_state(sweep, self.env_cron(sweep), pipe.hgetall(state_key))
            now = self.clock()
            sets, deletes = {}, []
            if enabled is not None and enabled != before.enabled:
                sets["enabled"] = "1" if enabled else "0"
                entries.append(_change(now, "enabled", before.enabled, bool(enabled), actor))
            if cron is not ...:
                target = cron if cron is not None else self.configured_cron(sweep)
                if cron is None:
                    deletes.append("cron")
                else:
                    sets["cron"] = cron
                if target != before.cron or (cron is None and before.cron_source == "api"):
                    entries.append(_change(now, "cron", before.cron, target, actor))
            if overlap is not None and overlap != before.overlap:
                sets["overlap"] = overlap
                entries.append(_change(now, "overlap", before.overlap, overlap, actor))
            pipe.multi()
            if sets:
                pipe.hset(state_key, mapping=sets)
            if deletes:
                pipe.hdel(state_key, *deletes)
            if entries:
                pipe.hset(state_key, "changedAt", now)
                pipe.rpush(history_key, *(json.dumps(e) for e in entries))
                pipe.ltrim(history_key, -HISTORY_LIMIT, -1)
                pipe.incr(self.key("version"))

        self.redis.transaction(apply, state_key)
        return self.state(name), list(entries)

    def add_history(self, name: str, field: str, before, after, actor: str) -> dict:
        """Record an event that is not a state change (a manual run) in the history."""
        entry = _change(self.clock(), field, before, after, actor)
        pipe = self.redis.pipeline()
        pipe.rpush(self.key("history", name), json.dumps(entry))
        pipe.ltrim(self.key("history", name), -HISTORY_LIMIT, -1)
        pipe.execute()
        return entry

    def history(self, name: str) -> list[dict]:
        """Every change of a sweep, oldest first."""
        self.sweep(name)
        out = []
        for raw in self.redis.lrange(self.key("history", name), 0, -1):
            e = json.loads(raw)
            out.append({"at": iso_ms(e["at"]), "field": e["field"], "from": e["from"],
                        "to": e["to"], "actor": e["actor"]})
        return out

    # -- runs ------------------------------------------------------------------------
    def run_info(self, name: str) -> tuple[int | None, str | None]:
        """``(last tick enqueued in epoch ms, id of the job the last run created)``."""
        tick, job_id = self.redis.hmget(self.key("run", name), "lastTick", "lastJobId")
        return (int(tick) if tick else None), _text(job_id) or None

    def record_run(self, name: str, run: dict, *, job_id: str | None = None,
                   tick_ms: int | None = None, count: bool = True) -> None:
        """Store a run as the sweep's last run and count its outcome.

        ``run`` holds ``start`` (epoch ms), ``durationMs``, ``outcome``, ``error``,
        ``tick`` (epoch ms or None), ``trigger`` and ``detail``. ``tick_ms`` advances the
        last tick dealt with as :meth:`advance_tick` does (never backwards).
        """
        fields = {f"last.{k}": ("" if v is None else v) for k, v in run.items()}
        if job_id:
            fields["lastJobId"] = job_id
            fields["last.jobId"] = job_id
        else:
            fields["last.jobId"] = ""
        pipe = self.redis.pipeline()
        pipe.hset(self.key("run", name), mapping=fields)
        pipe.lpush(self.key("runs", name), json.dumps({**run, "jobId": job_id}))
        pipe.ltrim(self.key("runs", name), 0, RUNS_KEPT - 1)
        if tick_ms is not None:
            self._advance_tick(keys=[self.key("run", name)], args=[int(tick_ms)], client=pipe)
        if count:
            pipe.hincrby(self.key("stats"), f"{name}|{run['outcome']}", 1)
        pipe.execute()

    def advance_tick(self, name: str, tick_ms: int) -> bool:
        """Remember that ``tick_ms`` was dealt with (enqueued, or found already enqueued).

        One atomic step in Redis, so racing leaders can only move the last tick forward.

        Returns:
            True when the last tick moved to ``tick_ms``; False when it was already there
            or later.
        """
        return bool(self._advance_tick(keys=[self.key("run", name)], args=[int(tick_ms)]))

    def count(self, name: str, outcome: str, n: int = 1) -> None:
        if n:
            self.redis.hincrby(self.key("stats"), f"{name}|{outcome}", n)

    def last_run(self, name: str) -> dict | None:
        """The sweep's last run as the API shows it, or None."""
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(self.key("run", name)).items()}
        if not raw.get("last.start"):
            return None
        return {
            "start": iso_ms(raw["last.start"]),
            "durationMs": float(raw.get("last.durationMs") or 0),
            "outcome": raw.get("last.outcome"),
            "error": raw.get("last.error") or None,
            "tick": iso_ms(raw.get("last.tick")),
            "jobId": raw.get("last.jobId") or None,
            "trigger": raw.get("last.trigger") or None,
            "detail": raw.get("last.detail") or None,
        }

    def recent_runs(self, name: str, limit: int = RUNS_KEPT) -> list[dict]:
        """The sweep's latest runs, newest first, each shaped like :meth:`last_run`."""
        out = []
        for raw in self.redis.lrange(self.key("runs", name), 0, limit - 1):
            run = json.loads(raw)
            out.append({
                "start": iso_ms(run.get("start")), "durationMs": float(run.get("durationMs") or 0),
                "outcome": run.get("outcome"), "error": run.get("error") or None,
                "tick": iso_ms(run.get("tick")), "jobId": run.get("jobId") or None,
                "trigger": run.get("trigger") or None, "detail": run.get("detail") or None,
            })
        return out

    def last_started_ms(self, name: str) -> int | None:
        started = self.redis.hget(self.key("run", name), "last.start")
        return int(started) if started else None

    def stats(self) -> dict[tuple[str, str], int]:
        """``{(sweep, outcome): count}`` since the counters were created."""
        out = {}
        for k, v in self.redis.hgetall(self.key("stats")).items():
            name, _, outcome = _text(k).partition("|")
            out[(name, outcome)] = int(v)
        return out

    # -- replicas ----------------------------------------------------------------------
    def heartbeat(self, identity: str, info: dict) -> None:
        info = {**info, "seenAt": self.clock()}
        self.redis.hset(self.key("replicas"), identity, json.dumps(info))

    def note_leader(self, identity: str) -> str | None:
        """Record ``identity`` as the replica elected last; returns the one before it."""
        return _text(self.redis.getset(self.key("last-leader"), identity))

    def forget_replica(self, identity: str) -> None:
        self.redis.hdel(self.key("replicas"), identity)

    def replicas(self, max_age_ms: int) -> dict[str, dict]:
        """Replicas heard from within ``max_age_ms``; older entries are dropped."""
        now = self.clock()
        alive, stale = {}, []
        for k, v in self.redis.hgetall(self.key("replicas")).items():
            info = json.loads(v)
            if now - info.get("seenAt", 0) <= max_age_ms:
                alive[_text(k)] = info
            elif now - info.get("seenAt", 0) > 100 * max_age_ms:
                stale.append(k)
        if stale:
            self.redis.hdel(self.key("replicas"), *stale)
        return alive

    def leader(self) -> tuple[str | None, int | None]:
        """``(identity of the lock holder or None, milliseconds before the lock expires)``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.leader_key)
        pipe.pttl(self.leader_key)
        holder, ttl = pipe.execute()
        return _text(holder), (ttl if holder is not None and ttl >= 0 else None)

    # -- views -----------------------------------------------------------------------
    def view(self, name: str, state: ScheduleState | None = None, *, now: datetime | None = None,
             upcoming: int = 0) -> dict:
        """A sweep as the REST API shows it, with ``upcoming`` next fire times."""
        sweep = self.sweep(name)
        state = state or self.state(name)
        now = now or from_ms(self.clock())
        trigger = state.trigger()
        nxt = next_fire_times(trigger, now, max(1, upcoming))
        body = {
            "name": name,
            "plugin": sweep.plugin,
            "description": sweep.description,
            "jobType": sweep.job_type,
            "campaignId": sweep.campaign_id,
            "cron": state.cron,
            "cronSource": state.cron_source,
            "defaultCron": sweep.cron,
            "envVar": sweep.env_var,
            "enabled": state.enabled,
            "overlap": state.overlap,
            "nextRun": _iso(nxt[0]) if state.enabled and nxt else None,
            "lastRun": self.last_run(name),
        }
        if upcoming:
            body["nextRuns"] = [_iso(t) for t in nxt] if state.enabled else []
        return body


def _iso(moment: datetime) -> str:
    return iso_ms(int(round(moment.timestamp() * 1000)))


def _change(at_ms: int, field: str, before, after, actor: str) -> dict:
    return {"at": at_ms, "field": field, "from": before, "to": after, "actor": actor}
