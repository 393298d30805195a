"""Web API throughput: ``POST /api/v1/jobs`` next to a hello-world Flask route, same gunicorn.

One embedded Redis, one run, both servers up, loaded in turn:

* **ours**: ``scheduler-service web`` with its defaults (gunicorn, the worker class of
  ``WEB_WORKER_CLASS``, gevent unless the variable says otherwise, and the CLI's
  ``--workers`` and ``--threads`` defaults), bound to 127.0.0.1;
  every request creates a due-now ``PING`` job (record, history, audit entry, Dramatiq
  message) with the bearer token of ``SCHEDULER_API_TOKEN``. No worker runs, so the jobs
  stay queued;
* **hello world**: a Flask app whose one POST route parses the JSON body and answers 201
  with a small JSON object, served by ``scheduler_service.webserver.serve`` itself (its app
  factory swapped), so every gunicorn option is the one the service runs with.

The load comes from ``bench/_http_load.py`` in a process of its own: ``--clients``
keep-alive HTTP/1.1 connections on asyncio streams, each sending the next request as soon
as the answer is in, ``--warmup`` seconds not counted, then ``--seconds`` measured. Both
servers run throughout; ``--rounds`` rounds load each in turn (the other idles), and each
side reports its best round, so that load from elsewhere on a noisy machine falls on both
sides alike rather than on whichever ran second. Targets:
ours keeps at least half the hello-world rate, and its p99 latency is at most 50 ms.

Run: ``.venv/bin/python bench/web.py`` (about 50 s with the default three rounds);
``WEB_WORKER_CLASS=gthread`` runs both servers with threaded workers.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--serve-hello" in sys.argv:
    # The hello-world server serves with the service's own worker class: patched for gevent
    # before anything else is imported, as the service's entry point does.
    import os

    from scheduler_service.green import patch_for_command

    patch_for_command(["web"], os.environ)

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scheduler_service.cli import web as web_command  # noqa: E402
from scheduler_service.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from scheduler_service.green import web_worker_class  # noqa: E402

import _reference  # noqa: E402
import _results  # noqa: E402

TOKEN = "bench-token"
JOB_BODY = json.dumps({"type": "PING", "campaignId": "bench"})
HELLO_BODY = json.dumps({"hello": "world"})
#: The CLI's defaults for ``scheduler-service web``, used for both servers.
DEFAULTS = {p.name: p.default for p in web_command.params}
#: The worker class both servers run with (the variable is passed to both).
WORKER_CLASS = web_worker_class(["web"], os.environ)
RATIO_TARGET, P99_TARGET_MS = 0.5, 50


def serve_hello(port: int) -> None:
    """Serve the hello-world app through the service's own gunicorn set-up (never returns)."""
    from flask import Flask, jsonify, request

    import scheduler_service.services
    import scheduler_service.web
    from scheduler_service import webserver
    from scheduler_service.config import load_settings

    def hello_app():
        app = Flask("hello")

        @app.post("/hello")
        def hello():
            return jsonify({"hello": request.get_json()["hello"]}), 201

        return app

    # serve() builds the services and the app in each worker: build neither (an empty
    # stand-in takes the services' place), serve hello.
    scheduler_service.services.build_services = lambda *args, **kwargs: SimpleNamespace(extras={})
    scheduler_service.web.create_app = lambda *args, **kwargs: hello_app()
    webserver.serve(load_settings(), None, "127.0.0.1", port, DEFAULTS["workers"],
                    DEFAULTS["threads"])


def server_model() -> str:
    """How both servers serve, for the output: workers, worker class, threads if any."""
    threads = f" x {DEFAULTS['threads']} threads" if WORKER_CLASS == "gthread" else ""
    return f"gunicorn {DEFAULTS['workers']} {WORKER_CLASS} workers{threads}"


