"""Every console page and form through the Flask app, on a real Redis and the live reference API."""

import base64
import re
from datetime import datetime, timedelta, timezone
from html import unescape

import pytest

from scheduler_service.config import load_settings
from scheduler_service.cron.expr import from_ms, next_fire_times, parse_cron
from scheduler_service.cron.status import schedule_store
from scheduler_service.dispatch import send_job
from scheduler_service.embedded_redis import EmbeddedRedis
from scheduler_service.jobstore import iso_ms, now_ms
from scheduler_service.services import build_services
from scheduler_service.web import create_app
from scheduler_service.web.console.present import short_time
from conftest import page, submit, token_of
from helpers import wait_for

WORLD = datetime(1700, 5, 1, tzinfo=timezone.utc)


def ms(dt):
    return int(dt.timestamp() * 1000)


def text_of(html):
    """The page's text, tags dropped, whitespace folded (what a reader sees)."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def later(minutes=60):
    return now_ms() + minutes * 60_000


# -- overview -------------------------------------------------------------------------

def test_overview_shows_health_queues_states_timers_and_sweeps(client, services):
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "hi"}, priority=9)
    send_job(services, "SAMPLE_ECHO", "c1", {"text": "hi"}, priority=1)
    send_job(services, "PING", "c1", run_at_ms=later())
    store = schedule_store(services)
    store.record_run("sample-tick", {"start": now_ms(), "durationMs": 1.5, "outcome": "skipped",
                                     "error": None, "tick": now_ms(), "trigger": "cron",
                                     "detail": "previous job unfinished"})
    html = page(client, "/admin/")
    text = text_of(html)
    for component in ("redis", "queue", "sample", "cron"):
        assert f"{component} " in text
    assert re.search(r"jobs\.high\s*</td>\s*<td class=\"num\">1<", html)
    assert re.search(r"jobs\.low\s*</td>\s*<td class=\"num\">1<", html)
    assert re.search(r"badge--queued\">queued</span></a></td><td class=\"num\">2<", html)
    assert re.search(r"badge--scheduled\">scheduled</span></a></td><td class=\"num\">1<", html)
    assert "1 waiting on the wall clock" in text
    sweeps = html[html.index('id="sweeps"'):]
    assert "sample-tick" in sweeps and "skipped" in sweeps and "event-expiration" in sweeps
    # Linked both ways with the queue dashboard
    assert 'href="/admin/queues/"' in html
    assert 'href="/admin/">Scheduler console</a>' in page(client, "/admin/queues/")


def test_overview_still_answers_when_redis_is_down_and_other_pages_say_why(tmp_path, base_env):
    server = EmbeddedRedis(tmp_path, persist=False).start()
    services = build_services(load_settings({**base_env, "REDIS_URL": server.url}))
    client = create_app(services=services).test_client()
    try:
        page(client, "/admin/")
        server.stop()
        text = text_of(page(client, "/admin/"))
        assert "unhealthy" in text and "unavailable:" in text
        assert "Redis cannot be reached" in page(client, "/admin/jobs", status=503)
    finally:
        services.close()
        server.stop()


# -- schedules ------------------------------------------------------------------------

def test_schedules_list_every_sweep_with_cron_overlap_and_forms(client, services):
    html = page(client, "/admin/schedules")
    for name in services.registry.sweeps:
        row = html[html.index(f'data-sweep="{name}"'):]
        row = row[:row.index("</tr>")]
        assert f"/admin/schedules/{name}/run" in row and f"/admin/schedules/{name}/disable" in row
    assert "*/5 * * * *" in html and "skip" in html


def test_schedule_page_shows_the_next_five_fire_times(client):
    before = now_ms()
    html = page(client, "/admin/schedules/event-expiration")
    listed = re.findall(r'<li><time datetime="([^"]+)"', html[html.index('id="next-runs"'):])
    expected = [iso_ms(int(t.timestamp() * 1000))
                for t in next_fire_times(parse_cron("*/5 * * * *"), from_ms(before), 5)]
    assert listed == expected or listed == [iso_ms(int(t.timestamp() * 1000)) for t in
                                            next_fire_times(parse_cron("*/5 * * * *"), from_ms(now_ms()), 5)]
    assert "CRON_EVENT_EXPIRATION" in html and "EVENT_EXPIRATION for SYSTEM" in text_of(html)


def test_run_now_enqueues_the_sweep_and_shows_the_run_with_its_job(client, services, worker):
    response = submit(client, "/admin/schedules/sample-tick", "/admin/schedules/sample-tick/run")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/admin/schedules/sample-tick?notice=ran")
    (job,), _ = services.jobs.list(job_type="SAMPLE_ECHO", campaign_id="sample")
    wait_for(lambda: services.jobs.get(job["id"])["state"] == "succeeded", message="the run's job")
    html = page(client, response.headers["Location"])
    assert "Enqueued a run of sample-tick." in html
    runs = html[html.index('id="runs"'):html.index('id="history"')]
    assert f'/admin/jobs/{job["id"]}' in runs and "manual" in runs and "enqueued" in runs
    assert "badge--succeeded" in runs and "run by console" in runs
    history = html[html.index('id="history"'):]
    assert "console" in history and f'/admin/jobs/{job["id"]}' in history


def test_a_failed_run_now_is_shown_as_a_failed_run(client):
    response = submit(client, "/admin/schedules/sample-broken", "/admin/schedules/sample-broken/run")
    assert "notice=run-failed" in response.headers["Location"]
    html = page(client, response.headers["Location"])
    runs = html[html.index('id="runs"'):]
    assert "badge--failed" in runs and "InvalidPayload" in runs


def test_disable_and_enable_change_the_schedule_with_the_console_as_actor(client, services):
    store = schedule_store(services)
    response = submit(client, "/admin/schedules", "/admin/schedules/sample-ping/disable",
                      {"next": "/admin/schedules"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/schedules?notice=disabled&subject=sample-ping"
    assert store.state("sample-ping").enabled is False
    html = page(client, "/admin/schedules/sample-ping")
    assert "None while the sweep is disabled." in html
    assert "/admin/schedules/sample-ping/enable" in html
    submit(client, "/admin/schedules/sample-ping", "/admin/schedules/sample-ping/enable")
    assert store.state("sample-ping").enabled is True
    again = submit(client, "/admin/schedules/sample-ping", "/admin/schedules/sample-ping/enable")
    assert "notice=unchanged" in again.headers["Location"]
    assert [(h["field"], h["from"], h["to"], h["actor"]) for h in store.history("sample-ping")] == [
        ("enabled", True, False, "console"), ("enabled", False, True, "console")]


def test_overlap_form_sets_the_policy_and_refuses_an_unknown_one(client, services):
    submit(client, "/admin/schedules/sample-ping", "/admin/schedules/sample-ping/overlap",
           {"overlap": "allow"})
    assert schedule_store(services).state("sample-ping").overlap == "allow"
    bad = submit(client, "/admin/schedules/sample-ping", "/admin/schedules/sample-ping/overlap",
                 {"overlap": "sometimes"})
    assert bad.status_code == 400 and "overlap must be skip or allow" in bad.get_data(as_text=True)


def test_an_unknown_sweep_is_a_404_page(client):
    assert "no sweep named" in page(client, "/admin/schedules/nope", status=404)
    html = page(client, "/admin/schedules")
    assert client.post("/admin/schedules/nope/run", data={"csrf_token": token_of(html)}).status_code == 404


# -- CSRF and redirects ---------------------------------------------------------------

def test_a_form_without_the_pages_token_changes_nothing(client, services):
    store = schedule_store(services)
    html = page(client, "/admin/schedules")
    token = token_of(html)
    # no token at all, a token not from the cookie, a cookie of its own
    assert client.post("/admin/schedules/sample-ping/disable").status_code == 403
    forged = token.split(".")[0] + "." + "0" * 64
    assert client.post("/admin/schedules/sample-ping/disable",
                       data={"csrf_token": forged}).status_code == 403
    fresh = create_app(services=services).test_client()
    fresh.set_cookie("scheduler_console_csrf", forged, path="/admin/")
    refused = fresh.post("/admin/schedules/sample-ping/disable", data={"csrf_token": forged})
    assert refused.status_code == 403 and "reload the page" in refused.get_data(as_text=True)
    assert store.state("sample-ping").enabled is True and store.history("sample-ping") == []
    # a GET never changes anything
    assert client.get("/admin/schedules/sample-ping/disable").status_code == 405
    # the page's own token works
    assert client.post("/admin/schedules/sample-ping/disable",
                       data={"csrf_token": token}).status_code == 303


def test_next_only_leads_back_into_the_console(client):
    for target in ("https://evil.example/admin/", "//evil.example/admin/", "/api/v1/jobs",
                   "/admin\\..\\x"):
        response = submit(client, "/admin/schedules", "/admin/schedules/sample-ping/disable",
                          {"next": target})
        assert response.headers["Location"].startswith("/admin/schedules/sample-ping?"), target


def test_console_pages_carry_security_headers_and_the_token_cookie(client):
    response = client.get("/admin/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert "scheduler_console_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


# -- timers ---------------------------------------------------------------------------

def test_timers_show_the_wall_clock_and_each_world_clock_with_their_jobs(client, services, reference_api):
    camp = reference_api.make_campaign(name="Ravenmoor", world_time=WORLD)["id"]
    wall, _ = send_job(services, "PING", "c1", run_at_ms=later(30))
    world, _ = send_job(services, "PING", camp, run_at_world_ms=ms(WORLD + timedelta(days=2)))
    html = page(client, "/admin/timers")
    wall_section = html[html.index('id="wall"'):html.index("World clocks")]
    assert f'data-job="{wall["id"]}"' in wall_section and "1 timer waiting" in text_of(wall_section)
    row = html[html.index(f'data-campaign="{camp}"'):]
    row = text_of(row[:row.index("</tr>")])
    assert "Ravenmoor" in row and short_time(ms(WORLD)) in row and " 1 " in row
    world_section = html[html.index(f'id="world-{camp}"'):]
    assert f'data-job="{world["id"]}"' in world_section and "in 2 d" in text_of(world_section)
    # each clock's own page
    assert f'data-job="{wall["id"]}"' in page(client, "/admin/timers/wall")
    one = page(client, f"/admin/timers/world/{camp}")
    assert f'data-job="{world["id"]}"' in one and "Ravenmoor" in one
    assert "unknown to the main API" in page(client, "/admin/timers/world/no-such-campaign", status=404)


def test_cancel_on_the_timers_page_removes_the_timer(client, services):
    job, _ = send_job(services, "PING", "c1", run_at_ms=later(30))
    response = submit(client, "/admin/timers", f"/admin/jobs/{job['id']}/cancel", {"next": "/admin/timers"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/timers?notice=cancelled&subject={job['id']}"
    assert services.jobs.get(job["id"])["state"] == "cancelled"
    assert services.jobs.waiting_timers() == (0, [])
    html = page(client, response.headers["Location"])
    assert f'data-job="{job["id"]}"' not in html and f"Cancelled job {job['id']}." in html
    history = services.jobs.history(job["id"])
    assert history[-1]["detail"] == "cancelled in the console by console"


# -- jobs -----------------------------------------------------------------------------

def test_jobs_filter_by_state_type_and_campaign_and_page_on(client, services):
    mine = [send_job(services, "SAMPLE_ECHO", "camp-a", {"text": str(i)})[0] for i in range(3)]
    other, _ = send_job(services, "PING", "camp-a", run_at_ms=later())
    elsewhere, _ = send_job(services, "SAMPLE_ECHO", "camp-b", {"text": "b"})
    html = page(client, "/admin/jobs?state=queued&type=SAMPLE_ECHO&campaign=camp-a")
    listed = re.findall(r'data-job="([^"]+)"', html)
    assert sorted(listed) == sorted(j["id"] for j in mine)  # newest first; ties share a ms
    assert '<option value="queued" selected>' in html and '<option value="SAMPLE_ECHO" selected>' in html
    scheduled = re.findall(r'data-job="([^"]+)"', page(client, "/admin/jobs?state=scheduled"))
    assert scheduled == [other["id"]]
    assert elsewhere["id"] in page(client, "/admin/jobs?campaign=camp-b")
    # paging: one page of 50, then the rest
    services.jobs.create_many(
        (({"id": f"bulk-{i:03d}", "type": "PING", "campaignId": "bulk", "payload": {}, "priority": 5},
          later(), None) for i in range(55)))
    first = page(client, "/admin/jobs?campaign=bulk")
    assert len(re.findall(r'data-job="', first)) == 50
    older = unescape(re.search(r'id="older" href="([^"]+)"', first).group(1))
    second = re.findall(r'data-job="([^"]+)"', page(client, older))
    assert len(second) == 5 and 'id="older"' not in page(client, older)
    assert "state must be one of" in page(client, "/admin/jobs?state=lost", status=400)
    assert "cursor" in page(client, "/admin/jobs?cursor=x", status=400)


def test_job_page_shows_payload_result_error_and_history(client, services, worker):
    ok, _ = send_job(services, "SAMPLE_ECHO", "c1", {"text": "hello <b>world</b>"})
    failing, _ = send_job(services, "SAMPLE_FAIL", "c1", {})
    wait_for(lambda: services.jobs.get(ok["id"])["state"] == "succeeded", message="success")
    wait_for(lambda: services.jobs.get(failing["id"])["state"] == "dead", timeout=20, message="dead")
    html = page(client, f"/admin/jobs/{ok['id']}")
    assert "hello &lt;b&gt;world&lt;/b&gt;" in html and "<b>world</b>" not in html
    assert '"echo": "hello <b>world</b>"' in unescape(html[html.index('id="result"'):])
    transitions = text_of(html[html.index('id="transitions"'):])
    assert "queued running" in transitions and "running succeeded" in transitions
    assert "Cancel job" not in html and 'id="dead-letter"' not in html
    dead = page(client, f"/admin/jobs/{failing['id']}")
    assert "sample failure on attempt 3" in dead[dead.index('id="last-error"'):]
    assert 'id="dead-letter"' in dead
    assert "no job with id" in page(client, "/admin/jobs/nope", status=404)


def test_cancel_on_the_job_page_and_a_second_cancel_is_409(client, services):
    job, _ = send_job(services, "PING", "c1", run_at_ms=later())
    html = page(client, f"/admin/jobs/{job['id']}")
    assert "Cancel job" in html
    response = client.post(f"/admin/jobs/{job['id']}/cancel", data={"csrf_token": token_of(html)})
    assert response.headers["Location"] == f"/admin/jobs/{job['id']}?notice=cancelled&subject={job['id']}"
    assert services.jobs.get(job["id"])["state"] == "cancelled"
    again = client.post(f"/admin/jobs/{job['id']}/cancel", data={"csrf_token": token_of(html)})
    assert again.status_code == 409 and "is cancelled" in again.get_data(as_text=True)


@pytest.fixture
def dead_letter(services, worker):
    job, _ = send_job(services, "SAMPLE_REFUSE", "c1", {})
    wait_for(lambda: services.jobs.is_dead_letter(job["id"]), message="the dead letter")
    return job


def test_requeue_refuses_bad_json_and_a_bad_payload_keeping_the_edit(client, services):
    # SAMPLE_ECHO's payload is checked, so a dead one is made by hand from a stored job
    job, _ = send_job(services, "SAMPLE_ECHO", "c1", {"text": "x"}, run_at_ms=later())
    assert services.jobs.transition(job["id"], ("scheduled",), "dead", "test", deadLetter="1").ok
    path = f"/admin/jobs/{job['id']}"
    bad_json = submit(client, path, f"{path}/requeue", {"payload": '{"text": '})
    assert bad_json.status_code == 400
    html = bad_json.get_data(as_text=True)
    assert "payload: not valid JSON" in html and "{&#34;text&#34;: </textarea>" in html
    bad = submit(client, path, f"{path}/requeue", {"payload": '{"text": ""}'})
    assert bad.status_code == 400
    assert "<code>payload.text</code>" in bad.get_data(as_text=True)
    assert services.jobs.get(job["id"])["state"] == "dead"
    fixed = submit(client, path, f"{path}/requeue", {"payload": '{"text": "fixed"}'})
    assert fixed.status_code == 303 and "notice=requeued" in fixed.headers["Location"]
    record = services.jobs.get(job["id"])
    assert record["state"] == "queued" and record["payload"] == {"text": "fixed"}
    assert services.jobs.history(job["id"])[-1]["detail"] == (
        "replayed from the dead letters by console with a corrected payload")


def test_requeue_unchanged_and_discard_of_dead_letters(client, services, dead_letter):
    path = f"/admin/jobs/{dead_letter['id']}"
    html = page(client, path)
    assert "Requeue" in html and "Discard" in html
    response = submit(client, path, f"{path}/requeue", {"payload": "{}"})
    assert response.status_code == 303
    wait_for(lambda: services.jobs.is_dead_letter(dead_letter["id"]), message="dead again")
    history = services.jobs.history(dead_letter["id"])
    assert "replayed from the dead letters by console" in [h["detail"] for h in history]
    discarded = submit(client, path, f"{path}/discard")
    assert discarded.status_code == 303 and "notice=discarded" in discarded.headers["Location"]
    assert not services.jobs.is_dead_letter(dead_letter["id"])
    assert 'id="dead-letter"' not in page(client, path)
    token = token_of(page(client, "/admin/schedules"))
    assert client.post(f"{path}/discard", data={"csrf_token": token}).status_code == 409


# -- protection -----------------------------------------------------------------------

PRODUCTION = dict(SCHEDULER_ENV="production", API_SERVICE_ACCOUNT_TOKEN="api-secret-value-1",
                  SCHEDULER_API_TOKEN="rest-secret-value-2" * 2)


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_in_production_the_console_needs_the_dashboards_sign_in_and_records_the_user(make_settings):
    services = build_services(make_settings(**PRODUCTION, ADMIN_DASHBOARD_ENABLED="true",
                                            ADMIN_DASHBOARD_USER="ops",
                                            ADMIN_DASHBOARD_PASSWORD="pw-secret-value-3"))
    try:
        client = create_app(services=services).test_client()
        for path in ("/admin/", "/admin/schedules", "/admin/timers", "/admin/jobs"):
            denied = client.get(path)
            assert denied.status_code == 401, path
            assert denied.headers["WWW-Authenticate"].startswith('Basic realm="scheduler dashboard"')
            assert client.get(path, headers=basic("ops", "nope")).status_code == 401
        auth = basic("ops", "pw-secret-value-3")
        html = page(client, "/admin/schedules/sample-ping", headers=auth)
        assert "signed in as <strong>ops</strong>" in html
        assert client.post("/admin/schedules/sample-ping/disable",
                           data={"csrf_token": token_of(html)}).status_code == 401
        response = client.post("/admin/schedules/sample-ping/disable", headers=auth,
                               data={"csrf_token": token_of(html)})
        assert response.status_code == 303
        assert schedule_store(services).history("sample-ping")[-1]["actor"] == "ops"
    finally:
        services.close()


def test_a_token_made_for_another_user_is_refused(make_settings):
    env = dict(ADMIN_DASHBOARD_USER="ops", ADMIN_DASHBOARD_PASSWORD="pw")
    services = build_services(make_settings(**env))
    try:
        client = create_app(services=services).test_client()
        token = token_of(page(client, "/admin/schedules", headers=basic("ops", "pw")))
        # the same cookie and token, presented by a console that signs in as someone else
        other = build_services(make_settings(**{**env, "ADMIN_DASHBOARD_USER": "eve"},
                                             REDIS_NAMESPACE=services.settings.redis_namespace))
        try:
            eve = create_app(services=other).test_client()
            eve.set_cookie("scheduler_console_csrf", token, path="/admin/")
            assert eve.post("/admin/schedules/sample-ping/disable", headers=basic("eve", "pw"),
                            data={"csrf_token": token}).status_code == 403
            # while a token made for eve, by her own page, passes
            own = token_of(page(eve, "/admin/schedules", headers=basic("eve", "pw")))
            assert eve.post("/admin/schedules/sample-ping/disable", headers=basic("eve", "pw"),
                            data={"csrf_token": own}).status_code == 303
        finally:
            other.close()
    finally:
        services.close()


def test_the_console_is_off_with_the_dashboard(make_settings):
    services = build_services(make_settings(**PRODUCTION))
    try:
        client = create_app(services=services).test_client()
        assert client.get("/admin/").status_code == 404
        assert client.get("/admin/jobs").status_code == 404
    finally:
        services.close()


def test_no_page_renders_a_secret(make_settings, reference_api, services):
    # Given a service whose every secret is set (the dashboard's password too)
    secrets = {"API_SERVICE_ACCOUNT_TOKEN": reference_api.key, "SCHEDULER_API_TOKEN": "rest-token-value-4",
               "ADMIN_DASHBOARD_USER": "ops", "ADMIN_DASHBOARD_PASSWORD": "pw-secret-value-5"}
    svc = build_services(make_settings(**reference_api.client_env(**secrets),
                                       REDIS_NAMESPACE=services.settings.redis_namespace))
    try:
        client = create_app(services=svc).test_client()
        auth = basic("ops", "pw-secret-value-5")
        job, _ = send_job(svc, "PING", "c1", run_at_ms=later())
        paths = ["/admin/", "/admin/schedules", "/admin/schedules/sample-tick", "/admin/timers",
                 "/admin/timers/wall", "/admin/jobs", f"/admin/jobs/{job['id']}"]
        page(client, "/admin/", headers=auth)  # the first page makes the CSRF secret
        csrf_secret = svc.redis.get(f"{svc.settings.redis_namespace}:console:csrf-secret").decode()
        secret_values = [reference_api.key, "rest-token-value-4", "pw-secret-value-5", csrf_secret]
        for path in paths:
            html = page(client, path, headers=auth)
            for value in secret_values:
                assert value not in html, (path, value)
    finally:
        svc.close()
