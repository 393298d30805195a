"""dramatiq-dashboard at ``/admin/queues``, optionally behind HTTP basic auth.

The dashboard's own routes need the trailing slash, so the bare path redirects. The
scheduler console at ``/admin/`` (:mod:`scheduler_service.web.console`) sits behind the same
credentials (:func:`dashboard_credentials`, :func:`basic_auth_user`), and the dashboard's
navigation bar links to it. Its delete and requeue actions are answered by
:mod:`scheduler_service.web.dashboard_actions` (job records kept true, CSRF checked against
a server-side secret), not by the dashboard itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac

import jinja2
from dramatiq_dashboard import DashboardApp

PREFIX = "/admin/queues"
#: Where the scheduler console lives; the dashboard's navigation links there.
CONSOLE_PATH = "/admin/"
#: Realm of the basic-auth challenge, shared with the console so one sign-in serves both.
REALM = "scheduler dashboard"


class DashboardMount:
    """WSGI wrapper that sends ``/admin/queues...`` to the dashboard, the rest to Flask."""

    def __init__(self, app, dashboard, prefix, credentials=None, services=None):
        self.app = app
        self.dashboard = dashboard
        self.prefix = prefix
        self.credentials = credentials
        self.services = services
        from . import dashboard_actions  # here: it imports the console, which imports this module

        self.actions = dashboard_actions

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        user = None
        if self.credentials:
            user = basic_auth_user(environ.get("HTTP_AUTHORIZATION", ""), self.credentials)
        if self.credentials and user is None:
            start_response("401 Unauthorized", [
                ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
            ])
            return [b"authentication required\n"]
        if path == self.prefix:
            query = environ.get("QUERY_STRING")
            location = environ.get("SCRIPT_NAME", "") + self.prefix + "/" + (f"?{query}" if query else "")
            start_response("308 Permanent Redirect", [("Location", location),
                                                      ("Content-Type", "text/plain")])
            return [b""]
        inner = {**environ, "PATH_INFO": path[len(self.prefix):]}
        actor = self.actions.actor_of(user)
        if self.services is not None:
            if inner["PATH_INFO"].rstrip("/") in self.actions.ACTIONS:
                return self.actions.handle(inner, start_response, self.services, actor,
                                           self.prefix)
            self.actions.begin(self.services, actor)
        return self.dashboard(inner, start_response)


def dashboard_credentials(settings) -> tuple[str, str] | None:
    """``(user, password)`` of the dashboard and the console, or None when they are open."""
    if settings.admin_dashboard_user is None:
        return None
    return settings.admin_dashboard_user, settings.admin_dashboard_password


def basic_auth_user(header: str, credentials: tuple[str, str]) -> str | None:
    """The user an ``Authorization: Basic ...`` header signs in, when it matches ``credentials``."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    want_user, want_password = credentials
    if (hmac.compare_digest(user.encode(), want_user.encode())
            & hmac.compare_digest(password.encode(), want_password.encode())):
        return user
    return None


class _ConsoleLinkLoader(jinja2.BaseLoader):
    """The dashboard's own templates, with a link to the console added to its navigation bar.

    Should a later dashboard change the markup this looks for, its pages stay as they are.
    """

    NAV = '{{ nav_item("Dashboard", "") }}'

    def __init__(self, loader, console_path):
        self.loader = loader
        self.link = (f'<li class="nav__items__item"><a href="{console_path}">'
                     "Scheduler console</a></li>")

    def get_source(self, environment, template):
        source, filename, uptodate = self.loader.get_source(environment, template)
        if template == "_base.html":
            source = source.replace(self.NAV, self.NAV + self.link, 1)
        return source, filename, uptodate


def mount_dashboard(app, services, prefix=PREFIX, console_path=CONSOLE_PATH):
    """Mount the dashboard on ``app``; basic auth when a user and password are configured."""
    dashboard = DashboardApp(services.broker, prefix)
    dashboard.templates.loader = _ConsoleLinkLoader(dashboard.templates.loader, console_path)
    mount = DashboardMount(app.wsgi_app, dashboard, prefix,
                           dashboard_credentials(services.settings), services)
    dashboard.templates.globals["csrf_token"] = mount.actions.render_token
    app.wsgi_app = mount
