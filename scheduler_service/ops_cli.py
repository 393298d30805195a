"""Operator commands over the REST API: ``jobs``, ``schedules`` and ``dead-letters``.

They talk to a running service over HTTP only (``--url``/``SCHEDULER_URL``,
``--token``/``SCHEDULER_API_TOKEN``), so they work from any machine that reaches it, and
never touch Redis. Each prints a table for people, or the API's JSON with ``--json``;
bulk operations show a progress bar on standard error and end with a summary. Exit codes
are those of :mod:`scheduler_service.ops_client`.
"""

from __future__ import annotations

import functools
import getpass
import json
import sys

import click

from .jobstore import STATES
from .ops_client import DEFAULT_URL, EXIT_FAILED, EXIT_USAGE, OperatorError, ServiceClient, path

#: States a job can be cancelled from.
CANCELLABLE = ("scheduled", "queued", "failed")
#: Widest a table cell gets before it is cut with an ellipsis.
MAX_CELL = 48

_COMMON_OPTIONS = [
    click.option("--url", envvar="SCHEDULER_URL", default=DEFAULT_URL, show_default=True,
                 show_envvar=True, help="Base URL of the scheduler service."),
    click.option("--token", envvar="SCHEDULER_API_TOKEN", show_envvar=True,
                 help="Bearer token of the REST API."),
    click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True,
                 help="Seconds to wait for each answer."),
    click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table."),
]
_ACTOR_OPTION = click.option(
    "--actor", default=None, help="Who to record in the schedule's history (default: your user name).")


class Session:
    """What a command works with: the client and the chosen output."""

    def __init__(self, api: ServiceClient, as_json: bool):
        self.api = api
        self.as_json = as_json

    def show(self, body, render) -> None:
        """Print ``body`` as JSON with ``--json``, else through ``render(body)``."""
        if self.as_json:
            click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        else:
            render(body)


def _fail(error: OperatorError):
    click.echo(f"scheduler-service: {error}", err=True)
    click.get_current_context().exit(error.exit_code)


def _default_actor() -> str:
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


def operator_command(group, name, *, actor=False, **kwargs):
    """Declare a command of ``group`` that gets a :class:`Session` as its first argument and
    the common options (``--url``, ``--token``, ``--timeout``, ``--json``); its return value is
    the exit code (None is 0)."""

    def decorate(fn):
        @functools.wraps(fn)
        def run(url, token, timeout, as_json, **params):
            who = (params.pop("actor", None) or _default_actor()) if actor else None
            try:
                api = ServiceClient(url, token, timeout, who)
            except OperatorError as e:
                _fail(e)
            try:
                code = fn(Session(api, as_json), **params)
            except OperatorError as e:
                _fail(e)
            finally:
                api.close()
            click.get_current_context().exit(code or 0)

        for option in reversed(_COMMON_OPTIONS):
            run = option(run)
        if actor:
            run = _ACTOR_OPTION(run)
        return group.command(name, **kwargs)(run)

    return decorate


# -- output ---------------------------------------------------------------------------

