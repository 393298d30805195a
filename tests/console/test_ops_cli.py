"""The operator command line against a live ``scheduler-service web`` process, over real HTTP.

Most commands run through click's runner in this process (the HTTP is real); a few run as
the console script itself, to show the exit codes a shell sees.
"""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from scheduler_service.cli import cli
from scheduler_service.cron.status import schedule_store
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import free_port
from scheduler_service.jobstore import STATES, now_ms
from scheduler_service.ops_cli import CANCELLABLE
from scheduler_service.web.console.present import CANCELLABLE as CONSOLE_CANCELLABLE
from helpers import running_worker, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(live):
    """``run("jobs", "list", ...)``: the command against the live process; ``(code, out, err)``."""

    def invoke(*args, env=None, input=None, url=True):
        runner = CliRunner()
        full = list(args) + (["--url", live.url] if url else [])
        result = runner.invoke(cli, full, env={"SCHEDULER_API_TOKEN": live.token, **(env or {})},
                               input=input, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def later(minutes=60):
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_the_operator_states_match_the_services():
    assert CANCELLABLE == CONSOLE_CANCELLABLE and set(CANCELLABLE) <= set(STATES)


def test_create_show_history_and_list_a_job(run, live):
    code, out, err = run("jobs", "create", "SAMPLE_ECHO", "--campaign", "cli-a",
                         "--payload", '{"text": "hello"}', "--priority", "7",
                         "--run-at", later().isoformat(), "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["state"] == "scheduled" and job["priority"] == 7 and job["payload"] == {"text": "hello"}
    code, out, _ = run("jobs", "show", job["id"])
    assert code == 0 and "id:" in out and job["id"] in out and '"text": "hello"' in out
    assert "state:" in out and "scheduled" in out
    code, out, _ = run("jobs", "history", job["id"])
    assert code == 0 and out.splitlines()[0].split() == ["AT", "FROM", "TO", "DETAIL"]
    assert "scheduled" in out.splitlines()[1]
    code, out, _ = run("jobs", "list", "--campaign", "cli-a", "--state", "scheduled")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "TYPE", "CAMPAIGN", "STATE"]
    assert [r.split()[0] for r in rows] == [job["id"]]
    code, out, _ = run("jobs", "list", "--campaign", "cli-a", "--json")
    assert [j["id"] for j in json.loads(out)["items"]] == [job["id"]]


def test_job_payload_from_a_file_and_from_standard_input(run, tmp_path):
    source = tmp_path / "payload.json"
    source.write_text('{"text": "from a file"}')
    code, out, err = run("jobs", "create", "SAMPLE_ECHO", "--campaign", "cli-f",
                         "--payload", f"@{source}", "--json")
    assert code == 0, err
    assert json.loads(out)["payload"] == {"text": "from a file"}
    code, out, err = run("jobs", "create", "SAMPLE_ECHO", "--campaign", "cli-f", "--payload", "-",
                         "--json", input='{"text": "from stdin"}')
    assert code == 0 and json.loads(out)["payload"] == {"text": "from stdin"}


@pytest.mark.parametrize("args, says", [
    (["--payload", '{"text": ""}'], "payload.text"),
    (["--payload", '{"text": '], "--payload: not valid JSON"),
    (["--payload", "[1]"], "must be a JSON object"),
    (["--payload", "@/no/such/file"], "cannot read '/no/such/file'"),
    (["--run-at", "tomorrow"], "runAt"),
    (["--run-at", "2030-01-01T00:00:00Z", "--run-at-world-time", "2030-01-01T00:00:00Z"], "not both"),
])
def test_a_bad_create_is_exit_2_with_one_line_naming_the_field(run, args, says):
    code, out, err = run("jobs", "create", "SAMPLE_ECHO", "--campaign", "cli-b", *args)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("scheduler-service: ") and says in line


def test_cancel_one_job_then_again_is_exit_1(run, live):
    job, _ = send_job(live.services, "PING", "cli-c", run_at_ms=now_ms() + 3_600_000)
    code, out, _ = run("jobs", "cancel", job["id"])
    assert code == 0 and "cancelled" in out
    assert live.services.jobs.get(job["id"])["state"] == "cancelled"
    code, out, err = run("jobs", "cancel", job["id"])
    assert code == 1 and "409 WRONG_STATE" in one_line(err)
    code, _, err = run("jobs", "show", "no-such-job")
    assert code == 1 and "404 NOT_FOUND" in one_line(err)


def test_bulk_cancel_by_state_and_campaign_shows_progress_and_a_summary(run, live):
    store = live.services.jobs
    due = now_ms() + 3_600_000
    mine = [send_job(live.services, "PING", "cli-bulk", run_at_ms=due)[0]["id"] for _ in range(6)]
    queued, _ = send_job(live.services, "SAMPLE_ECHO", "cli-bulk", {"text": "x"})
    other, _ = send_job(live.services, "PING", "cli-other", run_at_ms=due)
    code, out, err = run("jobs", "cancel", "--state", "scheduled", "--campaign", "cli-bulk")
    assert code == 0, err
    assert out.strip() == "cancelled 6 of 6 jobs"
    assert "cancelled jobs" in err  # the progress bar's label
    assert {store.get(i)["state"] for i in mine} == {"cancelled"}
    assert store.get(queued["id"])["state"] == "queued" and store.get(other["id"])["state"] == "scheduled"
    code, out, _ = run("jobs", "cancel", "--state", "scheduled", "--campaign", "cli-bulk", "--json")
    assert code == 0 and json.loads(out) == {"action": "cancelled", "total": 0, "done": [], "failed": []}


def test_a_partly_failed_bulk_is_exit_1_naming_each_failure(run, live):
    due = now_ms() + 3_600_000
    ok = [send_job(live.services, "PING", "cli-p", run_at_ms=due)[0]["id"] for _ in range(2)]
    code, out, err = run("jobs", "cancel", ok[0], "no-such-job", ok[1], "--json")
    assert code == 1
    summary = json.loads(out)
    assert summary["done"] == ok and summary["total"] == 3
    assert [(f["id"], f["status"], f["code"]) for f in summary["failed"]] == [("no-such-job", 404, "NOT_FOUND")]
    code, out, err = run("jobs", "cancel", ok[0], ok[1])
    assert code == 1 and out.strip() == "cancelled 0 of 2 jobs; 2 failed"
    assert err.count("409 WRONG_STATE") == 2


def test_schedules_list_show_disable_enable_run_and_history(run, live):
    code, out, _ = run("schedules", "list")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["NAME", "ENABLED", "CRON"]
    assert any(line.split()[0] == "sample-ping" for line in out.splitlines()[1:])
    code, out, _ = run("schedules", "show", "event-expiration")
    assert code == 0 and "*/5 * * * *" in out and out.count("Z\n") >= 5 and "next runs:" in out
    code, out, _ = run("schedules", "disable", "sample-ping", "--actor", "night shift", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False and json.loads(out)["nextRuns"] == []
    code, out, _ = run("schedules", "enable", "sample-ping", "--actor", "night shift")
    assert code == 0 and "enabled:" in out and "yes" in out
    code, out, _ = run("schedules", "run", "sample-tick", "--actor", "night shift", "--json")
    assert code == 0
    ran = json.loads(out)
    assert ran["schedule"] == "sample-tick" and ran["job"]["type"] == "SAMPLE_ECHO"
    code, out, _ = run("schedules", "history", "sample-ping", "--json")
    items = json.loads(out)["items"]
    assert [(h["field"], h["to"], h["actor"]) for h in items][-2:] == [
        ("enabled", False, "night shift"), ("enabled", True, "night shift")]
    code, out, _ = run("schedules", "history", "sample-tick")
    assert "night shift" in out and ran["job"]["id"] in out
    assert schedule_store(live.services).last_run("sample-tick")["jobId"] == ran["job"]["id"]
    code, _, err = run("schedules", "show", "nope")
    assert code == 1 and "404 NOT_FOUND" in one_line(err)


def test_dead_letters_list_requeue_all_and_discard_all(run, live):
    with running_worker(live.services, threads=2):
        ids = [send_job(live.services, "SAMPLE_REFUSE", "cli-dead", {})[0]["id"] for _ in range(3)]
        wait_for(lambda: all(live.services.jobs.is_dead_letter(i) for i in ids), message="3 dead letters")
        code, out, _ = run("dead-letters", "list", "--campaign", "cli-dead", "--json")
        assert code == 0 and sorted(j["id"] for j in json.loads(out)["items"]) == sorted(ids)
        code, out, err = run("dead-letters", "requeue", "--all", "--campaign", "cli-dead")
        assert code == 0, err
        assert out.strip() == "requeued 3 of 3 dead letters" and "requeued dead letters" in err
        wait_for(lambda: all(live.services.jobs.is_dead_letter(i) for i in ids), message="dead again")
    for job_id in ids:
        details = [h["detail"] for h in live.services.jobs.history(job_id)]
        assert "replayed from the dead letters" in details
    code, out, _ = run("dead-letters", "discard", "--all", "--type", "SAMPLE_REFUSE", "--campaign", "cli-dead")
    assert code == 0 and out.strip() == "discarded 3 of 3 dead letters"
    code, out, _ = run("dead-letters", "list", "--campaign", "cli-dead")
    assert code == 0 and out.strip() == "no job matches"


def test_requeue_one_dead_letter_with_a_corrected_payload(run, live):
    job, _ = send_job(live.services, "SAMPLE_ECHO", "cli-fix", {"text": "x"}, run_at_ms=now_ms() + 3_600_000)
    assert live.services.jobs.transition(job["id"], ("scheduled",), "dead", "test", deadLetter="1").ok
    code, _, err = run("dead-letters", "requeue", job["id"], "--payload", '{"text": ""}')
    assert code == 2 and "payload.text" in one_line(err)
    code, out, err = run("dead-letters", "requeue", job["id"], "--payload", '{"text": "fixed"}', "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "queued" and json.loads(out)["payload"] == {"text": "fixed"}
    code, _, err = run("dead-letters", "discard", job["id"])
    assert code == 1 and "is not a dead letter" in one_line(err)


@pytest.mark.parametrize("args", [
    ["jobs", "cancel"],
    ["jobs", "cancel", "some-id", "--campaign", "x"],
    ["dead-letters", "requeue"],
    ["dead-letters", "requeue", "--type", "PING"],
    ["dead-letters", "requeue", "a", "--all"],
    ["dead-letters", "requeue", "a", "b", "--payload", "{}"],
    ["dead-letters", "discard"],
])
def test_bad_usage_is_exit_2_with_one_line(run, args):
    code, out, err = run(*args)
    assert code == 2 and out == "" and one_line(err).startswith("scheduler-service: ")


def test_a_missing_argument_is_clicks_usage_error_exit_2(run):
    code, _, err = run("jobs", "show")
    assert code == 2 and "Missing argument 'JOB_ID'" in err


def test_unreachable_unauthorized_or_not_the_scheduler_is_exit_3(run, live, reference_api):
    code, _, err = run("jobs", "list", "--url", f"http://127.0.0.1:{free_port()}", url=False)
    assert code == 3 and "cannot reach the scheduler" in one_line(err) and "connection refused" in err
    code, _, err = run("jobs", "list", env={"SCHEDULER_API_TOKEN": "wrong"})
    assert code == 3 and "refused the request (401)" in one_line(err)
    code, _, err = run("jobs", "list", env={"SCHEDULER_API_TOKEN": None})
    assert code == 3 and "give --token or set SCHEDULER_API_TOKEN" in one_line(err)
    code, _, err = run("jobs", "list", "--url", reference_api.base_url, url=False)
    assert code == 3 and "is --url the scheduler service?" in one_line(err)
    code, _, err = run("jobs", "list", "--url", "ftp://example", url=False)
    assert code == 2 and "must be an http(s) URL" in one_line(err)


def test_the_console_script_exits_with_the_same_codes(live):
    env = {**live.env, "SCHEDULER_URL": live.url, "SCHEDULER_API_TOKEN": live.token}
    done = subprocess.run([sys.executable, "-m", "scheduler_service", "schedules", "list", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sample-ping" in {s["name"] for s in json.loads(done.stdout)["items"]}
    down = subprocess.run([sys.executable, "-m", "scheduler_service", "jobs", "list"],
                          env={**env, "SCHEDULER_URL": f"http://127.0.0.1:{free_port()}"},
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 3 and down.stdout == ""
    assert down.stderr.strip().startswith("scheduler-service: cannot reach the scheduler at")
