"""Run every benchmark under ``bench/``, gather their figures, and rewrite the docs table.

``make bench`` runs this. Each bench runs in turn, alone, as a child process with the sizes
of ``SIZES`` (smaller than the scripts' defaults, so that the whole run fits ``BUDGET_S`` on
two cores), and saves its rows through ``_results.save``. Then:

* ``bench/results/latest.json`` gets every row of every bench, with when, where, the
  sizes and how each bench ended;
* the table between the markers of ``docs/benchmarks.rst`` is written anew;
* the table is printed.

A bench that misses a target is reported as missed: several scripts exit 1 then, so a
non-zero exit counts as a miss when the bench saved its rows in this run and one of them is
missed. A bench that saved nothing, or ran past its time, crashed; only then does this
script exit 1.

Run: ``.venv/bin/python bench/run_all.py`` (about six minutes), or ``--only web timers``
to run some benches without touching ``latest.json`` or the docs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.rst"

import _results  # noqa: E402  (bench/ is the script's own folder, first on sys.path)

#: Arguments and time limit (seconds) of each bench under ``make bench``, in running order.
#: docs/benchmarks.rst says the same sizes in words; keep the two together.
SIZES = {
    "throughput": (["--jobs", "20000", "--rss-jobs", "100000", "--rounds", "2"], 300),
    "timers": (["--sparse-seconds", "10", "--pending", "20000"], 150),
    "web": (["--clients", "50", "--warmup", "2", "--seconds", "6", "--rounds", "3"], 100),
    "api_client": (["--seconds", "6", "--rounds", "3"], 60),
    "expiration": (["--events", "8000", "--campaigns", "8", "--rounds", "2"], 150),
    "growth": (["--settlements", "2000"], 150),
    "recurring": (["--recurrences", "2000"], 120),
}
#: A bench missing from SIZES runs with its defaults and this time limit.
DEFAULT_LIMIT_S = 120
#: The whole run must fit in this (``make bench``'s ten minutes, less building the Celery
#: venv); a bench still running when it is spent is stopped and counts as crashed.
BUDGET_S = 570
#: Scripts under bench/ that are not benches of their own.
NOT_BENCHES = {"run_all", "celery_baseline"}
BEGIN = ".. begin-bench-table: written by bench/run_all.py, edit outside the markers"
END = ".. end-bench-table"


def benches() -> list[str]:
    """The bench scripts' names: SIZES' order first, then any other script, by name."""
    found = {p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_")} - NOT_BENCHES
    return [name for name in SIZES if name in found] + sorted(found - set(SIZES))


def run_one(name: str, deadline: float) -> dict:
    """Run one bench as a child (its output passes through); returns how it ended."""
    args, limit = SIZES.get(name, ([], DEFAULT_LIMIT_S))
    stale = _results.RESULTS / f"{name}.json"
    stale.unlink(missing_ok=True)
    limit = max(1.0, min(limit, deadline - time.monotonic()))
    print(f"\n=== {' '.join([name, *args])} (at most {limit:.0f} s)", flush=True)
    started = time.monotonic()
    # A session of its own, so that a bench past its time is stopped with all its children.
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *args], cwd=ROOT,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    timed_out = False
    try:
        code = proc.wait(limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_group(proc)
        code = proc.returncode
    except KeyboardInterrupt:  # its own session does not get the terminal's Ctrl-C
        stop_group(proc)
        raise
    seconds = time.monotonic() - started
    saved = _results.load(name)
    rows = saved["rows"] if saved else []
    if timed_out:
        status, why = "crashed", f"stopped after {limit:.0f} s"
    elif not rows:
        status, why = "crashed", f"exit {code} before saving its figures"
    elif code == 0 or not all(r["met"] for r in rows):
        status, why = ("met" if all(r["met"] for r in rows) else "missed"), None
    else:
        status, why = "crashed", f"exit {code} with every target met"
    print(f"=== {name}: {status}{f' ({why})' if why else ''} in {seconds:.0f} s", flush=True)
    return {"bench": name, "args": args, "exit": code, "seconds": round(seconds, 1),
            "status": status, "why": why, "rows": [] if status == "crashed" else rows}


def stop_group(proc) -> None:
    """SIGTERM to the bench's process group, SIGKILL ten seconds later."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": platform.platform(), "loadAverageAtStart": list(os.getloadavg())}


