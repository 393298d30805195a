"""A small HTTP/1.1 load generator for ``bench/web.py``: keep-alive clients on asyncio streams.

Each client holds one connection and sends the same request again as soon as the answer is
in (closed loop). Requests that start in the warm-up are not counted; the others count when
they end before the deadline. Run as a child process so that its CPU is not the bench's:

    python _http_load.py URL --clients 50 --warmup 2 --seconds 10 \\
        --header 'Authorization: Bearer x' --body '{"a": 1}' --expect 201

It prints one JSON object: requests, seconds, req/s, p50/p99/max latency in ms, the status
codes seen and the errors (connection failures, unexpected statuses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit


def build_request(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}",
            "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return parts.hostname, parts.port or 80, ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns its status and whether the server keeps the connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed by the server")
    status = int(status_line.split()[1])
    length, keep = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value == "close":
            keep = False
        elif name == "transfer-encoding":
            raise ValueError("chunked answers are not supported by this client")
    await reader.readexactly(length)
    return status, keep


async def client(host, port, request, count_from, stop_at, expect, latencies, statuses, errors):
    reader = writer = None
    while time.perf_counter() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            status, keep = await read_response(reader)
            ended = time.perf_counter()
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            errors[type(e).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if started >= count_from and ended <= stop_at:
            latencies.append(ended - started)
            statuses[status] += 1
            if status != expect:
                errors[f"status {status}"] += 1
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


async def load(args) -> dict:
    host, port, request = build_request(args.url, args.body.encode(), args.header)
    count_from = time.perf_counter() + args.warmup
    stop_at = count_from + args.seconds
    latencies, statuses, errors = [], Counter(), Counter()
    await asyncio.gather(*(client(host, port, request, count_from, stop_at, args.expect,
                                  latencies, statuses, errors) for _ in range(args.clients)))
    latencies.sort()
    return {"requests": len(latencies), "seconds": args.seconds,
            "rps": len(latencies) / args.seconds,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
            "statuses": {str(k): v for k, v in statuses.items()}, "errors": dict(errors)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="{}")
    parser.add_argument("--expect", type=int, default=200, help="the status every answer should have")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(load(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
