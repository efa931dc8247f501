#!/usr/bin/python3
"""The cold burst of the proxy benchmark: N concurrent GETs of one URL.

    /usr/bin/python3 burst.py HOST PORT PATH [-n 1000] [--timeout 60]

First opens N connections (at most 200 connecting at a time, so that the
listen backlog never overflows and no SYN is retried a second later; this
part is not timed), then, all at once, sends one GET (Connection: close) on
each and times it from its send to the last byte of its body (read by
Content-Length). Prints one JSON object: n, ok (answers with status 200),
statuses, x_cache (the X-Cache values seen), errors, the spread of the sends
(ms from the first to the last), p50_ms, p99_ms, max_ms.

Standard library only.
"""

import argparse
import asyncio
import json
import resource
import sys
import time

CONNECTING_AT_ONCE = 200


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(max(soft, need), hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


async def one(host, port, path, gate, ready, go, sends, timeout):
    try:
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    finally:
        ready.count_one()
    await go.wait()
    try:
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Connection: close\r\n\r\n").encode("ascii")
        t0 = time.perf_counter()
        sends.append(t0)
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        else:
            await asyncio.wait_for(reader.read(), timeout)
        t1 = time.perf_counter()
        return status, headers.get("x-cache", "-"), (t1 - t0) * 1000.0
    finally:
        writer.close()


class Countdown:
    """Set once count_one has been called n times."""

    def __init__(self, n):
        self.left, self.done = n, asyncio.Event()
        if n <= 0:
            self.done.set()

    def count_one(self):
        self.left -= 1
        if self.left <= 0:
            self.done.set()


async def burst(host, port, path, n, timeout):
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
    ready, go = Countdown(n), asyncio.Event()
    sends = []
    tasks = [asyncio.ensure_future(one(host, port, path, gate, ready, go, sends, timeout))
             for _ in range(n)]
    # Every connection open (or failed) before the first request goes out.
    await ready.done.wait()
    go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return results, sends


def main():
    ap = argparse.ArgumentParser(description="N concurrent GETs of one URL, timed")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    raise_fd_limit(args.n + 64)
    results, sends = asyncio.run(burst(args.host, args.port, args.path, args.n, args.timeout))
    lat, statuses, xcache, errors = [], {}, {}, {}
    for r in results:
        if isinstance(r, BaseException):
            k = type(r).__name__ + (f": {r}" if str(r) else "")
            errors[k] = errors.get(k, 0) + 1
            continue
        status, xc, ms = r
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        xcache[xc] = xcache.get(xc, 0) + 1
        if status == 200:
            lat.append(ms)
    lat.sort()
    out = {
        "n": args.n,
        "ok": len(lat),
        "statuses": statuses,
        "x_cache": xcache,
        "errors": errors,
        "send_spread_ms": (max(sends) - min(sends)) * 1000.0 if sends else None,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
    }
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
