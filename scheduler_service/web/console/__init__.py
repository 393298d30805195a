"""The scheduler console at ``/admin/``: server-rendered pages for operators.

dramatiq-dashboard (``/admin/queues/``) shows Dramatiq's queues; the console shows what the
scheduler itself keeps: the health of every component, the sweeps and their runs, the wall
and world clocks with the timers waiting on them, and the job records. It runs inside the web
app and reads the stores in-process (no HTTP hop); its changes go through the same store
calls as the REST API's, with the signed-in user as the actor.

* :mod:`.protection` — sign-in (the dashboard's) and CSRF tokens;
* :mod:`.pages` — the pages (GET);
* :mod:`.actions` — the forms (POST, then a redirect back to the page);
* :mod:`.present` — how times, durations and values are shown.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")


class ConsoleError(Exception):
    """A request the console cannot serve as asked: ``status`` and the reason, for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


from . import actions, pages  # noqa: E402,F401 - the routes register themselves on bp


def init_console(app) -> None:
    """Serve the console on ``app`` (the caller decides whether it is enabled)."""
    app.register_blueprint(bp)
