"""Bearer-token authentication of the REST API, shared by every ``/api/v1`` blueprint."""

from __future__ import annotations

import hmac

from flask import current_app, request

from .actor import request_actor
from .errors import ApiError


def require_bearer_token():
    """``before_request`` hook: the request must carry ``Authorization: Bearer <SCHEDULER_API_TOKEN>``.

    Raises:
        ApiError: 401 when the token is missing or wrong; 400 naming ``X-Actor`` when that
            header is there but not a name a caller may take.
    """
    expected = current_app.extensions["scheduler"].settings.scheduler_api_token
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        problem = ("missing" if "Authorization" not in request.headers
                   else "not Bearer <SCHEDULER_API_TOKEN>, or a wrong token")
        raise ApiError(401, "UNAUTHENTICATED", "send Authorization: Bearer <SCHEDULER_API_TOKEN>",
                       [{"field": "Authorization", "message": problem}])
    # The caller's name, where a route records one; checked on every route, so that a
    # request claiming to be the service itself is refused wherever it is sent.
    request_actor()
