"""Who may use the console, and proof that a form was sent from one of its own pages.

Sign-in is the dashboard's (:func:`~scheduler_service.web.dashboard.dashboard_credentials`):
open when no ``ADMIN_DASHBOARD_USER`` is set (development), HTTP basic auth when one is; with
``ADMIN_DASHBOARD_ENABLED=false`` the console is not served at all. The signed-in user is the
actor of every change; an open console acts as ``console``.

Every state-changing form is a POST carrying a CSRF token that must equal the token in the
console's cookie (double submit) *and* carry a valid signature: ``nonce.HMAC(secret, nonce|actor)``.
A token planted in the cookie from elsewhere therefore does not pass, and one user's token does
not serve another. The secret is random, made once and kept in Redis so that every web process
and replica checks the others' tokens; it never leaves the server.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

import redis
from flask import current_app, g, request

from ..dashboard import REALM, basic_auth_user, dashboard_credentials
from . import ConsoleError

logger = logging.getLogger(__name__)

#: Cookie holding the CSRF token, and the form field that must repeat it.
CSRF_COOKIE = "scheduler_console_csrf"
CSRF_FIELD = "csrf_token"
#: The actor of changes made in a console without sign-in.
ANONYMOUS_ACTOR = "console"
#: Key of the cached secret in ``Services.extras``.
_SECRET_EXTRA = "console_csrf_secret"

#: Sent with every console response.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                                "base-uri 'none'"),
}


def _services():
    return current_app.extensions["scheduler"]


def csrf_secret(services) -> bytes | None:
    """The shared signing secret (made on first use); None while Redis cannot be reached."""
    secret = services.extras.get(_SECRET_EXTRA)
    if secret is not None:
        return secret
    key = f"{services.settings.redis_namespace}:console:csrf-secret"
    try:
        services.redis.set(key, secrets.token_hex(32), nx=True)
        stored = services.redis.get(key)
    except redis.RedisError as e:
        logger.warning("console CSRF secret unavailable: %s", e)
        return None
    services.extras[_SECRET_EXTRA] = stored
    return stored


def _signature(secret: bytes, nonce: str, actor: str) -> str:
    return hmac.new(secret, f"{nonce}|{actor}".encode(), hashlib.sha256).hexdigest()


def new_token(secret: bytes, actor: str) -> str:
    nonce = secrets.token_hex(16)
    return f"{nonce}.{_signature(secret, nonce, actor)}"


def token_valid(token: str | None, secret: bytes | None, actor: str) -> bool:
    """Whether ``token`` was made by :func:`new_token` with this secret for this actor."""
    if not token or secret is None:
        return False
    nonce, _, mac = token.partition(".")
    return bool(nonce) and hmac.compare_digest(mac.encode(), _signature(secret, nonce, actor).encode())


def before_request():
    """Sign the request in, and refuse a POST whose form token does not match its cookie."""
    credentials = dashboard_credentials(_services().settings)
    if credentials is None:
        g.console_actor, g.console_signed_in = ANONYMOUS_ACTOR, False
    else:
        user = basic_auth_user(request.headers.get("Authorization", ""), credentials)
        if user is None:
            raise ConsoleError(401, "Sign in with the dashboard's user and password.")
        g.console_actor, g.console_signed_in = user, True

    secret = csrf_secret(_services())
    cookie = request.cookies.get(CSRF_COOKIE, "")
    held = token_valid(cookie, secret, g.console_actor)
    if held:
        g.csrf_token, g.csrf_new = cookie, False
    else:
        g.csrf_token = new_token(secret, g.console_actor) if secret is not None else ""
        g.csrf_new = bool(g.csrf_token)
    if request.method == "POST":
        sent = request.form.get(CSRF_FIELD, "")
        if not held or not hmac.compare_digest(sent.encode(), cookie.encode()):
            raise ConsoleError(403, "This form's security token is missing or out of date: reload "
                               "the page and send the form again.")


def after_request(response):
    """Set the CSRF cookie when the request had none that holds, and the security headers."""
    if getattr(g, "csrf_new", False):
        response.set_cookie(CSRF_COOKIE, g.csrf_token, httponly=True, samesite="Strict",
                            path="/admin/", secure=request.is_secure)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def challenge_headers() -> dict:
    """The ``WWW-Authenticate`` header of a 401, the dashboard's realm."""
    return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
