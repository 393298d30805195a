"""Validation of job payloads against their job type's pydantic model."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from .errors import InvalidPayload


def validate_payload(job_type, payload) -> BaseModel:
    """Validate ``payload`` for ``job_type``.

    Returns:
        The model instance.

    Raises:
        InvalidPayload: with one ``{"field", "message"}`` detail per problem; fields are
            dotted paths starting at ``payload``.
    """
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidPayload(
            f"payload of {job_type.name} must be a JSON object",
            [{"field": "payload", "message": f"must be an object, got {type(payload).__name__}"}],
        )
    try:
        # Strict, as JSON: "5" is not a number and true is not 1, while a time or a UUID
        # is still written as a string.
        text = json.dumps(payload)
    except (TypeError, ValueError) as e:
        raise InvalidPayload(f"payload of {job_type.name} is not JSON: {e}",
                             [{"field": "payload", "message": str(e)}]) from None
    try:
        return job_type.payload_model.model_validate_json(text, strict=True)
    except ValidationError as e:
        details = [
            {"field": ".".join(["payload", *map(str, err["loc"])]), "message": err["msg"]}
            for err in e.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise InvalidPayload(f"payload of {job_type.name} is invalid: {summary}", details) from None


def payload_schema(job_type) -> dict:
    """The JSON Schema of a job type's payload."""
    return job_type.payload_model.model_json_schema()
