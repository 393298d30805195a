"""The queue dashboard's two actions, done through the job store and a server-side CSRF check.

dramatiq-dashboard's own ``delete-message`` and ``requeue-message`` only move Dramatiq
messages: a deleted message left its job ``queued`` for good, a requeued dead letter ran
while its record still said ``dead``; and its CSRF check compared the form's token with a
cookie the client chose. Both routes are therefore answered here instead:

* the token is ``nonce.HMAC(secret, nonce|purpose)``, the secret being the console's, kept
  in Redis (:func:`~scheduler_service.web.console.protection.csrf_secret`) and the purpose
  naming the dashboard and the signed-in user, so neither a planted cookie nor a console
  token passes;
* deleting a waiting message cancels its job (``queued``, ``failed`` or ``scheduled`` →
  ``cancelled``) through :meth:`~scheduler_service.jobstore.JobStore.transition`, then drops
  the message; deleting a dead letter discards it
  (:meth:`~scheduler_service.jobstore.JobStore.discard_dead_letter`); requeueing a dead
  letter replays it (:meth:`~scheduler_service.jobstore.JobStore.replay_dead_letter`), its
  record back to ``queued``. Each history entry names the dashboard (and its user).

A message whose job is running, or whose record is not the state the action needs, is left
alone with a 409; a message of no job (none of the service's) is only deleted.
"""

from __future__ import annotations

import html
import logging
import threading

from dramatiq.common import dq_name, q_name, xq_name
from werkzeug.wrappers import Request

from .. import wire
from .console.present import CANCELLABLE
from .console.protection import csrf_secret, new_token, token_valid

logger = logging.getLogger(__name__)

#: The actor of changes made in a dashboard without sign-in.
ACTOR = "dashboard"
#: Form field of the token (the name the dashboard's templates post).
CSRF_FIELD = "__dd_csrf"
#: Paths (under the dashboard's prefix) answered here.
ACTIONS = ("/delete-message", "/requeue-message")
#: Largest form accepted by an action.
MAX_FORM_BYTES = 16 * 1024

_current = threading.local()


def actor_of(user: str | None) -> str:
    """Who a change is recorded as: ``dashboard``, or ``<user> (dashboard)`` when signed in."""
    return f"{user} ({ACTOR})" if user else ACTOR


def _purpose(actor: str) -> str:
    return f"queues|{actor}"


def render_token() -> str:
    """The dashboard templates' ``csrf_token()``: a hidden field with this request's token."""
    token = getattr(_current, "token", "")
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(token)}">'


def begin(services, actor: str) -> None:
    """Make the token the pages of this request (this thread) render."""
    secret = csrf_secret(services)
    _current.token = new_token(secret, _purpose(actor)) if secret is not None else ""


def _text(status: str, message: str, start_response):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Cache-Control", "no-store")])
    return [message.encode() + b"\n"]


def _redirect(location: str, start_response):
    start_response("303 See Other", [("Location", location), ("Content-Type", "text/plain")])
    return [b""]


def handle(environ, start_response, services, actor: str, prefix: str):
    """Answer a POST to one of :data:`ACTIONS` (``PATH_INFO`` relative to the prefix)."""
    if environ.get("REQUEST_METHOD") != "POST":
        return _text("405 Method Not Allowed", "Expected a POST request.", start_response)
    request = Request(environ)
    request.max_content_length = MAX_FORM_BYTES
    request.max_form_memory_size = MAX_FORM_BYTES
    form = request.form
    if not token_valid(form.get(CSRF_FIELD), csrf_secret(services), _purpose(actor)):
        logger.warning("queue dashboard action refused: missing or invalid CSRF token",
                       extra={"action": environ.get("PATH_INFO"), "actor": actor})
        return _text("403 Forbidden", "This form's security token is missing or out of date: "
                     "reload the page and send it again.", start_response)
    queue, rid = form.get("queue", ""), form.get("id", "")
    if not queue or not rid or q_name(queue) not in services.queue_names:
        return _text("400 Bad Request", "queue must be one of the service's queues and id a "
                     "message id", start_response)
    if environ["PATH_INFO"].rstrip("/") == "/delete-message":
        status, message = delete_message(services, queue, rid, actor)
    else:
        status, message = requeue_message(services, queue, rid, actor)
    if status != "ok":
        return _text(status, message, start_response)
    tab = "failed" if queue == xq_name(queue) else "delayed" if queue == dq_name(queue) else "standard"
    return _redirect(f"{environ.get('SCRIPT_NAME', '')}{prefix}/queues/{q_name(queue)}/{tab}",
                     start_response)


def _belongs(services, job_id: str | None, rid: str) -> str | None:
    """The state of the job whose current message is ``rid``, or None (no such job)."""
    if job_id is None:
        return None
    state, current = services.jobs.get_internal(job_id, "state", "rid")
    if state is None or current != rid:
        return None
    return state


def delete_message(services, queue: str, rid: str, actor: str) -> tuple[str, str]:
    """Delete one message, keeping its job's record true; ``("ok", "")`` or an HTTP status."""
    jobs, prefix = services.jobs, services.jobs.prefix
    job_id = wire.job_id_of_rid(rid)
    state = _belongs(services, job_id, rid)
    extra = {"job_id": job_id, "queue": queue, "actor": actor}
    if queue == xq_name(queue):
        if state == "dead" and jobs.is_dead_letter(job_id):
            jobs.discard_dead_letter(job_id, detail=f"dead letter discarded in the queue "
                                                    f"dashboard by {actor}")
        else:
            wire.drop_dead_copy(services.redis, prefix, q_name(queue), rid)
        logger.info("dead letter deleted in the queue dashboard", extra=extra)
        return "ok", ""
    if state is not None and state not in ("cancelled", "succeeded", "dead"):
        result = jobs.transition(job_id, CANCELLABLE, "cancelled",
                                 f"cancelled: its message was deleted in the queue dashboard "
                                 f"by {actor}")
        if not result.ok:
            return "409 Conflict", (f"job {job_id} is {result.previous}: only the message of a "
                                    "scheduled, queued or retrying job can be deleted")
    wire.drop_waiting_message(services.redis, prefix, queue, rid)
    logger.info("message deleted in the queue dashboard", extra=extra)
    return "ok", ""


def requeue_message(services, queue: str, rid: str, actor: str) -> tuple[str, str]:
    """Run a dead letter again through the job store; ``("ok", "")`` or an HTTP status."""
    job_id = wire.job_id_of_rid(rid)
    if queue != xq_name(queue):
        return "409 Conflict", "only a dead letter (the failed tab) can be requeued"
    if _belongs(services, job_id, rid) != "dead" or not services.jobs.is_dead_letter(job_id):
        return "409 Conflict", f"message {rid} is not the dead letter of a dead job"
    result = services.jobs.replay_dead_letter(
        job_id, detail=f"replayed from the dead letters in the queue dashboard by {actor}")
    if not result.ok:
        return "409 Conflict", f"job {job_id} is {result.previous}, not dead"
    logger.info("dead letter requeued in the queue dashboard",
                extra={"job_id": job_id, "queue": queue, "actor": actor})
    return "ok", ""