def number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cells(bench: dict) -> list[list[str]]:
    """The table's rows of one bench: figure, ours, baseline, ratio, target, met/missed."""
    if bench["status"] == "crashed":
        return [[f"{bench['bench']}: crashed ({bench['why']})", "", "", "", "", "missed"]]
    out = []
    for r in bench["rows"]:
        unit = r["unit"]
        figure = r["figure"] + (f" ({r['note']})" if r.get("note") else "")
        baseline = "" if r["baseline"] is None else f"{number(r['baseline'])} {unit}"
        if r.get("baselineName") and baseline:
            baseline += f" ({r['baselineName']})"
        target = {"ratio_at_least": f"ratio ≥ {r['target']:,g}",
                  "at_least": f"≥ {r['target']:,g} {unit}",
                  "at_most": f"≤ {r['target']:,g} {unit}"}[r["targetKind"]]
        out.append([figure, f"{number(r['value'])} {unit}", baseline,
                    "" if r["ratio"] is None else f"{r['ratio']:.2f}", target,
                    "met" if r["met"] else "missed"])
    return out


HEADER = ["figure", "ours", "baseline", "ratio", "target", "met/missed"]


def plain_table(rows: list[list[str]], figure_width: int = 64) -> str:
    """The table for a terminal: long figures wrap within their column."""
    wrapped = [[HEADER]]
    for row in rows:
        first, *more = textwrap.wrap(row[0], figure_width, subsequent_indent="  ",
                                     break_on_hyphens=False) or [""]
        wrapped.append([[first, *row[1:]], *([line] + [""] * 5 for line in more)])
    lines = [line for group in wrapped for line in group]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    lines.insert(1, ["-" * w for w in widths])
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def rst_escape(text: str) -> str:
    for char in "\\*`_|":
        text = text.replace(char, "\\" + char)
    return text


def rst_table(rows: list[list[str]], summary: str) -> str:
    lines = [summary, "", ".. list-table::", "   :header-rows: 1", "   :widths: 44 12 16 6 10 8", ""]
    for row in [HEADER, *rows]:
        lines.append(f"   * - {rst_escape(row[0])}")
        lines += [f"     - {rst_escape(cell)}" if cell else "     -" for cell in row[1:]]
    return "\n".join(lines)


def rewrite_doc(table: str) -> None:
    """Replace what lies between the markers of docs/benchmarks.rst with ``table``."""
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC.name} lacks the table markers {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n\n{table}\n\n{END}{tail}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="BENCH",
                        help="run these benches only; latest.json and the docs stay as they are")
    args = parser.parse_args(argv)
    names = benches()
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            parser.error(f"no such bench: {', '.join(sorted(unknown))} (benches: {', '.join(names)})")
        names = [n for n in names if n in args.only]

    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    where = machine()
    started = time.monotonic()
    deadline = started + BUDGET_S
    ran = [run_one(name, deadline) for name in names]
    wall = time.monotonic() - started

    rows = [row for bench in ran for row in cells(bench)]
    crashed = [b["bench"] for b in ran if b["status"] == "crashed"]
    missed = sum(1 for b in ran for r in b["rows"] if not r["met"])
    summary = (f"Measured {at} by ``bench/run_all.py`` in {wall:.0f} s on {where['cpus']} cores "
               f"({where['cpu']}), Python {where['python']}: "
               f"{sum(len(b['rows']) for b in ran)} figures, {missed} missed"
               + (f", crashed: {', '.join(crashed)}" if crashed else "") + ".")
    if not args.only:
        _results.RESULTS.mkdir(exist_ok=True)
        (_results.RESULTS / "latest.json").write_text(json.dumps({
            "at": at, "machine": where, "seconds": round(wall, 1),
            "benches": [{k: v for k, v in b.items() if k != "rows"} for b in ran],
            "rows": [{"bench": b["bench"], **r} for b in ran for r in b["rows"]],
        }, indent=2) + "\n")
        rewrite_doc(rst_table(rows, summary))
    print(f"\n{summary}\n\n{plain_table(rows)}", flush=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
