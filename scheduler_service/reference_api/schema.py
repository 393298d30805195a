"""The executable schema: ``schema.graphql`` with the scalars and resolvers bound to it.

The SDL file at the top of the repository is the single source. The package holds it as
``schema.graphql`` next to this module (a link to the top-level file in a checkout, a copy
in an installed wheel), so the server always serves exactly the contract.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from graphql import GraphQLSchema, build_schema

from . import scalars
from .resolvers import RESOLVERS

#: The SDL file this package serves.
SCHEMA_PATH = Path(__file__).with_name("schema.graphql")


def schema_text() -> str:
    """The SDL text of the contract."""
    return SCHEMA_PATH.read_text(encoding="utf-8")


def _bind_scalar(schema: GraphQLSchema, scalar) -> None:
    target = schema.type_map[scalar.name]
    target.serialize = scalar.serialize
    target.parse_value = scalar.parse_value
    target.parse_literal = scalar.parse_literal


@lru_cache(maxsize=1)
def executable_schema() -> GraphQLSchema:
    """Build the schema once, with every Query and Mutation field resolved.

    Raises:
        RuntimeError: when the SDL declares a query or mutation without a resolver here.
    """
    schema = build_schema(schema_text())
    for scalar in (scalars.DateTime, scalars.JSON):
        _bind_scalar(schema, scalar)
    for type_name, resolvers in RESOLVERS.items():
        fields = schema.type_map[type_name].fields
        for field_name, resolve in resolvers.items():
            fields[field_name].resolve = resolve
    missing = [f"{t.name}.{name}" for t in (schema.query_type, schema.mutation_type)
               for name, f in t.fields.items() if f.resolve is None]
    if missing:
        raise RuntimeError(f"schema.graphql declares fields without a resolver: {', '.join(missing)}")
    return schema
