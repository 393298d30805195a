"""Cursor pagination: page sizes and opaque cursors.

A cursor is the URL-safe base64 of a small JSON list: the list's name, then the sort key of
the last row of the page. Clients treat it as opaque; the server rejects a cursor of another
list, or garbage, with ``BAD_USER_INPUT`` naming the ``after`` argument.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import bad_input

#: Page size when ``first`` is omitted.
DEFAULT_PAGE_SIZE = 100
#: Largest page a client may ask for.
MAX_PAGE_SIZE = 500


def page_size(first) -> int:
    """Validate ``first`` (1 to 500; 100 when omitted)."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")
    return first


def encode_cursor(kind: str, *key) -> str:
    """An opaque cursor for the row with sort key ``key`` in list ``kind``."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, arity: int) -> tuple | None:
    """The sort key a cursor of list ``kind`` carries; None when ``cursor`` is None.

    Raises:
        ApiError: ``BAD_USER_INPUT`` when the cursor is malformed or belongs to another list.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        value = None
    if (not isinstance(value, list) or len(value) != arity + 1 or value[0] != kind
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:])):
        raise bad_input(f"after is not a cursor of this list: {cursor!r}")
    return tuple(value[1:])


def connection(rows: list[dict], has_next: bool, cursor_of) -> dict:
    """A ``...Connection`` value: the nodes and their ``pageInfo``."""
    return {
        "nodes": rows,
        "pageInfo": {"hasNextPage": has_next, "endCursor": cursor_of(rows[-1]) if rows else None},
    }
