#!/usr/bin/python3
"""bench cluster's probe: what run.py needs done from inside a host (a
network namespace, entered with `ip netns exec NS`): print JSON on stdout.

usage: probe.py echo HOST PORT
           a TCP echo server; prints "listening on HOST:PORT" when ready
       probe.py rtt HOST PORT N
           N/4 connects to an echo server, then N one-byte round trips over one
           connection: {"connect_us": median, "echo_us": median, "echo_min_us",
           "echo_p90_us"}
       probe.py get HOST PORT PATH [WAIT_S]
           one GET (retried for WAIT_S seconds while refused or failing):
           {"status", "x_cache", "bytes"}

The round trips are the links' raw cost as weft's proxy is charged for it:
the kernel's TCP over the veth pair and bridge, plus a Python recv and send
at each end (a few microseconds, which the same probe over loopback shows).
Standard library and benchlib only.
"""

import json
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402


def echo(host, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(4096)  # rtt's connects come faster than this loop accepts them
    print(f"listening on {host}:{port}", flush=True)

    def serve(c):
        with c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                data = c.recv(4096)
                if not data:
                    return
                c.sendall(data)

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def rtt(host, port, n):
    connects = []
    for _ in range(max(1, n // 4)):
        t0 = time.perf_counter_ns()
        s = socket.create_connection((host, port), timeout=5)
        connects.append(time.perf_counter_ns() - t0)
        s.close()
    echoes = []
    with socket.create_connection((host, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(n + n // 10):  # the first tenth warms up, uncounted
            t0 = time.perf_counter_ns()
            s.sendall(b"x")
            if s.recv(16) != b"x":
                raise SystemExit("probe rtt: the echo server answered wrongly")
            if i >= n // 10:
                echoes.append(time.perf_counter_ns() - t0)
    echoes.sort()
    return {"connect_us": statistics.median(connects) / 1e3,
            "echo_us": statistics.median(echoes) / 1e3,
            "echo_min_us": echoes[0] / 1e3,
            "echo_p90_us": echoes[int(len(echoes) * 0.9)] / 1e3}


def get_once(host, port, path):
    status, headers, _, size = benchlib.http_get(port, path, timeout=10, host=host)
    return {"status": status, "x_cache": headers.get("x-cache"), "bytes": size}


def get(host, port, path, wait_s):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            r = get_once(host, port, path)
            if r["status"] < 500 or time.monotonic() > deadline:
                return r
        except benchlib.BenchError as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"probe get {host}:{port}{path}: {e}")
        time.sleep(0.05)


def main(argv):
    if len(argv) >= 3 and argv[0] == "echo":
        echo(argv[1], int(argv[2]))
    elif len(argv) == 4 and argv[0] == "rtt":
        print(json.dumps(rtt(argv[1], int(argv[2]), int(argv[3]))))
    elif len(argv) in (4, 5) and argv[0] == "get":
        wait_s = float(argv[4]) if len(argv) == 5 else 0
        print(json.dumps(get(argv[1], int(argv[2]), argv[3], wait_s)))
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