def _text(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def _time(value) -> str:
    """``2026-03-01T12:00:00.000Z`` as ``2026-03-01 12:00:00Z`` (anything else as it is)."""
    if isinstance(value, str) and len(value) >= 20 and value[10] == "T" and value.endswith("Z"):
        return value[:10] + " " + value[11:19] + "Z"
    return value


def table(rows, columns) -> None:
    """Print ``rows`` under ``columns`` (``[(header, row -> value)]``), aligned."""
    cells = [[_text(get(row)) for _, get in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    click.echo("\n".join(lines))


def fields(pairs) -> None:
    """Print ``(name, value)`` pairs one a line, the values aligned."""
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        text = "-" if value is None or value == "" else str(value)
        first, *more = text.splitlines() or [""]
        click.echo(f"{name + ':':{width + 1}} {first}")
        for line in more:
            click.echo(f"{'':{width + 1}} {line}")


JOB_COLUMNS = [
    ("ID", lambda j: j["id"]), ("TYPE", lambda j: j["type"]), ("CAMPAIGN", lambda j: j["campaignId"]),
    ("STATE", lambda j: j["state"]), ("PRI", lambda j: j["priority"]),
    ("DUE", lambda j: (_time(j["runAtWorldTime"]) + " (world)") if j.get("runAtWorldTime")
     else _time(j.get("runAt"))),
    ("ATTEMPTS", lambda j: j["attempts"]), ("UPDATED", lambda j: _time(j["updatedAt"])),
]


def job_list(body) -> None:
    if not body["items"]:
        click.echo("no job matches")
    else:
        table(body["items"], JOB_COLUMNS)
    if body.get("nextCursor"):
        click.echo(f"more: --cursor {body['nextCursor']} (or --all)", err=True)


def job_fields(job) -> None:
    fields([("id", job["id"]), ("type", job["type"]), ("campaign", job["campaignId"]),
            ("state", job["state"]), ("priority", job["priority"]),
            ("run at", _time(job.get("runAt"))), ("run at world time", _time(job.get("runAtWorldTime"))),
            ("attempts", job["attempts"]), ("created", _time(job["createdAt"])),
            ("updated", _time(job["updatedAt"])), ("idempotency key", job.get("idempotencyKey")),
            ("payload", json.dumps(job["payload"], ensure_ascii=False)),
            ("result", None if job.get("result") is None else json.dumps(job["result"], ensure_ascii=False)),
            ("last error", job.get("lastError"))])


def _filters(**given) -> dict:
    return {k: v for k, v in given.items() if v is not None}


def _payload(text: str | None):
    """``--payload``: a JSON object, ``@file`` holding one, or ``-`` for standard input."""
    if text is None:
        return None
    source = "--payload"
    if text == "-":
        text, source = sys.stdin.read(), "--payload (standard input)"
    elif text.startswith("@"):
        name = text[1:]
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise OperatorError(EXIT_USAGE, f"--payload: cannot read {name!r}: {e.strerror}") from None
        source = f"--payload ({name})"
    try:
        value = json.loads(text)
    except ValueError as e:
        raise OperatorError(EXIT_USAGE, f"{source}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise OperatorError(EXIT_USAGE, f"{source}: must be a JSON object, got {type(value).__name__}")
    return value


# -- bulk -----------------------------------------------------------------------------

def bulk(s: Session, ids: list[str], *, verb: str, noun: str, call) -> int:
    """Run ``call(id)`` for each id with a progress bar; print a summary; 0 or 1 (some failed).

    A lost connection or a refused token stops at once (exit 3), after the summary so far.
    """
    done, failed = [], []

    def summary(stopped=False):
        body = {"action": verb, "total": len(ids), "done": done, "failed": failed}
        if s.as_json:
            click.echo(json.dumps(body, indent=2))
            return
        line = f"{verb} {len(done)} of {len(ids)} {noun}"
        if failed:
            line += f"; {len(failed)} failed"
        if stopped:
            line += f"; stopped with {len(ids) - len(done) - len(failed)} not tried"
        click.echo(line)
        for f in failed:
            click.echo(f"  {f['id']}: {f['message']}", err=True)

    if not ids:
        summary()
        return 0
    with click.progressbar(ids, label=f"{verb} {noun}", file=sys.stderr, show_pos=True) as bar:
        for item in bar:
            try:
                call(item)
            except OperatorError as e:
                if e.exit_code != EXIT_FAILED:
                    bar.render_finish()
                    summary(stopped=True)
                    raise
                failed.append({"id": item, "status": e.status, "code": e.code, "message": str(e)})
            else:
                done.append(item)
    summary()
    return EXIT_FAILED if failed else 0


# -- jobs -----------------------------------------------------------------------------

@click.group("jobs")
def jobs_group():
    """Jobs over the REST API: list, show, history, create, cancel."""


def paging(noun: str):
    """``--limit``, ``--cursor`` and ``--all`` of a listing of ``noun``."""

    def decorate(fn):
        fn = click.option("--all", "every", is_flag=True, help="Every page, not only the first.")(fn)
        fn = click.option("--cursor", help="Go on from a page's nextCursor.")(fn)
        return click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True,
                            help=f"{noun} per page.")(fn)

    return decorate


def show_listing(s: Session, api_path: str, params: dict, limit: int, cursor, every: bool) -> None:
    """One page of a listing (or every page with ``--all``), as a job table or JSON."""
    if every:
        body = {"items": list(s.api.pages(api_path, params, limit)), "nextCursor": None}
    else:
        body = s.api.call("GET", api_path, params={**params, "limit": limit, **_filters(cursor=cursor)})
    s.show(body, job_list)


@operator_command(jobs_group, "list")
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--campaign", help="Only jobs of this campaign (or SYSTEM).")
@paging("Jobs")
def jobs_list(s, state, job_type, campaign, limit, cursor, every):
    """List jobs, newest first."""
    show_listing(s, path("jobs"), _filters(state=state, type=job_type, campaignId=campaign),
                 limit, cursor, every)


@operator_command(jobs_group, "show")
@click.argument("job_id")
def jobs_show(s, job_id):
    """Show one job: its record, payload, result and last error."""
    s.show(s.api.call("GET", path("jobs", job_id)), job_fields)


@operator_command(jobs_group, "history")
@click.argument("job_id")
def jobs_history(s, job_id):
    """Every transition of a job, oldest first."""
    s.show(s.api.call("GET", path("jobs", job_id, "history")), lambda body: table(body["items"], [
        ("AT", lambda h: _time(h["at"])), ("FROM", lambda h: h["from"]), ("TO", lambda h: h["to"]),
        ("DETAIL", lambda h: h["detail"])]))


@operator_command(jobs_group, "create")
@click.argument("job_type")
@click.option("--campaign", required=True, help='The campaign, or SYSTEM for every campaign.')
@click.option("--payload", help="A JSON object, @FILE holding one, or - to read standard input.")
@click.option("--priority", type=click.IntRange(0, 10), help="0-10, higher first (default: the type's).")
@click.option("--run-at", help="Due time on the wall clock (ISO-8601 with offset).")
@click.option("--run-at-world-time", help="Due time on the campaign's world clock (ISO-8601).")
@click.option("--idempotency-key", help="A second create with this key returns the first job.")
def jobs_create(s, job_type, campaign, payload, priority, run_at, run_at_world_time, idempotency_key):
    """Create a job of JOB_TYPE: due now, at --run-at, or at --run-at-world-time."""
    if run_at and run_at_world_time:
        raise OperatorError(EXIT_USAGE, "give --run-at or --run-at-world-time, not both")
    body = _filters(type=job_type, campaignId=campaign, payload=_payload(payload), priority=priority,
                    runAt=run_at, runAtWorldTime=run_at_world_time, idempotencyKey=idempotency_key)
    s.show(s.api.call("POST", path("jobs"), json=body), job_fields)


@operator_command(jobs_group, "cancel")
@click.argument("job_ids", nargs=-1)
@click.option("--state", "states", multiple=True, type=click.Choice(CANCELLABLE),
              help="Cancel every job in this state (repeatable; default: all three).")
@click.option("--type", "job_type", help="Cancel every cancellable job of this type.")
@click.option("--campaign", help="Cancel every cancellable job of this campaign.")
def jobs_cancel(s, job_ids, states, job_type, campaign):
    """Cancel jobs: the JOB_IDS given, or every scheduled, queued or retrying job matching
    --state, --type and --campaign."""
    selecting = bool(states or job_type or campaign)
    if job_ids and selecting:
        raise OperatorError(EXIT_USAGE, "give job ids or --state/--type/--campaign, not both")
    if not job_ids and not selecting:
        raise OperatorError(EXIT_USAGE, "give job ids, or --state/--type/--campaign to cancel "
                                        "every matching job")
    if len(job_ids) == 1:
        s.show(s.api.call("DELETE", path("jobs", job_ids[0])), job_fields)
        return 0
    ids = list(job_ids)
    if selecting:
        for state in states or CANCELLABLE:
            ids += [j["id"] for j in s.api.pages(
                path("jobs"), _filters(state=state, type=job_type, campaignId=campaign))]
    return bulk(s, ids, verb="cancelled", noun="jobs",
                call=lambda job_id: s.api.call("DELETE", path("jobs", job_id)))


# -- schedules ------------------------------------------------------------------------

@click.group("schedules")
def schedules_group():
    """The periodic sweeps over the REST API: list, show, enable, disable, run, history."""


def _schedule_fields(body) -> None:
    last = body.get("lastRun") or {}
    fields([("name", body["name"]), ("description", body["description"]),
            ("plugin", body["plugin"]), ("job", f"{body['jobType']} for {body['campaignId']}"),
            ("enabled", "yes" if body["enabled"] else "no"),
            ("cron", f"{body['cron']} (from {body['cronSource']}; default {body['defaultCron']}, "
                     f"override {body['envVar']})"),
            ("overlap", body["overlap"]), ("next run", _time(body.get("nextRun"))),
            ("last run", f"{_time(last['start'])} {last['outcome']} ({last.get('trigger') or '-'}, "
                         f"{last['durationMs']:g} ms)" if last else None),
            ("last error", last.get("error")),
            ("next runs", "\n".join(_time(t) for t in body.get("nextRuns") or []) or None)])


@operator_command(schedules_group, "list")
def schedules_list(s):
    """Every sweep: cron, enabled, overlap policy, next and last run."""
    s.show(s.api.call("GET", path("schedules")), lambda body: table(body["items"], [
        ("NAME", lambda x: x["name"]), ("ENABLED", lambda x: x["enabled"]),
        ("CRON", lambda x: x["cron"]), ("SOURCE", lambda x: x["cronSource"]),
        ("OVERLAP", lambda x: x["overlap"]), ("NEXT RUN", lambda x: _time(x.get("nextRun"))),
        ("LAST RUN", lambda x: _time((x.get("lastRun") or {}).get("start"))),
        ("OUTCOME", lambda x: (x.get("lastRun") or {}).get("outcome"))]))


@operator_command(schedules_group, "show")
@click.argument("name")
def schedules_show(s, name):
    """One sweep with its next five fire times and its last run."""
    s.show(s.api.call("GET", path("schedules", name)), _schedule_fields)


@operator_command(schedules_group, "enable", actor=True)
@click.argument("name")
def schedules_enable(s, name):
    """Turn a sweep's ticks on."""
    s.show(s.api.call("PATCH", path("schedules", name), json={"enabled": True}), _schedule_fields)


@operator_command(schedules_group, "disable", actor=True)
@click.argument("name")
def schedules_disable(s, name):
    """Turn a sweep's ticks off (a manual run still works)."""
    s.show(s.api.call("PATCH", path("schedules", name), json={"enabled": False}), _schedule_fields)


@operator_command(schedules_group, "run", actor=True)
@click.argument("name")
def schedules_run(s, name):
    """Enqueue a sweep's job now, whether enabled or not."""
    s.show(s.api.call("POST", path("schedules", name, "run")), lambda body: click.echo(
        f"{body['schedule']}: enqueued job {body['job']['id']} ({body['job']['type']} for "
        f"{body['job']['campaignId']}, {body['job']['state']})"))


@operator_command(schedules_group, "history")
@click.argument("name")
def schedules_history(s, name):
    """Every change of a sweep: what, from, to, when and who."""
    s.show(s.api.call("GET", path("schedules", name, "history")), lambda body: table(body["items"], [
        ("AT", lambda h: _time(h["at"])), ("ACTOR", lambda h: h["actor"]),
        ("FIELD", lambda h: h["field"]), ("FROM", lambda h: h["from"]), ("TO", lambda h: h["to"])]))


# -- dead letters ---------------------------------------------------------------------

@click.group("dead-letters")
def dead_letters_group():
    """Jobs whose retries are spent, over the REST API: list, requeue, discard."""


@operator_command(dead_letters_group, "list")
@click.option("--type", "job_type", help="Only dead letters of this type.")
@click.option("--campaign", help="Only dead letters of this campaign.")
@paging("Dead letters")
def dead_letters_list(s, job_type, campaign, limit, cursor, every):
    """List dead letters, newest first."""
    show_listing(s, path("dead-letters"), _filters(type=job_type, campaignId=campaign),
                 limit, cursor, every)


def _dead_letter_ids(s, job_ids, every, job_type, campaign) -> list[str]:
    if job_ids and every:
        raise OperatorError(EXIT_USAGE, "give dead-letter ids or --all, not both")
    if (job_type or campaign) and not every:
        raise OperatorError(EXIT_USAGE, "--type and --campaign select dead letters with --all")
    if not job_ids and not every:
        raise OperatorError(EXIT_USAGE, "give dead-letter ids, or --all (with --type/--campaign "
                                        "to narrow it)")
    if job_ids:
        return list(job_ids)
    return [j["id"] for j in s.api.pages(path("dead-letters"), _filters(type=job_type, campaignId=campaign))]


@operator_command(dead_letters_group, "requeue")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter (narrowed by --type, --campaign).")
@click.option("--type", "job_type", help="With --all: only this type.")
@click.option("--campaign", help="With --all: only this campaign.")
@click.option("--payload", help="A corrected payload for one dead letter: JSON, @FILE or -.")
def dead_letters_requeue(s, job_ids, every, job_type, campaign, payload):
    """Run dead letters again now (attempts start afresh; the history stays)."""
    if payload is not None and (every or len(job_ids) != 1):
        raise OperatorError(EXIT_USAGE, "--payload corrects one dead letter: give exactly one id")
    ids = _dead_letter_ids(s, job_ids, every, job_type, campaign)
    if len(job_ids) == 1:
        body = {"payload": _payload(payload)} if payload is not None else None
        s.show(s.api.call("POST", path("dead-letters", ids[0], "requeue"), json=body), job_fields)
        return 0
    return bulk(s, ids, verb="requeued", noun="dead letters",
                call=lambda job_id: s.api.call("POST", path("dead-letters", job_id, "requeue")))


@operator_command(dead_letters_group, "discard")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter (narrowed by --type, --campaign).")
@click.option("--type", "job_type", help="With --all: only this type.")
@click.option("--campaign", help="With --all: only this campaign.")
def dead_letters_discard(s, job_ids, every, job_type, campaign):
    """Drop dead letters (their records stay until retention ends)."""
    ids = _dead_letter_ids(s, job_ids, every, job_type, campaign)
    if len(job_ids) == 1:
        s.show(s.api.call("DELETE", path("dead-letters", ids[0])), job_fields)
        return 0
    return bulk(s, ids, verb="discarded", noun="dead letters",
                call=lambda job_id: s.api.call("DELETE", path("dead-letters", job_id)))


def register_operator_commands(cli) -> None:
    """Add ``jobs``, ``schedules`` and ``dead-letters`` to the ``scheduler-service`` group."""
    for group in (jobs_group, schedules_group, dead_letters_group):
        cli.add_command(group)
