"""dramatiq-dashboard at ``/admin/queues``, optionally behind HTTP basic auth.

The dashboard's own routes need the trailing slash, so the bare path redirects.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from dramatiq_dashboard import DashboardApp

PREFIX = "/admin/queues"


class DashboardMount:
    """WSGI wrapper that sends ``/admin/queues...`` to the dashboard, the rest to Flask."""

    def __init__(self, app, dashboard, prefix, credentials=None):
        self.app = app
        self.dashboard = dashboard
        self.prefix = prefix
        self.credentials = credentials

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        if self.credentials and not self._authorized(environ):
            start_response("401 Unauthorized", [
                ("WWW-Authenticate", 'Basic realm="scheduler dashboard", charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
            ])
            return [b"authentication required\n"]
        if path == self.prefix:
            query = environ.get("QUERY_STRING")
            location = environ.get("SCRIPT_NAME", "") + self.prefix + "/" + (f"?{query}" if query else "")
            start_response("308 Permanent Redirect", [("Location", location),
                                                      ("Content-Type", "text/plain")])
            return [b""]
        return self.dashboard({**environ, "PATH_INFO": path[len(self.prefix):]}, start_response)

    def _authorized(self, environ) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        want_user, want_password = self.credentials
        return (hmac.compare_digest(user.encode(), want_user.encode())
                & hmac.compare_digest(password.encode(), want_password.encode()))


def mount_dashboard(app, services, prefix=PREFIX):
    """Mount the dashboard on ``app``; basic auth when a user and password are configured."""
    settings = services.settings
    credentials = None
    if settings.admin_dashboard_user is not None:
        credentials = (settings.admin_dashboard_user, settings.admin_dashboard_password)
    dashboard = DashboardApp(services.broker, prefix)
    app.wsgi_app = DashboardMount(app.wsgi_app, dashboard, prefix, credentials)
