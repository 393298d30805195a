"""The ``DateTime`` and ``JSON`` scalars, and the conversions storage needs.

Inside the server a ``DateTime`` is a timezone-aware :class:`~datetime.datetime` truncated to
milliseconds; SQLite keeps it as epoch milliseconds; on the wire it is always UTC with
milliseconds and ``Z`` (``2026-03-01T12:00:00.000Z``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from graphql import GraphQLScalarType, StringValueNode, ValueNode, print_ast
from graphql.utilities import value_from_ast_untyped

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_datetime(raw) -> datetime:
    """Parse an ISO-8601 string with an offset (``Z`` included) into an aware datetime.

    Raises:
        ValueError: when ``raw`` is not such a string; the message says what is expected.
    """
    if not isinstance(raw, str):
        raise ValueError(f"DateTime must be an ISO-8601 string, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"DateTime must be ISO-8601 like 2026-03-01T12:00:00.000Z, got {raw!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"DateTime must carry an offset (Z or +hh:mm), got {raw!r}")
    return from_ms(to_ms(value))


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond digits dropped)."""
    delta = value - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(ms: int | None) -> datetime | None:
    """Aware UTC datetime of epoch milliseconds (None stays None)."""
    if ms is None:
        return None
    return _EPOCH + timedelta(milliseconds=ms)


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return to_ms(datetime.now(timezone.utc))


def _serialize_datetime(value) -> str:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        return format_datetime(parse_datetime(value))
    raise TypeError(f"DateTime cannot represent {value!r}")


def _parse_datetime_literal(node: ValueNode, _variables=None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise ValueError(f"DateTime must be an ISO-8601 string, got {print_ast(node)}")
    return parse_datetime(node.value)


DateTime = GraphQLScalarType(
    "DateTime",
    serialize=_serialize_datetime,
    parse_value=parse_datetime,
    parse_literal=_parse_datetime_literal,
)

JSON = GraphQLScalarType(
    "JSON",
    serialize=lambda value: value,
    parse_value=lambda value: value,
    parse_literal=value_from_ast_untyped,
)
