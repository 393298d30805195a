"""Shared by the benches: one row per figure, saved where ``bench/run_all.py`` collects them.

A row names the figure, our value, the baseline measured in the same run (or None when
the target is an absolute number), the ratio, the target and whether it was met. Each
bench saves its rows to ``bench/results/<bench>.json``; ``run_all.py`` gathers them into
``bench/results/latest.json`` and the table of ``docs/benchmarks.rst``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: How a target reads: the ratio to the baseline at least, the value at least, at most.
TARGET_KINDS = ("ratio_at_least", "at_least", "at_most")


def row(figure: str, value: float, baseline: float | None, *, target: float, unit: str,
        target_kind: str | None = None, baseline_name: str | None = None,
        note: str | None = None, valid: bool = True) -> dict:
    """One figure. With a baseline the target is on the ratio unless ``target_kind`` says
    otherwise; without one it is on the value itself (``at_least`` or ``at_most``).

    ``note`` says what the numbers alone do not (why a baseline is missing, errors seen);
    ``valid=False`` says the measurement itself fell short (jobs that never ran, failed
    requests), so the figure counts as missed whatever its value.
    """
    if target_kind is None:
        target_kind = "ratio_at_least" if baseline is not None else "at_least"
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"target_kind must be one of {TARGET_KINDS}, got {target_kind!r}")
    ratio = (value / baseline) if baseline else None
    if target_kind == "ratio_at_least":
        met = ratio is not None and ratio >= target
    elif target_kind == "at_least":
        met = value >= target
    else:
        met = value <= target
    met = met and valid
    return {"figure": figure, "value": round(value, 3), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 3),
            "baselineName": baseline_name, "ratio": None if ratio is None else round(ratio, 3),
            "target": target, "targetKind": target_kind, "met": met, "note": note}


def save(bench: str, rows: list[dict]) -> Path:
    """Write a bench's rows (with when and where they were measured); returns the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{bench}.json"
    path.write_text(json.dumps({
        "bench": bench, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": rows}, indent=2) + "\n")
    return path


def load(bench: str) -> dict | None:
    """What ``save`` wrote for ``bench``, or None when it wrote nothing."""
    path = RESULTS / f"{bench}.json"
    return json.loads(path.read_text()) if path.exists() else None
