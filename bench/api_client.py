"""API client overhead: the typed client against a bare ``requests.post`` loop.

Both send the same ``Campaigns`` query to a reference API over HTTP, one call at a time, in
alternating rounds so that drift of a noisy machine hits both alike. The client runs as the
scheduler runs it (circuit breaker, retries, error mapping, typed results) with the rate
limit off and the cache bypassed. Target: the client keeps at least 85 % of the bare rate.

Usage::

    python bench/api_client.py                         # starts Redis and a reference API
    python bench/api_client.py --url http://127.0.0.1:9264/graphql --key dev-key

Exit status 1 when the client falls below the target.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from scheduler_service.api.client import ApiClient
from scheduler_service.api.operations import CAMPAIGNS
from scheduler_service.config import load_settings
from scheduler_service.embedded_redis import EmbeddedRedis

import _reference  # noqa: E402  (bench/ is the script's own folder, first on sys.path)
import _results  # noqa: E402

#: The client must keep this share of the bare rate.
TARGET = 0.85


def start_reference_api(workdir: Path, redis_url: str):
    """A reference API subprocess on a free port (seed demo); returns it and its GraphQL URL."""
    return _reference.start_reference_api(
        workdir, redis_url, seed="demo", env={"SCHEDULER_ENV": "development", "DATA_DIR": str(workdir)})


def rate(call, seconds: float) -> tuple[int, float]:
    """Calls of ``call`` made in ``seconds``; returns ``(calls, elapsed)``."""
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        call()
        calls += 1
    return calls, time.perf_counter() - started


def measure(url: str, key: str, seconds: float, rounds: int) -> dict:
    body = {"query": CAMPAIGNS.text, "variables": {}, "operationName": CAMPAIGNS.name}
    headers = {"x-api-key": key}

    def bare():
        response = requests.post(url, json=body, headers=headers, timeout=10)
        response.raise_for_status()
        assert response.json()["data"]["campaigns"] is not None

    session = requests.Session()

    def bare_session():
        response = session.post(url, json=body, headers=headers, timeout=10)
        response.raise_for_status()
        assert response.json()["data"]["campaigns"] is not None

    settings = load_settings({"SCHEDULER_ENV": "test", "API_URL": url,
                              "API_SERVICE_ACCOUNT_TOKEN": key, "API_RATE_LIMIT_PER_SECOND": "0"})
    client = ApiClient.from_settings(settings)
    assert client.breaker is not None and client.limiter is None

    def typed():
        assert client.campaigns(use_cache=False)

    loops = {"bare requests.post": bare, "bare Session.post": bare_session, "client": typed}
    for call in loops.values():  # warm up connections and caches
        for _ in range(20):
            call()
    totals = {name: [0, 0.0] for name in loops}
    for _ in range(rounds):
        for name, call in loops.items():
            calls, elapsed = rate(call, seconds / rounds)
            totals[name][0] += calls
            totals[name][1] += elapsed
    client.close()
    session.close()
    return {name: calls / elapsed for name, (calls, elapsed) in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="reuse the reference API at this GraphQL URL")
    parser.add_argument("--key", default="dev-key", help="its API key (default: dev-key)")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="measuring time of each loop (default: 15)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: 5)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        redis_server = proc = None
        url = args.url
        try:
            if url is None:
                redis_server = EmbeddedRedis(Path(tmp) / "redis", persist=False).start()
                proc, url = start_reference_api(Path(tmp), redis_server.url)
            rates = measure(url, args.key, args.seconds, args.rounds)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if redis_server is not None:
                redis_server.stop()

    bare = rates["bare requests.post"]
    ratio = rates["client"] / bare
    print(f"API client vs bare requests.post, {CAMPAIGNS.name} query, one thread, "
          f"{args.seconds:.0f}s each in {args.rounds} alternating rounds")
    for name, value in rates.items():
        print(f"  {name:<20} {value:8.1f} calls/s  ({value / bare:6.1%} of bare requests.post)")
    verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
    print(f"client / bare requests.post = {ratio:.2f} (target >= {TARGET:.2f}): {verdict}")
    _results.save("api_client", [_results.row(
        f"API client {CAMPAIGNS.name} calls/s vs bare requests.post, one thread",
        rates["client"], bare, target=TARGET, unit="calls/s", baseline_name="requests.post",
        note=f"bare Session.post: {rates['bare Session.post']:.0f} calls/s")])
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
