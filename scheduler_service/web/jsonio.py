"""The JSON of the web app's responses, written by orjson.

Flask's own provider writes with :mod:`json`; for a created job's record that took several
times as long as the rest of the view's Python work together. orjson writes the same
JSON for everything the routes answer (dicts, lists, strings, numbers, booleans, None) in
a fraction of the time. What it would write differently is written by Flask's provider
as before: a value only Flask knows (dates as HTTP dates, ``__html__``...), a subclass of a
built-in type, a key that is not a string, an integer over 64 bits. Pretty-printing in
debug mode is Flask's too. Bodies are still *read* with :mod:`json`: orjson turns an
integer over 64 bits into a float, and a payload's numbers must come back as sent.
"""

from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider

from ..jsontext import PASSTHROUGH

#: What orjson hands to ``default`` (Flask's rules): what the service's own JSON text passes
#: on, and subclasses of built-in types too.
_PASSTHROUGH = PASSTHROUGH | orjson.OPT_PASSTHROUGH_SUBCLASS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, with orjson writing whatever it writes as :mod:`json` would."""

    sort_keys = False

    def _fast(self, obj) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=_PASSTHROUGH)
        except TypeError:  # orjson.JSONEncodeError is a TypeError: Flask's rules decide
            return None

    def dumps(self, obj, **kwargs) -> str:
        if not kwargs and not self.sort_keys:
            body = self._fast(obj)
            if body is not None:
                return body.decode()
        return super().dumps(obj, **kwargs)

    def response(self, *args, **kwargs):
        if self.compact is False or (self.compact is None and self._app.debug) or self.sort_keys:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        body = self._fast(obj)
        if body is None:
            return super().response(*args, **kwargs)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)
