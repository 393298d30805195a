"""The JSON-Patch (RFC 6902) operations effects carry: add, remove, replace, test, move, copy.

Patches are applied to a copy of a small document (``{"level": ..., "variables": {...}}``);
a failing operation leaves the original untouched and raises :class:`PatchError` naming the
operation's index and path.
"""

from __future__ import annotations

import copy

OPERATIONS = ("add", "remove", "replace", "test", "move", "copy")


class PatchError(ValueError):
    """A patch that is malformed or does not apply to the document."""


def _pointer(path, where: str) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"{where}: path must be a JSON pointer like /variables/population, got {path!r}")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list, token: str, where: str, *, appending: bool = False) -> int:
    if appending and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"{where}: {token!r} is not an array index")
    index = int(token)
    limit = len(container) if appending else len(container) - 1
    if index > limit:
        raise PatchError(f"{where}: index {index} is out of range")
    return index


def _parent(doc, tokens: list[str], where: str):
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: {token!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, where)]
        else:
            raise PatchError(f"{where}: cannot descend into a {type(node).__name__}")
    return node


def _get(doc, tokens: list[str], where: str):
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, where), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: {last!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, where)]
    raise PatchError(f"{where}: cannot descend into a {type(parent).__name__}")


def _add(doc, tokens, value, where):
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, where), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, where, appending=True), value)
    else:
        raise PatchError(f"{where}: cannot add into a {type(parent).__name__}")
    return doc


def _remove(doc, tokens, where):
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent, last = _parent(doc, tokens, where), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: {last!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, where))
    raise PatchError(f"{where}: cannot remove from a {type(parent).__name__}")


def validate(patch) -> list[dict]:
    """Check the shape of a patch (a list of operation objects) without applying it.

    Returns:
        The patch itself.

    Raises:
        PatchError: naming the first malformed operation.
    """
    if not isinstance(patch, list):
        raise PatchError("a JSON Patch must be a list of operations")
    for i, op in enumerate(patch):
        where = f"operation {i}"
        if not isinstance(op, dict):
            raise PatchError(f"{where}: must be an object")
        if op.get("op") not in OPERATIONS:
            raise PatchError(f"{where}: op must be one of {', '.join(OPERATIONS)}, got {op.get('op')!r}")
        _pointer(op.get("path"), where)
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where}: {op['op']} needs a value")
        if op["op"] in ("move", "copy"):
            _pointer(op.get("from"), where)
    return patch


def apply_patch(document, patch):
    """Apply ``patch`` to a deep copy of ``document`` and return the copy.

    Raises:
        PatchError: when the patch is malformed or an operation does not apply.
    """
    doc = copy.deepcopy(document)
    for i, op in enumerate(validate(patch)):
        where = f"operation {i} ({op['op']} {op['path']})"
        tokens = _pointer(op["path"], where)
        kind = op["op"]
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]), where)
        elif kind == "remove":
            _remove(doc, tokens, where)
        elif kind == "replace":
            _get(doc, tokens, where)
            if not tokens:
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, tokens, where)
                doc = _add(doc, tokens, copy.deepcopy(op["value"]), where)
        elif kind == "test":
            if _get(doc, tokens, where) != op["value"]:
                raise PatchError(f"{where}: test failed")
        else:
            source = _pointer(op["from"], where)
            if kind == "move":
                if tokens[:len(source)] == source and tokens != source:
                    raise PatchError(f"{where}: cannot move a value into itself")
                value = _remove(doc, source, where)
            else:
                value = copy.deepcopy(_get(doc, source, where))
            doc = _add(doc, tokens, value, where)
    return doc


def changed_paths(patch) -> list[str]:
    """The paths a patch writes (its ``test`` operations excluded), in order, once each."""
    seen: dict[str, None] = {}
    for op in patch:
        if op["op"] != "test":
            seen.setdefault(op["path"], None)
            if op["op"] == "move":
                seen.setdefault(op["from"], None)
    return list(seen)
