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

from flask import request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from .. import __version__
from .errors import ApiError
from .models import Error


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


def _details(error: ValidationError, prefix: str = ""):
    out = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        out.append({"field": (prefix + loc) if loc else (prefix.rstrip(".") or None), "message": message})
    return out


def parse_json_body(model: type[BaseModel] | None, required: bool = True):
    """Validate the request body against ``model``.

    Raises:
        ApiError: 415 when not JSON, 400 when malformed or invalid.
    """
    raw = request.get_data(cache=True)
    if not raw and not required:
        return model() if model else None
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                       "send the body as JSON with Content-Type: application/json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "BAD_JSON", f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object",
                       [{"field": None, "message": f"got {type(data).__name__}"}])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        details = _details(e)
        raise ApiError(400, "VALIDATION_ERROR",
                       "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details),
                       details) from None


def parse_query(model: type[BaseModel]):
    """Validate the query string against ``model``."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as e:
        details = _details(e)
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
               415: "Body is not JSON"}


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
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
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
        codes = [401] + ([400, 413, 415] if spec.body is not None else []) + ([400] if spec.query else [])
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
