#!/usr/bin/python3
"""The well-behaved client of the attack benchmark: keeps fetching poems
from the proxy while run.py attacks it, in a process of its own so that the
attacker's work does not delay its event loop.

    /usr/bin/python3 good.py --http PORT --poetry PORT --poems a,b,c
                             --poetry-bytes N [--timeout 5]

HTTP: HTTP_LOOPS loops, each a fresh connection per request (a new visitor:
what a full connection table refuses first), GET /poems/NAME with
Connection: close, read to the end of the body by Content-Length; ok when
200 and the whole body came. Poetry port: one loop, connect and read to
EOF; ok when exactly N bytes came (the poem). Each loop pauses between
requests, so the proxy is never loaded by the good client itself.

Runs until stdin closes (or SIGTERM), then prints one JSON object on stdout:
{"records": [[t_start, kind, ok, ms, error], ...]}, t_start being
time.monotonic() (CLOCK_MONOTONIC, the same clock in run.py), kind "h" or
"p", error "" when ok, else a short word ("503", "timeout", "reset", ...).

Standard library only.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

HTTP_LOOPS = 2
HTTP_PAUSE_S = 0.02
POETRY_PAUSE_S = 0.05


def classify(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, asyncio.IncompleteReadError):
        return "eof"
    if isinstance(e, OSError):
        return f"errno{e.errno}"
    return type(e).__name__


async def http_once(port, path, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Connection: close\r\n\r\n".encode("ascii"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if status != 200:
            return str(status)
        if length is None:
            return "nolength"
        await asyncio.wait_for(reader.readexactly(length), timeout)
        return ""
    finally:
        writer.close()


async def poetry_once(port, want, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        got = 0
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            got += len(chunk)
        if got == 0:
            return "empty"
        return "" if got == want else "short"
    finally:
        writer.close()


async def loop(kind, once, pause, records, stop, timeout):
    i = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            err = await asyncio.wait_for(once(i), timeout + 1)
        except Exception as e:  # noqa: BLE001 - every failure is a record
            err = classify(e)
        records.append([round(t0, 4), kind, 0 if err else 1,
                        round((time.monotonic() - t0) * 1000, 3), err])
        i += 1
        try:
            await asyncio.wait_for(stop.wait(), pause)
        except asyncio.TimeoutError:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--poetry", type=int, required=True)
    ap.add_argument("--poems", required=True)
    ap.add_argument("--poetry-bytes", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()
    poems = a.poems.split(",")
    records = []
    stop = asyncio.Event()
    lp = asyncio.get_running_loop()
    lp.add_signal_handler(signal.SIGTERM, stop.set)
    # stdin closing (run.py ends the phase, or dies) stops the loops.
    lp.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.buffer.raw.read(4096) or stop.set()))
    tasks = [asyncio.ensure_future(loop(
        "h", lambda i, k=k: http_once(a.http, f"/poems/{poems[(i + k) % len(poems)]}", a.timeout),
        HTTP_PAUSE_S, records, stop, a.timeout)) for k in range(HTTP_LOOPS)]
    tasks.append(asyncio.ensure_future(loop(
        "p", lambda i: poetry_once(a.poetry, a.poetry_bytes, a.timeout),
        POETRY_PAUSE_S, records, stop, a.timeout)))
    print("ready", file=sys.stderr, flush=True)
    await stop.wait()
    await asyncio.gather(*tasks)
    json.dump({"records": records}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
