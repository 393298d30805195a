"""JSON text the service writes for itself: a job's stored payload and its Dramatiq message.

Compact, written by orjson (a create writes both, and the message is the larger part of
the create's Python work otherwise). Anything orjson would write its own way or not at all
(dates, dataclasses, integers over 64 bits, keys that are not strings) is written by
:mod:`json` as before, so what can be stored stays what :mod:`json` takes. Readers use
:func:`json.loads` whichever wrote it.
"""

from __future__ import annotations

import json

import orjson

#: Types orjson would write its own way, passed on (to ``default``, or to a TypeError).
PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value) -> str:
    """``value`` as compact JSON text (UTF-8, no spaces)."""
    try:
        return orjson.dumps(value, option=PASSTHROUGH).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