def wait_ready(proc, url, body, headers, expect, timeout=60.0):
    """Wait until one request gets ``expect``; fails when the server exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.post(url, data=body, headers=headers, timeout=5)
            if response.status_code == expect:
                return
            raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server for {url} did not start")
        time.sleep(0.2)


def load(url, body, headers, expect, args) -> dict:
    """Load ``url`` from a child process for one round; returns its figures."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "_http_load.py"), url,
         "--clients", str(args.clients), "--warmup", str(args.warmup),
         "--seconds", str(args.seconds), "--body", body, "--expect", str(expect),
         *[f"--header={name}: {value}" for name, value in headers.items()]],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def best(rounds: list[dict]) -> dict:
    """The round with the highest rate (the least disturbed by the rest of the machine);
    errors are summed over every round, so none is hidden."""
    top = dict(max(rounds, key=lambda f: f["rps"]))
    errors: dict = {}
    for f in rounds:
        for kind, count in (f["errors"] or {}).items():
            errors[kind] = errors.get(kind, 0) + count
    top["errors"] = errors
    return top


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per side, alternating; the best of each side is reported")
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persist=False).start()
        env = {**os.environ, "SCHEDULER_ENV": "test", "REDIS_URL": server.url,
               "REDIS_NAMESPACE": "bench-web", "SCHEDULER_API_TOKEN": TOKEN,
               "LOG_LEVEL": "WARNING"}
        procs = []
        try:
            print(f"web: {args.clients} keep-alive clients, {args.warmup:g} s warm-up + "
                  f"{args.seconds:g} s per round, {args.rounds} rounds per side taken in turn, "
                  f"{server_model()}",
                  flush=True)
            ours_port, hello_port = free_port(), free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "scheduler_service", "web", "--host", "127.0.0.1",
                 "--port", str(ours_port)], env=env, stdin=subprocess.DEVNULL))
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--serve-hello", str(hello_port)],
                env=env, stdin=subprocess.DEVNULL))
            sides = {
                "ours": (procs[0], f"http://127.0.0.1:{ours_port}/api/v1/jobs", JOB_BODY,
                         {"Authorization": f"Bearer {TOKEN}"}),
                "hello": (procs[1], f"http://127.0.0.1:{hello_port}/hello", HELLO_BODY, {}),
            }
            for proc, url, body, headers in sides.values():
                wait_ready(proc, url, body, {"Content-Type": "application/json", **headers}, 201)
            # Both servers idle while the other is loaded; rounds alternate so that a burst
            # of load from elsewhere on the machine falls on both sides alike.
            rounds: dict[str, list] = {"ours": [], "hello": []}
            for _ in range(args.rounds):
                for side, (_, url, body, headers) in sides.items():
                    rounds[side].append(load(url, body, headers, 201, args))
        finally:
            for proc in procs:
                _reference.stop(proc)
            server.stop()
    ours, hello = best(rounds["ours"]), best(rounds["hello"])

    for name, figures in (("POST /api/v1/jobs", ours), ("hello world", hello)):
        print(f"  {name:<18} {figures['rps']:8.0f} req/s  p50 {figures['p50_ms']:6.1f} ms  "
              f"p99 {figures['p99_ms']:6.1f} ms  max {figures['max_ms']:6.1f} ms  "
              f"errors {figures['errors'] or 'none'}", flush=True)
    errors = {side: f["errors"] for side, f in (("ours", ours), ("hello", hello)) if f["errors"]}
    note = f"errors: {errors}" if errors else None
    setting = (f"{server_model()}, "
               f"{args.clients} keep-alive clients, best of {args.rounds}")
    rows = [
        _results.row(f"POST /api/v1/jobs (PING) req/s vs hello-world Flask POST, {setting}",
                     ours["rps"], hello["rps"], target=RATIO_TARGET, unit="req/s",
                     baseline_name="hello-world Flask", note=note, valid=not errors),
        _results.row(f"POST /api/v1/jobs p99 latency, {setting}", ours["p99_ms"], hello["p99_ms"],
                     target=P99_TARGET_MS, unit="ms", target_kind="at_most",
                     baseline_name="hello-world Flask", note=note, valid=not errors),
    ]
    _results.save("web", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
