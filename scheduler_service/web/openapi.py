"""Declared routes: validation of JSON bodies and query strings, and the OpenAPI document.

A route is declared with :func:`api_route`, naming its body model, query model and
response models. The decorator validates the request before the view runs (so a
rejected request does nothing) and records the declaration; :func:`openapi_document`
turns the declarations into an OpenAPI 3.1 document with the models' JSON Schemas.

Why not spectree or flask-openapi3: both validate pydantic models well, but each
answers validation failures with a body and status of its own (422, its own shape),
while this API's contract is one error body (``{"error": {"code", "message",
"details": [{"field", "message"}]}}``) with 400, plus 413/415 before any parsing. Keeping
that contract through their hooks took more code than this module.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field

from flask import current_app, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from .. import __version__
from .errors import ApiError
from .models import CAMPAIGN_ID, JOB_ID, SWEEP_NAME, Error

#: The path parameters of the routes: format and what a wrong one is told. A path whose id
#: is not of its format names nothing that can exist: 404 naming the parameter, before any
#: Redis key is built from it.
PATH_PARAMS = {
    "job_id": (JOB_ID, "must be a job id (a UUID such as 0b6c3d0e-8f1a-4c2b-9d3e-5f6a7b8c9d0e)"),
    "rid": (JOB_ID, "must be a recurring job id (a UUID)"),
    "name": (SWEEP_NAME, "must be a schedule name (kebab-case, at most 64 characters)"),
    "campaign_id": (CAMPAIGN_ID, "must be a campaign id (letters, digits and ._~=-, "
                                 "at most 128 characters)"),
}
_PATH_RE = {name: re.compile(pattern) for name, (pattern, _) in PATH_PARAMS.items()}
_MAX_LENGTH = {"job_id": 36, "rid": 36, "name": 64, "campaign_id": 128}

#: Deepest nesting of objects and arrays a JSON body may have.
MAX_JSON_DEPTH = 32


@dataclass
class RouteSpec:
    """What one route accepts and answers."""

    method: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    tag: str = "jobs"


ROUTES: list[RouteSpec] = []


def _details(error: ValidationError, prefix: str = "", whole: str | None = "body"):
    out = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        out.append({"field": (prefix + loc) if loc else (prefix.rstrip(".") or whole), "message": message})
    return out


def parse_json_body(model: type[BaseModel] | None, required: bool = True):
    """Validate the request body against ``model``.

    Raises:
        ApiError: 415 when not JSON, 400 when malformed or invalid.
    """
    raw = _read_body()
    if not raw and not required:
        return model() if model else None
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                       "send the body as JSON with Content-Type: application/json",
                       [{"field": "Content-Type", "message": "must be application/json, got "
                                                            f"{request.content_type or 'none'}"}])
    try:
        data = json.loads(raw)
        # A body with no more brackets than the limit cannot nest deeper than it: most
        # bodies are never walked.
        too_deep = raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and _too_deep(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "BAD_JSON", f"the body is not valid JSON: {e}",
                       [{"field": "body", "message": str(e)}]) from None
    except RecursionError:  # deeper than the parser's own stack
        too_deep = True
    if too_deep:
        raise ApiError(400, "BAD_JSON", f"the body nests objects or arrays more than "
                                        f"{MAX_JSON_DEPTH} deep",
                       [{"field": "body", "message": f"nested over {MAX_JSON_DEPTH} levels"}])
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object",
                       [{"field": "body", "message": f"got {type(data).__name__}"}])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        details = _details(e)
        raise ApiError(400, "VALIDATION_ERROR",
                       "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details),
                       details) from None


def _read_body() -> bytes:
    """The request body, whole, or a 413 when it is over the limit.

    A body with ``Content-Length`` over the limit is refused before it is read. A chunked
    one has no length: Werkzeug's stream stops at the limit without a word, so one byte
    more is asked for; there is one only when the body was over (the stream then raises
    the 413 itself).
    """
    raw = request.get_data(cache=True)
    if request.content_length is None and len(raw) >= current_app.config["MAX_CONTENT_LENGTH"]:
        request.stream.read(1)
    return raw


def _too_deep(data) -> bool:
    """Whether ``data`` nests containers deeper than :data:`MAX_JSON_DEPTH` (no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def check_path_params(kwargs: dict) -> None:
    """Refuse a path id that is not of its format (404 naming the parameter)."""
    for name, value in kwargs.items():
        pattern = _PATH_RE.get(name)
        if pattern is not None and not (len(value) <= _MAX_LENGTH[name] and pattern.match(value)):
            message = PATH_PARAMS[name][1]
            shown = value if len(value) <= 80 else value[:80] + "..."
            raise ApiError(404, "NOT_FOUND", f"{name} {shown!r}: {message}",
                           [{"field": name, "message": message}])


def parse_query(model: type[BaseModel]):
    """Validate the query string against ``model``."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as e:
        details = _details(e, whole="query")
        raise ApiError(400, "VALIDATION_ERROR",
                       "; ".join(f"{d['field']}: {d['message']}" for d in details), details) from None


def api_route(bp, method, path, summary, *, body=None, body_required=True, query=None,
              responses=None, tag="jobs"):
    """Declare a route on blueprint ``bp``: the view gets ``body=`` and ``query=`` models."""
    spec = RouteSpec(method, bp.url_prefix + path, summary, body, body_required, query,
                     responses or {}, tag)
    ROUTES.append(spec)

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**kwargs):
            check_path_params(kwargs)
            if body is not None:
                kwargs["body"] = parse_json_body(body, body_required)
            if query is not None:
                kwargs["query"] = parse_query(query)
            return view(**kwargs)

        bp.add_url_rule(path, view.__name__, wrapper, methods=[method])
        return wrapper

    return decorate


_PARAM = re.compile(r"<(?:[a-z]+:)?([a-zA-Z_]+)>")

_ERROR_TEXT = {400: "Invalid request", 401: "Missing or wrong bearer token", 404: "Not found",
               409: "Not allowed in the job's current state", 413: "Body over 64 KiB",
               414: "Request line over 4 KiB (a query string too long)", 415: "Body is not JSON"}


def openapi_document() -> dict:
    """The OpenAPI 3.1 document of every declared route."""
    models = {Error}
    for spec in ROUTES:
        for m in (spec.body, *spec.responses.values()):
            if m is not None:
                models.add(m)
    _, defs = models_json_schema([(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
                                 ref_template="#/components/schemas/{model}")
    paths: dict = {}
    for spec in ROUTES:
        path = _PARAM.sub(r"{\1}", spec.path)
        op = {"summary": spec.summary, "tags": [spec.tag], "operationId": f"{spec.method.lower()}{_op_name(path)}",
              "security": [{"bearer": []}], "responses": {}}
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": PATH_PARAMS[n][0],
                              "maxLength": _MAX_LENGTH[n]}}
                  for n in _PARAM.findall(spec.path)]
        if spec.query is not None:
            schema = spec.query.model_json_schema()
            for name, prop in schema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in schema.get("required", []),
                               "schema": prop})
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {"required": spec.body_required, "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
        for status, model in sorted(spec.responses.items()):
            entry = {"description": (model.__doc__ or "OK").strip().splitlines()[0] if model else "OK"}
            if model is not None:
                entry["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
            op["responses"][str(status)] = entry
        # Every route checks X-Actor (400) and the token (401); gunicorn refuses a request
        # line over its limit (414) before any route, which only a query string can reach.
        codes = ([400, 401] + ([413, 415] if spec.body is not None else [])
                 + ([414] if spec.query else []))
        if "{" in path:
            codes.append(404)
        for status in sorted(set(codes)):
            op["responses"].setdefault(str(status), {
                "description": _ERROR_TEXT[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        paths.setdefault(path, {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "scheduler-service job API", "version": __version__},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _op_name(path):
    parts = [p for p in re.split(r"[/{}-]", path) if p and p not in ("api", "v1")]
    return "".join(p[:1].upper() + p[1:] for p in parts)
