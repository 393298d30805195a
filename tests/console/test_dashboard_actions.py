"""The queue dashboard's delete and requeue actions over real HTTP against a live web process
(open, as in development): the CSRF token is checked against the server's secret, and every
action leaves the job's record telling the truth."""

import re

import pytest
import requests

from scheduler_service import wire
from scheduler_service.dispatch import send_job
from helpers import redis_state, running_worker, wait_for

pytestmark = pytest.mark.slow

FIELD = re.compile(r'name="__dd_csrf" value="([^"]*)"')


def dashboard_token(live, queue, tab):
    """GET a queue tab the way a browser does; the token of its forms."""
    page = requests.get(f"{live.url}/admin/queues/queues/{queue}/{tab}", timeout=10)
    assert page.status_code == 200
    found = FIELD.findall(page.text)
    assert found and found[0], "the tab shows no form"
    return found[0]


def post(live, action, data, cookies=None):
    return requests.post(f"{live.url}/admin/queues/{action}", data=data, cookies=cookies,
                         allow_redirects=False, timeout=10)


def queued_job(live):
    job, _ = send_job(live.services, "SAMPLE_ECHO", "dash-c", {"text": "hi"})
    assert job["state"] == "queued"
    queue, rid = live.services.jobs.get_internal(job["id"], "queue", "rid")
    return job["id"], queue, rid


def state(live):
    return redis_state(live.services.redis, live.services.settings.redis_namespace)


def test_a_self_chosen_csrf_cookie_deletes_nothing(live):
    job_id, queue, rid = queued_job(live)
    before = state(live)
    # the attack of the defect: a cookie and a form field both set to a value of one's choice
    forged = post(live, "delete-message", {"__dd_csrf": "a" * 64, "queue": queue, "id": rid},
                  cookies={"__dd_csrf": "a" * 64})
    assert forged.status_code == 403 and "security token" in forged.text
    # no token at all, and a token of the console's forms, fail the same way
    assert post(live, "delete-message", {"queue": queue, "id": rid}).status_code == 403
    console = requests.get(f"{live.url}/admin/jobs/{job_id}", timeout=10)
    console_token = re.search(r'name="csrf_token" value="([^"]+)"', console.text).group(1)
    assert post(live, "delete-message", {"__dd_csrf": console_token, "queue": queue, "id": rid},
                cookies=console.cookies).status_code == 403
    assert state(live) == before
    assert live.services.jobs.get(job_id)["state"] == "queued"


def test_deleting_a_waiting_message_cancels_its_job_with_the_dashboard_named(live):
    job_id, queue, rid = queued_job(live)
    token = dashboard_token(live, queue, "standard")
    answer = post(live, "delete-message", {"__dd_csrf": token, "queue": queue, "id": rid})
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/admin/queues/queues/{queue}/standard"
    record = live.services.jobs.get(job_id)
    assert record["state"] == "cancelled"
    last = live.services.jobs.history(job_id)[-1]
    assert (last["from"], last["to"]) == ("queued", "cancelled")
    assert "queue dashboard by dashboard" in last["detail"]
    prefix = live.services.jobs.prefix
    assert not live.services.redis.hexists(wire.messages_key(prefix, queue), rid)
    assert rid.encode() not in live.services.redis.lrange(wire.queue_key(prefix, queue), 0, -1)
    # a second delete of the same message changes nothing more
    again = post(live, "delete-message", {"__dd_csrf": token, "queue": queue, "id": rid})
    assert again.status_code == 303
    assert len(live.services.jobs.history(job_id)) == 2


def test_requeue_and_delete_of_a_dead_letter_keep_its_record_true(live):
    jobs = live.services.jobs
    job, _ = send_job(live.services, "SAMPLE_REFUSE", "dash-d", {})
    with running_worker(live.services):
        wait_for(lambda: jobs.get(job["id"])["state"] == "dead", timeout=20, message="dead letter")
    queue, rid = jobs.get_internal(job["id"], "queue", "rid")
    dead_queue = queue + wire.DEAD_SUFFIX
    token = dashboard_token(live, queue, "failed")
    # requeue from the standard tab is refused: only a dead letter can be requeued
    wrong_tab = post(live, "requeue-message", {"__dd_csrf": token, "queue": queue, "id": rid})
    assert wrong_tab.status_code == 409
    # requeue of the dead letter: the record goes back to queued, its dead letter gone
    answer = post(live, "requeue-message", {"__dd_csrf": token, "queue": dead_queue, "id": rid})
    assert answer.status_code == 303, answer.text
    record = jobs.get(job["id"])
    assert record["state"] == "queued" and record["attempts"] == 0
    assert not jobs.is_dead_letter(job["id"])
    last = jobs.history(job["id"])[-1]
    assert (last["from"], last["to"]) == ("dead", "queued") and "dashboard" in last["detail"]
    prefix = jobs.prefix
    assert not live.services.redis.zscore(wire.dead_key(prefix, queue), rid)
    new_queue, new_rid = jobs.get_internal(job["id"], "queue", "rid")
    assert new_rid != rid and live.services.redis.hexists(wire.messages_key(prefix, new_queue), new_rid)
    # it runs (and is refused) again, then deleting its dead letter discards it
    with running_worker(live.services):
        wait_for(lambda: jobs.get(job["id"])["state"] == "dead" and jobs.is_dead_letter(job["id"]),
                 timeout=20, message="the replayed job to be dead again")
    _, rid = jobs.get_internal(job["id"], "queue", "rid")
    token = dashboard_token(live, queue, "failed")
    answer = post(live, "delete-message", {"__dd_csrf": token, "queue": dead_queue, "id": rid})
    assert answer.status_code == 303
    assert jobs.get(job["id"])["state"] == "dead" and not jobs.is_dead_letter(job["id"])
    assert "discarded in the queue dashboard by dashboard" in jobs.history(job["id"])[-1]["detail"]
    assert not live.services.redis.hexists(wire.dead_messages_key(prefix, queue), rid)


def test_the_actions_refuse_a_get_and_an_unknown_queue(live):
    job_id, queue, rid = queued_job(live)
    assert requests.get(f"{live.url}/admin/queues/delete-message", timeout=10).status_code == 405
    token = dashboard_token(live, queue, "standard")
    before = state(live)
    answer = post(live, "delete-message", {"__dd_csrf": token, "queue": "elsewhere", "id": rid})
    assert answer.status_code == 400 and "queue" in answer.text
    assert state(live) == before
