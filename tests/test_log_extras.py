"""No log call passes an ``extra`` key that ``logging`` reserves (it raises KeyError then,
but only when the record's level is enabled, so a test at WARNING never sees it)."""

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESERVED = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {
    "message", "asctime"}


def extra_keys(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    for key in kw.value.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            yield node.lineno, key.value


def test_no_log_call_uses_a_reserved_extra_key():
    files = [*ROOT.glob("scheduler_service/**/*.py"), *ROOT.glob("plugins/*/*/*.py")]
    assert len(files) > 50
    clashes = [f"{path.relative_to(ROOT)}:{line}: {key}"
               for path in files for line, key in extra_keys(ast.parse(path.read_text()))
               if key in RESERVED]
    assert clashes == []


def test_the_check_sees_a_clash():
    code = 'logger.info("x", extra={"job_id": 1, "created": 2})'
    assert [k for _, k in extra_keys(ast.parse(code)) if k in RESERVED] == ["created"]
