#!/usr/bin/python3
"""bench attack: hostile clients against weft's caching poetry proxy while a
well-behaved client keeps fetching (issue 13's adversarial client suite).

usage: /usr/bin/python3 tools/bench/attack/run.py --bin-dir BUILD [--out-dir DIR]
           [--quick] [--strict] [--proxy-arg ARG]... [--only NAME,...]
       /usr/bin/python3 tools/bench/attack/run.py BUILD/tools/bench/attack/bench_attack [OUTDIR] ...

(the second form is how tools/weft runs it: the build directory is found
from the path of the bench_attack target.)

Everything on loopback: examples/poetry_proxy (release build) in front of
tools/poetry's poetry-server. Each attack runs for a bounded time (quick:
ATTACK_S[quick], full: ATTACK_S[full], plus what opening its connections
takes) while good.py, in a process of its own, keeps fetching cached poems
(HTTP, a fresh connection per request, and the poetry port). Then the
attackers go, and the good client goes on for the recovery window.
Reported per attack: the good client's success rate and p50/p99 on each
port during the attack, the proxy's RSS (VmRSS) before, at its highest
during, and after the recovery window, whether it recovered (every good
request started after the attack succeeded, and RSS came back within
RSS_SLACK of before), and what the attack itself found (statuses, upstream
fetches...).

Attacks (HTTP port unless said):
  slowloris_headers  limit+64 connections sending a request's headers one
                     byte a second, never finishing
  slowloris_body     limit+64 connections with complete headers
                     (Content-Length: 100000) sending the body one byte a second
  stalled_body       limit+64 connections with complete headers,
                     Content-Length: 1, and no body
  never_reading      50 connections, each writing 64 KB of pipelined GETs and
                     never reading (receive buffer 4 KB)
  reset_mid_answer   rounds of 20 connections pipelining 200 GETs, never
                     reading, reset while the answers are being written: the
                     proxy must live (a write meeting a reset is EPIPE; it is
                     SIGPIPE too unless the process ignores it)
  half_close         GET then shutdown(SHUT_WR) (HTTP/1.1 and 1.0, as nc -N
                     does): must the client still get its answer (yes)
  idle_10k           10,000 connections (as many as RLIMIT_NOFILE allows)
                     that send nothing
  oversized          64 KB of headers (must get 431 and close) and a body of
                     twice the body limit (must get 413 and close)
  smuggling          CL+TE, two Content-Lengths, TE with a space before the
                     colon, TE folded, TE neither chunked nor alone, chunk
                     size overflow, bare LF, signed Content-Length, each with
                     a second request behind it: each must get 400 or 501,
                     and the connection closed (the second never answered)
  invalid_paths      %00, invalid or overlong UTF-8, .., %2f, control bytes,
                     raw bytes >= 0x80, bad %XX: 400 or 404, never 5xx or 200
  unknown_names      1000 requests over 10 unknown poem names; the upstream's
                     log counts its fetches (negative caching: at most one per
                     name per second)
  upstream_outage    a second proxy (--ttl-ms 1000) with every poem cached and
                     stale; its upstream replaced by one that resets every
                     connection: upstream attempts (at most one per key per
                     second), and the proxy's log lines per failure (rate-
                     limited: at most 1); then the upstream returns and an
                     uncached poem must be served
  poetry_half_close  the poetry port: connect, shutdown(SHUT_WR) at once:
                     must the client still get its poem (yes)
  poetry_idle_10k    10,000 connections to the poetry port that never read
  poetry_junk        50 connections writing 64 KB of junk to the poetry port
  transform_slowloris  the transform port (the tutorial's netstrings; a
                     transform-server upstream): limit+64 connections sending
                     "100000:cummingsify." and then a byte a second
  transform_never_reading  50 connections to the transform port, each writing
                     64 KB of pipelined requests and never reading (4 KB)
  transform_half_close  a request, then shutdown(SHUT_WR) at once: the answer
                     must come all the same (a cached transform, and one the
                     transform service is asked for)
  transform_idle_10k 10,000 connections to the transform port that send nothing
  transform_junk     50 connections writing 64 KB of junk to the transform port:
                     each must be reset
  During the transform attacks a good transform client (a fresh connection
  per request) must get every answer, with the same p99 bound.

The connection limit and the body limit are read from the proxy's /metrics
when it exports them (a gauge named weft_connections_max or
weft_max_connections, weft_max_body_bytes), else from --proxy-arg
(--max-connections, --max-body), else from the defaults documented in
weft/listener.h.

Prints a table, one line per attack, PASS or FAIL against the issue's
expectations (good client: no error and p99 <= GOOD_P99_MAX_MS; smuggling:
400/501 and close; half-close: answered; ...), and writes OUTDIR/attack.json
(benchlib's rows: one per figure, peer "target" and the bound where there
is one). Exit status: 0 when everything ran, even with FAILs (1 with
--strict); 1 when something failed to run; 2 on bad usage. Every process
and socket opened is closed, whatever happens.
"""

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

POEMS = os.path.join(ROOT, "examples", "poems")
LISTENER_H = os.path.join(ROOT, "actors", "std", "include", "weft", "listener.h")
GOOD = os.path.join(HERE, "good.py")
PY = "/usr/bin/python3"

ATTACK_S = {True: 1.0, False: 6.0}    # each attack's own time (quick, full)
RECOVER_S = {True: 0.8, False: 2.5}   # the good client alone afterwards
GRACE_S = 0.3            # after the attackers left, before "after" starts
GOOD_P99_MAX_MS = 250.0  # "a bounded p99" (cache hits take ~1 ms here)
RSS_SLACK = (1.25, 8.0)  # recovered: RSS after <= before * 1.25 + 8 MB
NEVER_READ_RSS_MAX_MB = 64.0  # growth while 50 clients never read
CONNECTING_AT_ONCE = 200      # never overflows the listen backlog (511)
EXTRA_OVER_LIMIT = 64
IDLE_N = 10000
NEVER_READ_N, NEVER_READ_BYTES = 50, 64 * 1024
UNKNOWN_NAMES, UNKNOWN_REQUESTS = 10, 1000
OUTAGE_TTL_MS = 1000
REQ_TIMEOUT_S = 5.0


class Stopped(Exception):
    """run.py itself got SIGTERM/SIGINT: clean up and leave."""


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            pass
    return out


def metrics(port):
    status, _, body, _ = benchlib.http_get(port, "/metrics", timeout=10)
    if status != 200:
        raise benchlib.BenchError(f"GET /metrics answered {status}")
    return parse_metrics(body.decode("utf-8", "replace"))


def proxy_option(args, name):
    """The value of --NAME in the --proxy-arg list, or None."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def header_default(field):
    """A limit's default from weft/listener.h's comment ("/* 0: 1024 */",
    "/* 0: 1 MiB */")."""
    with open(LISTENER_H) as f:
        text = f.read()
    m = re.search(rf"\b{field};\s*/\*[^*]*?0:\s*(\d+)\s*(KiB|MiB)?", text)
    if not m:
        raise benchlib.BenchError(f"cannot find the default of {field} in {LISTENER_H}")
    return int(m.group(1)) * {None: 1, "KiB": 1024, "MiB": 1 << 20}[m.group(2)]


def limit(m, gauges, proxy_args, option, field):
    """(value, where it came from)."""
    for g in gauges:
        if g in m:
            return int(m[g]), f"/metrics {g}"
    v = proxy_option(proxy_args, option)
    if v is not None:
        return int(v), f"--proxy-arg {option}"
    return header_default(field), f"weft/listener.h default of {field}"


# ---- processes ----

LISTENING = r"listening on 127\.0\.0\.1:(\d+)"


class Bins:
    def __init__(self, bin_dir):
        self.proxy = os.path.join(bin_dir, "examples", "poetry_proxy")
        self.server = os.path.join(bin_dir, "tools", "poetry", "poetry-server")
        self.xform = os.path.join(bin_dir, "tools", "poetry", "transform-server")
        for p in (self.proxy, self.server, self.xform):
            if not os.access(p, os.X_OK):
                raise benchlib.BenchError(
                    f"{p} is missing: build it first (ninja -C {bin_dir} bench_attack)")


def start_upstream(bins, tmp, name, port=0):
    return benchlib.Proc(name, [bins.server, "--port", str(port), "--poems", POEMS], tmp,
                         ready_line=LISTENING)


class Proxy:
    def __init__(self, bins, tmp, name, upstream_port, extra, xform_port=None):
        self.http, self.poetry = benchlib.free_port(), benchlib.free_port()
        cmd = [bins.proxy, *extra, "--send-name", "--upstream", f"poetry://127.0.0.1:{upstream_port}",
               "--http", f"127.0.0.1:{self.http}", "--poetry", f"127.0.0.1:{self.poetry}"]
        self.transform = None
        if xform_port is not None:
            self.transform = benchlib.free_port()
            cmd += ["--transform", f"127.0.0.1:{xform_port}",
                    "--transform-port", f"127.0.0.1:{self.transform}"]
        self.proc = benchlib.Proc(name, cmd, tmp, ready_line=r"poetry proxy: http://",
                                  ready_port=self.http)
        self.pid = self.proc.p.pid

    def log_lines(self):
        with open(self.proc.err, "rb") as f:
            return f.read().count(b"\n")

    def alive(self):
        return self.proc.p.poll() is None


def how_ended(proxy):
    rc = proxy.proc.p.returncode
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def poem_names():
    return sorted(f[:-4] for f in os.listdir(POEMS) if f.endswith(".txt"))


def warm(proxy, poems):
    for p in poems:
        status, h, _, _ = benchlib.http_get(proxy.http, f"/poems/{p}")
        if status != 200:
            raise benchlib.BenchError(f"warm-up: GET /poems/{p} answered {status}\n"
                                      f"{proxy.proc.stderr_tail()}")
    got = b""
    with socket.create_connection(("127.0.0.1", proxy.poetry), timeout=10) as s:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    if not got:
        raise benchlib.BenchError("warm-up: the poetry port sent an empty poem")
    return len(got)


# ---- raw sockets for the attackers ----

def rst_close(s):
    """Close with a reset: no TIME_WAIT left on this side for 10,000 sockets."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def outcome(s):
    """What the proxy did to an attacker's connection, seen without reading:
    the status it answered, or open, closed, reset."""
    try:
        d = s.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return f"errno{e.errno}"
    if not d:
        return "closed"
    m = re.match(rb"HTTP/1\.[01] (\d{3})", d)
    return m.group(1).decode() if m else "data"


class Crowd:
    """Many attacker connections to one port."""

    def __init__(self, port, rcvbuf=None):
        self.port, self.rcvbuf = port, rcvbuf
        self.socks, self.failed = [], {}

    async def push(self, data, deadline):
        """Writes data on every connection, never reading, until all of it
        is taken or the deadline; returns the bytes each one took."""
        async def one(s):
            n = 0
            while n < len(data) and time.monotonic() < deadline:
                try:
                    n += s.send(data[n:])
                except BlockingIOError:
                    await asyncio.sleep(0.05)
                except OSError:
                    break
            return n

        return list(await asyncio.gather(*(one(s) for s in self.socks)))

    async def open(self, n, first=b"", deadline=None):
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

        async def one():
            async with gate:
                if deadline is not None and time.monotonic() > deadline:
                    self.failed["deadline"] = self.failed.get("deadline", 0) + 1
                    return
                try:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                except OSError as e:
                    self.failed[f"errno{e.errno}"] = self.failed.get(f"errno{e.errno}", 0) + 1
                    return
                s.setblocking(False)
                if self.rcvbuf:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
                try:
                    await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", self.port)), 5)
                    if first:
                        s.send(first)
                except (OSError, asyncio.TimeoutError) as e:
                    k = "timeout" if isinstance(e, asyncio.TimeoutError) else f"errno{e.errno}"
                    self.failed[k] = self.failed.get(k, 0) + 1
                    rst_close(s)
                    return
                self.socks.append(s)

        await asyncio.gather(*(one() for _ in range(n)))

    def outcomes(self):
        out = {}
        for s in self.socks:
            k = outcome(s)
            out[k] = out.get(k, 0) + 1
        return out

    def close(self):
        for s in self.socks:
            rst_close(s)
        self.socks = []


def mb(x):
    return "-" if x is None else f"{x:.1f}"


def fmt_counts(d):
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "-"


async def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        await asyncio.sleep(d)


async def exchange(port, data, timeout=3.0, shut_wr=False):
    """Sends data on a fresh connection (with shut_wr, then shuts down its
    write side at once, in the same breath: the FIN may arrive before the
    proxy has even accepted), reads until EOF or timeout: (bytes read,
    closed by the proxy?, error)."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    got, closed, err, sender = b"", False, None, None
    try:
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", port))  # loopback: done before it returns
        except OSError as e:
            return b"", False, type(e).__name__
        s.setblocking(False)
        sender = None
        try:
            n = s.send(data) if data else 0  # a small request goes whole into the buffer
            if n < len(data):  # a big one is sent while the answer is read
                sender = asyncio.ensure_future(loop.sock_sendall(s, data[n:]))
            elif shut_wr:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # reset or broken pipe: the answer may be waiting all the same
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                err = "timeout"
                break
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(s, 65536), left)
            except asyncio.TimeoutError:
                err = "timeout"
                break
            except ConnectionResetError:
                closed, err = True, "reset"
                break
            except OSError as e:
                err = f"errno{e.errno}"
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        if sender is not None:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, OSError):
                pass
        rst_close(s)
    return got, closed, err


def statuses(data):
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3}) ", data)]


def full_200(data):
    """A whole 200 answer (head and Content-Length bytes of body)?"""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not re.match(rb"HTTP/1\.[01] 200 ", head):
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


# ---- the attacks: each runs until deadline, then closes what it opened,
# and returns (facts, checks); a check is (name, unit, value, target, note). ----

REQ = b"GET /poems/ozymandias HTTP/1.1\r\nHost: attack\r\n"


TICK_S = 0.25       # how often a crowd looks at its connections
TOPUP_MAX = 256     # connections a crowd opens again per tick, at most


async def hold_crowd(ctx, deadline, first, dribble_src=None, port=None, n=None, rcvbuf=None):
    """Opens n connections (default: the connection limit and EXTRA_OVER_LIMIT
    more) sending `first`, and holds them until deadline, sending each one
    more byte of dribble_src a second if given. As a real attacker would, it
    opens a connection again for each one the proxy answers or closes (at
    most TOPUP_MAX a tick), so that the pressure stays."""
    crowd = Crowd(port or ctx.proxy.http, rcvbuf)
    n = n if n is not None else ctx.conn_limit + EXTRA_OVER_LIMIT
    ended, reopened, pos = {}, 0, {}
    try:
        t = time.monotonic()
        await crowd.open(n, first)
        opened = len(crowd.socks)
        open_s = time.monotonic() - t
        deadline += open_s  # the attack's time starts once the crowd is in place
        next_drip = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            await asyncio.sleep(max(0.0, min(TICK_S, deadline - time.monotonic())))
            keep, gone = [], []
            for s in crowd.socks:
                k = outcome(s)
                if k == "open":
                    keep.append(s)
                else:
                    ended[k] = ended.get(k, 0) + 1
                    gone.append(s)
            for s in gone:
                pos.pop(s.fileno(), None)
                rst_close(s)
            crowd.socks = keep
            if dribble_src and time.monotonic() >= next_drip:
                next_drip += 1.0
                for s in keep:
                    i = pos.get(s.fileno(), 0)
                    try:
                        s.send(dribble_src[i % len(dribble_src):i % len(dribble_src) + 1])
                        pos[s.fileno()] = i + 1
                    except OSError:
                        pass
            again = min(len(gone), TOPUP_MAX)
            if again and time.monotonic() < deadline:
                await crowd.open(again, first, deadline)
                reopened += again
        seen = crowd.outcomes()
    finally:
        crowd.close()
    return {"opened": opened, "asked": n, "connect_failed": crowd.failed, "outcomes": seen,
            "ended": ended, "reopened": reopened, "open_s": open_s}


def crowd_note(f):
    s = f"{f['opened']} of {f['asked']} connections opened in {f['open_s']:.1f} s"
    if f["connect_failed"]:
        s += f" (failed: {fmt_counts(f['connect_failed'])})"
    if f["ended"]:
        s += (f"; the proxy answered or closed {sum(f['ended'].values())} "
              f"({fmt_counts(f['ended'])}), {f['reopened']} opened again")
    return s + f"; at the end: {fmt_counts(f['outcomes'])}"


async def a_slowloris_headers(ctx, deadline):
    f = await hold_crowd(ctx, deadline, REQ, dribble_src=b"X-Slow: aaaaaaaa\r\n")
    return f, [], crowd_note(f) + " (open: still dribbling headers)"


async def a_slowloris_body(ctx, deadline):
    first = b"POST /poems/ozymandias HTTP/1.1\r\nHost: attack\r\nContent-Length: 100000\r\n\r\n"
    f = await hold_crowd(ctx, deadline, first, dribble_src=b"a")
    return f, [], crowd_note(f)


async def a_stalled_body(ctx, deadline):
    first = b"POST /poems/ozymandias HTTP/1.1\r\nHost: attack\r\nContent-Length: 1\r\n\r\n"
    f = await hold_crowd(ctx, deadline, first)
    return f, [], crowd_note(f)


async def a_never_reading(ctx, deadline):
    one = REQ + b"\r\n"
    payload = one * (NEVER_READ_BYTES // len(one))
    crowd = Crowd(ctx.proxy.http, rcvbuf=4096)
    sent = []
    try:
        await crowd.open(NEVER_READ_N)
        opened = len(crowd.socks)

        sent = await crowd.push(payload, deadline)
        await sleep_until(deadline)
        seen = crowd.outcomes()
    finally:
        crowd.close()
    f = {"opened": opened, "sent_kb": sum(sent) / 1024,
         "requests_sent": sum(sent) // len(one), "outcomes": seen}
    return f, [], (f"{opened} connections (SO_RCVBUF 4 KB) wrote {f['sent_kb']:.0f} KB "
                   f"({f['requests_sent']} pipelined GETs) and read nothing; at the end: "
                   f"{fmt_counts(seen)}")


async def a_reset_mid_answer(ctx, deadline):
    """Rounds of 20 connections (receive buffer 4 KB) that pipeline 200 GETs,
    wait for the answers to fill their buffers, and reset: the proxy's next
    write meets the reset (EPIPE; SIGPIPE unless it is ignored)."""
    one = REQ + b"\r\n"
    rounds, resets = 0, 0
    while time.monotonic() < deadline and ctx.proxy.alive():
        crowd = Crowd(ctx.proxy.http, rcvbuf=4096)
        try:
            await crowd.open(20, one * 200)
            await asyncio.sleep(0.1)
            resets += len(crowd.socks)
        finally:
            crowd.close()
        rounds += 1
        await asyncio.sleep(0.05)
    await sleep_until(deadline)
    alive = ctx.proxy.alive()
    note = (f"{rounds} rounds of 20 connections (SO_RCVBUF 4 KB) pipelining 200 GETs each, "
            f"reset 0.1 s later while answers were being written ({resets} resets): the "
            f"proxy {'is alive' if alive else 'DIED (' + how_ended(ctx.proxy) + ')'}")
    return {}, [("proxy_alive", "bool", 1 if alive else 0, {"min": 1}, note)], \
        f"{resets} resets mid-answer in {rounds} round(s)"


HALF_CLOSE_REQS = [
    ("HTTP/1.1", b"GET /poems/ozymandias HTTP/1.1\r\nHost: attack\r\n\r\n"),
    ("HTTP/1.0", b"GET /poems/ozymandias HTTP/1.0\r\n\r\n"),
]
SLOW_DELAY_MS, SLOW_CHUNK = 20, 200  # the slow upstream: ~80 ms for ozymandias


async def slow_proxy(ctx):
    """A second proxy whose every answer waits for a fetch (--ttl-ms 1, a
    slow upstream): a half-close then surely arrives before the answer."""
    if ctx.slow is None:
        loop = asyncio.get_running_loop()
        up = await loop.run_in_executor(None, lambda: benchlib.Proc(
            "slow-upstream", [ctx.bins.server, "--port", "0", "--poems", POEMS, "--slow",
                              "--delay-ms", str(SLOW_DELAY_MS), "--chunk", str(SLOW_CHUNK)],
            ctx.tmp, ready_line=LISTENING))
        ctx.slow = await loop.run_in_executor(None, Proxy, ctx.bins, ctx.tmp, "slow-proxy",
                                              up.port, ctx.proxy_args + ["--ttl-ms", "1"])
    return ctx.slow


async def half_close(ctx, deadline, port_of, cases, answered):
    """Workers alternate over the cases (label, data) and the two proxies
    (cached, and slow: each answer a fetch); returns the note and the
    percentage answered."""
    slow = await slow_proxy(ctx)
    targets = [("cached", ctx.proxy), ("uncached", slow)]
    tries = {(t, k): [0, 0] for t, _ in targets for k, _ in cases}
    got = {}

    async def worker(w):
        i = w
        while time.monotonic() < deadline or i < 2 * len(cases):
            t, proxy = targets[i % 2]
            k, req = cases[(i // 2) % len(cases)]
            data, _, err = await exchange(port_of(proxy), req, timeout=REQ_TIMEOUT_S,
                                          shut_wr=True)
            tries[(t, k)][0] += 1
            tries[(t, k)][1] += answered(data)
            key = f"{len(data)}" + (f" {err}" if err else "")
            got[key] = got.get(key, 0) + 1
            i += 4
            await asyncio.sleep(0.02)

    await asyncio.gather(*(worker(w) for w in range(4)))
    total = sum(v[0] for v in tries.values())
    ok = sum(v[1] for v in tries.values())
    summary = "; ".join(f"{k} {t} {v[1]}/{v[0]}" for (t, k), v in tries.items())
    note = (f"{summary} answered (cached: the running proxy; uncached: one with --ttl-ms 1 "
            f"before an upstream sending {SLOW_CHUNK} bytes every {SLOW_DELAY_MS} ms, so the "
            f"FIN comes before the answer); bytes received: {fmt_counts(got)}")
    return note, 100.0 * ok / max(1, total), summary + " answered"


async def a_half_close(ctx, deadline):
    note, pct, summary = await half_close(
        ctx, deadline, lambda p: p.http, HALF_CLOSE_REQS, full_200)
    note = "request, then shutdown(SHUT_WR) at once (nc -N), read to EOF: " + note
    return {}, [("answered_pct", "%", pct, {"min": 100}, note)], summary


async def a_idle_10k(ctx, deadline, port=None, what="HTTP"):
    n = min(IDLE_N, ctx.fd_budget)
    f = await hold_crowd(ctx, deadline, b"", port=port, n=n)
    note = f"{what} port: " + crowd_note(f)
    if n < IDLE_N:
        note += f" (RLIMIT_NOFILE allows {n}, not {IDLE_N})"
    return f, [], note


async def a_oversized(ctx, deadline):
    big_head = (b"GET /poems/ozymandias HTTP/1.1\r\nHost: attack\r\nX-Big: "
                + b"a" * 65536 + b"\r\n\r\n")
    body_len = 2 * ctx.max_body
    body_req = (b"POST /poems/ozymandias HTTP/1.1\r\nHost: attack\r\nContent-Length: "
                + str(body_len).encode() + b"\r\n\r\n" + b"a" * body_len)
    res = {"headers": {}, "body": {}}
    ok = {"headers": [0, 0], "body": [0, 0]}

    async def worker(w):
        i = w
        while time.monotonic() < deadline:
            kind, req, want = (("headers", big_head, 431) if i % 2 == 0
                               else ("body", body_req, 413))
            data, closed, err = await exchange(ctx.proxy.http, req, timeout=REQ_TIMEOUT_S)
            st = statuses(data)
            key = "/".join(map(str, st)) or (err or "nothing")
            key += "" if closed else " (left open)"
            res[kind][key] = res[kind].get(key, 0) + 1
            ok[kind][0] += 1
            ok[kind][1] += st == [want] and closed
            i += 1

    await asyncio.gather(*(worker(w) for w in range(4)))
    checks = [
        ("headers_431_pct", "%", 100.0 * ok["headers"][1] / max(1, ok["headers"][0]),
         {"min": 100}, f"64 KB of headers, {ok['headers'][0]} tries: {fmt_counts(res['headers'])}"
                       f" (want 431, then the connection closed)"),
        ("body_413_pct", "%", 100.0 * ok["body"][1] / max(1, ok["body"][0]), {"min": 100},
         f"a {body_len >> 20} MiB body (twice the {ctx.max_body_src} limit), {ok['body'][0]} "
         f"tries: {fmt_counts(res['body'])} (want 413, then the connection closed)"),
    ]
    return res, checks, f"431 {ok['headers'][1]}/{ok['headers'][0]}, 413 {ok['body'][1]}/{ok['body'][0]}"


NEXT = b"GET /poems/ozymandias HTTP/1.1\r\nHost: attack\r\n\r\n"  # the smuggled one
SMUGGLING = [
    ("cl_te", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te_cl", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("two_cl", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
               b"Content-Length: 5\r\n\r\nhello"),
    ("cl_list", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 5\r\n\r\nhello"),
    ("cl_signed", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
    ("te_space_colon", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n"
                       b"\r\n0\r\n\r\n"),
    ("cl_space_colon", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"),
    ("te_folded", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n"
                  b"\r\n0\r\n\r\n"),
    ("te_folded_after", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        b" , identity\r\n\r\n0\r\n\r\n"),
    ("te_xchunked", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n"
                    b"\r\n0\r\n\r\n"),
    ("te_chunked_identity", b"POST /poems/x HTTP/1.1\r\nHost: a\r\n"
                            b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("te_twice", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    ("te_vtab", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n"
                b"\r\n0\r\n\r\n"),
    ("chunk_overflow", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk_size_junk", b"POST /poems/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        b"\r\n5 x\r\nhello\r\n0\r\n\r\n"),
    ("bare_lf", b"POST /poems/x HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello"),
    ("bare_cr", b"POST /poems/x HTTP/1.1\rHost: a\r\nContent-Length: 5\r\n\r\nhello"),
]


async def a_smuggling(ctx, deadline):
    res = {k: {"tries": 0, "ok": 0, "seen": {}} for k, _ in SMUGGLING}

    async def worker(w):
        i = w
        while True:
            k, req = SMUGGLING[i % len(SMUGGLING)]
            # every variant once, however short the window
            if time.monotonic() >= deadline and i >= len(SMUGGLING):
                return
            data, closed, err = await exchange(ctx.proxy.http, req + NEXT, timeout=3.0)
            st = statuses(data)
            good = len(st) == 1 and st[0] in (400, 501) and closed
            key = "/".join(map(str, st)) or (err or "nothing")
            key += "" if closed else " open"
            r = res[k]
            r["tries"] += 1
            r["ok"] += good
            r["seen"][key] = r["seen"].get(key, 0) + 1
            i += 2

    await asyncio.gather(*(worker(w) for w in range(2)))
    checks = []
    for k, _ in SMUGGLING:
        r = res[k]
        checks.append((f"{k}_rejected", "ok", 1 if r["ok"] == r["tries"] else 0, {"min": 1},
                       f"{k}: {fmt_counts(r['seen'])} over {r['tries']} tries (want only "
                       f"400/501, then close; a second status means the request behind it "
                       f"was answered)"))
    bad = [k for k, _ in SMUGGLING if res[k]["ok"] != res[k]["tries"]]
    return res, checks, (f"{len(SMUGGLING) - len(bad)}/{len(SMUGGLING)} rejected and closed"
                         + (f"; not: {', '.join(bad)}" if bad else ""))


INVALID_PATHS = [
    ("nul", b"/poems/%00"), ("nul_mid", b"/poems/ozy%00mandias"),
    ("bad_utf8", b"/poems/%ff%fe"), ("overlong_slash", b"/poems/%c0%af"),
    ("surrogate", b"/poems/%ed%a0%80"), ("cut_utf8", b"/poems/%e2%82"),
    ("dotdot", b"/poems/.."), ("dotdot_enc", b"/poems/%2e%2e"),
    ("dotdot_etc", b"/poems/..%2f..%2fetc%2fpasswd"), ("slash_enc", b"/poems/a%2fb"),
    ("backslash", b"/poems/..%5c..%5cwin"), ("ctl_enc", b"/poems/%01%1b"),
    ("bad_pct", b"/poems/%zz"), ("pct_cut", b"/poems/abc%"),
    ("raw_high", b"/poems/\xc3\xa9\xff"), ("raw_ctl", b"/poems/a\x01b"),
    ("raw_del", b"/poems/a\x7fb"), ("space_enc", b"/poems/a%20b"),
    ("long_name", b"/poems/" + b"a" * 1500),
]


async def a_invalid_paths(ctx, deadline):
    res = {k: {} for k, _ in INVALID_PATHS}
    ok = {k: [0, 0] for k, _ in INVALID_PATHS}

    async def worker(w):
        i = w
        while True:
            if time.monotonic() >= deadline and i >= len(INVALID_PATHS):
                return
            k, path = INVALID_PATHS[i % len(INVALID_PATHS)]
            data, closed, err = await exchange(
                ctx.proxy.http, b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                timeout=3.0)
            st = statuses(data)
            key = "/".join(map(str, st)) or (err or "nothing")
            res[k][key] = res[k].get(key, 0) + 1
            ok[k][0] += 1
            ok[k][1] += len(st) == 1 and st[0] in (400, 404)
            i += 2

    await asyncio.gather(*(worker(w) for w in range(2)))
    good = [k for k in ok if ok[k][0] == ok[k][1]]
    bad = [f"{k} ({fmt_counts(res[k])})" for k in ok if ok[k][0] != ok[k][1]]
    note = (f"{len(INVALID_PATHS)} paths, each answered: "
            + "; ".join(f"{k} {'/'.join(res[k])}" for k, _ in INVALID_PATHS)
            + " (want 400 or 404 only)")
    checks = [("answered_4xx", "paths", len(good), {"min": len(INVALID_PATHS)}, note)]
    return res, checks, (f"{len(good)}/{len(INVALID_PATHS)} 400/404"
                         + (f"; not: {', '.join(bad)}" if bad else ""))


def upstream_unknown(upstream, prefix):
    return len(re.findall(rf"unknown poem {re.escape(prefix)}", upstream.stderr()))


async def a_unknown_names(ctx, deadline):
    prefix = f"nosuchpoem{random.randrange(1 << 30):x}_"
    names = [f"{prefix}{i}" for i in range(UNKNOWN_NAMES)]
    before = upstream_unknown(ctx.upstream, prefix)
    lines0 = ctx.proxy.log_lines()
    t0 = time.monotonic()
    seen = {}
    per_conn = UNKNOWN_REQUESTS // UNKNOWN_NAMES

    async def conn(w):
        # One keep-alive connection asking, one after another, for each name in turn.
        sent = 0
        while sent < per_conn:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", ctx.proxy.http), 5)
            except (OSError, asyncio.TimeoutError) as e:
                seen[type(e).__name__] = seen.get(type(e).__name__, 0) + 1
                sent += 1
                continue
            try:
                while sent < per_conn:
                    name = names[(w + sent) % len(names)]
                    writer.write(f"GET /poems/{name} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                    sent += 1
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQ_TIMEOUT_S)
                    st = statuses(head)
                    k = str(st[0]) if st else "?"
                    seen[k] = seen.get(k, 0) + 1
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m:
                        await asyncio.wait_for(reader.readexactly(int(m.group(1))), REQ_TIMEOUT_S)
                    if re.search(rb"(?im)^connection:\s*close", head):
                        break
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                seen[type(e).__name__] = seen.get(type(e).__name__, 0) + 1
            finally:
                writer.transport.abort()

    await asyncio.gather(*(conn(w) for w in range(UNKNOWN_NAMES)))
    elapsed = time.monotonic() - t0
    await sleep_until(deadline)
    await asyncio.sleep(0.2)  # the upstream logs once its side is done
    fetches = upstream_unknown(ctx.upstream, prefix) - before
    cap = UNKNOWN_NAMES * max(1, math.ceil(elapsed))
    note = (f"{UNKNOWN_REQUESTS} requests over {UNKNOWN_NAMES} unknown names ({UNKNOWN_NAMES} "
            f"keep-alive connections, one request at a time each) took {elapsed:.1f} s; "
            f"answers: {fmt_counts(seen)}; the upstream's log shows {fetches} fetches of them "
            f"(at most one per name per second wanted: {cap})")
    lines = ctx.proxy.log_lines() - lines0
    failed = sum(v for k, v in seen.items() if k != "200")
    per = lines / failed if failed else None
    checks = [("upstream_fetches", "fetches", fetches, {"max": cap}, note),
              ("log_lines_per_failure", "lines", None if per is None else round(per, 3),
               {"max": 1}, f"{lines} lines on the proxy's stderr for {failed} failed answers; "
                           f"repeated lines should be rate-limited, with a count")]
    return {"fetches": fetches, "answers": seen, "elapsed_s": elapsed}, checks, \
        f"{fetches} upstream fetches (max {cap}), {lines} log lines for {failed} failures"


async def a_poetry_half_close(ctx, deadline):
    note, pct, summary = await half_close(
        ctx, deadline, lambda p: p.poetry, [("poem", b"")],
        lambda data: len(data) == ctx.poetry_bytes)
    note = ("connect, shutdown(SHUT_WR) at once (the tutorial's clients, nc -N), read to EOF, "
            f"want the {ctx.poetry_bytes}-byte poem: " + note)
    return {}, [("answered_pct", "%", pct, {"min": 100}, note)], summary


async def a_poetry_idle_10k(ctx, deadline):
    return await a_idle_10k(ctx, deadline, port=ctx.proxy.poetry, what="poetry")


async def junk_crowd(port, deadline):
    """NEVER_READ_N connections writing 64 KB of random bytes to port and
    reading nothing: (KB sent, what became of them at the end)."""
    crowd = Crowd(port, rcvbuf=4096)
    junk = bytes(random.randrange(256) for _ in range(4096)) * 16
    sent = []
    try:
        await crowd.open(NEVER_READ_N)
        sent = await crowd.push(junk, deadline)
        await sleep_until(deadline)
        seen = crowd.outcomes()
    finally:
        crowd.close()
    return sum(sent) / 1024, seen


async def a_poetry_junk(ctx, deadline):
    kb, seen = await junk_crowd(ctx.proxy.poetry, deadline)
    note = (f"{NEVER_READ_N} connections to the poetry port wrote {kb:.0f} KB of "
            f"random bytes and read nothing; at the end: {fmt_counts(seen)}")
    return {"sent_kb": kb, "outcomes": seen}, [], note


# ---- the transform port ----

XFORM_REQ, XFORM_ANSWER = b"27:cummingsify.HERE IS MY POEM,", b"15:here is my poem,"


def xform_request(text):
    body = b"cummingsify." + text
    return b"%d:%s," % (len(body), body), b"%d:%s," % (len(text), text.lower())


async def good_transform(ctx, deadline):
    """The well-behaved transform client: a fresh connection per request,
    until deadline; (answered, asked, latencies of all in ms)."""
    ok, n, lat = 0, 0, []
    while time.monotonic() < deadline:
        t = time.monotonic()
        data, closed, _ = await exchange(ctx.proxy.transform, XFORM_REQ, timeout=REQ_TIMEOUT_S)
        lat.append((time.monotonic() - t) * 1000)
        n += 1
        ok += data == XFORM_ANSWER and closed
        await asyncio.sleep(0.01)
    return ok, n, lat


def good_transform_checks(ok, n, lat):
    p99 = percentile(lat, 99) if lat else None
    note = (f"the good transform client (a fresh connection per request, the tutorial's "
            f"example): {ok}/{n} answered whole during the attack, p50 "
            f"{'-' if not lat else format(percentile(lat, 50), '.2f')} ms")
    return [("good_transform_ok_pct", "%", 100.0 * ok / n if n else None, {"min": 100}, note),
            ("good_transform_p99_ms", "ms", None if p99 is None else round(p99, 2),
             {"max": GOOD_P99_MAX_MS}, "p99 of every good transform request, failed ones at "
             f"the time they took (timeout {REQ_TIMEOUT_S:g} s)")]


def with_good_transform(attack):
    """Runs attack(ctx, deadline) while the good transform client runs;
    its figures join the attack's checks."""
    async def run(ctx, deadline):
        good = asyncio.ensure_future(good_transform(ctx, deadline))
        try:
            f, checks, note = await attack(ctx, deadline)
        finally:
            ok, n, lat = await good
        return f, checks + good_transform_checks(ok, n, lat), \
            note + f"; good transform {ok}/{n}"
    return run


async def a_transform_slowloris(ctx, deadline):
    f = await hold_crowd(ctx, deadline, b"100000:cummingsify.", dribble_src=b"a",
                         port=ctx.proxy.transform)
    return f, [], "transform port: " + crowd_note(f) + " (open: still dribbling a request)"


async def a_transform_never_reading(ctx, deadline):
    payload = XFORM_REQ * (NEVER_READ_BYTES // len(XFORM_REQ))
    crowd = Crowd(ctx.proxy.transform, rcvbuf=4096)
    rss0 = rss_mb(ctx.proxy.pid)
    top = rss0
    sent = []
    try:
        await crowd.open(NEVER_READ_N)
        opened = len(crowd.socks)
        pushing = asyncio.ensure_future(crowd.push(payload, deadline))
        while not pushing.done():
            top = max(top or 0, rss_mb(ctx.proxy.pid) or 0)
            await asyncio.sleep(0.1)
        sent = pushing.result()
        await sleep_until(deadline)
        top = max(top or 0, rss_mb(ctx.proxy.pid) or 0)
        seen = crowd.outcomes()
    finally:
        crowd.close()
    growth = None if rss0 is None else top - rss0
    note = (f"{opened} connections to the transform port (SO_RCVBUF 4 KB) wrote "
            f"{sum(sent) / 1024:.0f} KB ({sum(sent) // len(XFORM_REQ)} pipelined requests) and "
            f"read nothing; RSS {mb(rss0)} -> {mb(top)} MB at most; at the end: {fmt_counts(seen)}")
    return {"sent_kb": sum(sent) / 1024, "outcomes": seen}, \
        [("rss_growth_mb", "MB", growth, {"max": NEVER_READ_RSS_MAX_MB}, note)], note


async def a_transform_half_close(ctx, deadline):
    """Workers alternate: a transform the proxy has kept, and a new poem
    each time, which the transform service is asked for while the FIN is
    already in."""
    tries = {"cached": [0, 0], "uncached": [0, 0]}
    got = {}
    seq = iter(range(1 << 30))

    async def worker(w):
        i = w
        while time.monotonic() < deadline or i < 2:
            kind = "cached" if i % 2 == 0 else "uncached"
            if kind == "cached":
                req, want = XFORM_REQ, XFORM_ANSWER
            else:
                req, want = xform_request(b"POEM NUMBER %d OF %d" % (next(seq), w))
            data, closed, err = await exchange(ctx.proxy.transform, req, timeout=REQ_TIMEOUT_S,
                                               shut_wr=True)
            tries[kind][0] += 1
            tries[kind][1] += data == want and closed
            key = f"{len(data)}" + (f" {err}" if err else "")
            got[key] = got.get(key, 0) + 1
            i += 1
            await asyncio.sleep(0.02)

    await asyncio.gather(*(worker(w) for w in range(4)))
    total = sum(v[0] for v in tries.values())
    ok = sum(v[1] for v in tries.values())
    summary = "; ".join(f"{k} {v[1]}/{v[0]}" for k, v in tries.items()) + " answered"
    note = ("transform port: a request, then shutdown(SHUT_WR) at once (nc -N), read to EOF: "
            f"{summary} (uncached: a new poem each time, so the transform service is asked "
            f"after the FIN); bytes received: {fmt_counts(got)}")
    return {}, [("answered_pct", "%", 100.0 * ok / max(1, total), {"min": 100}, note)], summary


async def a_transform_idle_10k(ctx, deadline):
    return await a_idle_10k(ctx, deadline, port=ctx.proxy.transform, what="transform")


async def a_transform_junk(ctx, deadline):
    kb, seen = await junk_crowd(ctx.proxy.transform, deadline)
    still = seen.get("open", 0) + seen.get("data", 0)
    note = (f"{NEVER_READ_N} connections to the transform port wrote {kb:.0f} KB "
            f"of random bytes; at the end: {fmt_counts(seen)} (none may be open or answered: "
            f"junk is not a netstring)")
    return {"sent_kb": kb, "outcomes": seen}, \
        [("left_open", "connections", still, {"max": 0}, note)], note


class FakeUpstream:
    """Listens on the upstream's port and resets every connection at once,
    counting them: an upstream that is down but still accepts."""

    def __init__(self, port):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", port))
        self.s.listen(511)
        self.s.setblocking(False)
        self.count = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            c, _ = await loop.sock_accept(self.s)
            self.count += 1
            rst_close(c)

    async def close(self):
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, OSError):
            pass
        self.s.close()


async def a_upstream_outage(ctx, deadline):
    o = ctx.outage
    fails0 = o["fails0"]
    benchlib.stop(o["upstream"])
    fake = FakeUpstream(o["port"])
    lines0 = ctx.proxy.log_lines()
    t0 = time.monotonic()
    answers = {}
    req = (f"GET /poems/{ctx.hammer_poem} HTTP/1.1\r\nHost: a\r\n"
           f"Connection: close\r\n\r\n").encode()

    async def hammer():
        # Clients asking for a poem the proxy never had: each answer is a failure.
        while time.monotonic() < deadline:
            data, _, err = await exchange(ctx.proxy.http, req, timeout=REQ_TIMEOUT_S)
            st = statuses(data)
            k = str(st[0]) if st else (err or "nothing")
            answers[k] = answers.get(k, 0) + 1
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(hammer(), hammer())
        await sleep_until(deadline)
    finally:
        attempts = fake.count
        await fake.close()
    outage_s = time.monotonic() - t0
    await asyncio.sleep(0.1)
    lines = ctx.proxy.log_lines() - lines0
    o["upstream"] = await asyncio.get_running_loop().run_in_executor(
        None, start_upstream, ctx.bins, ctx.tmp, "outage-upstream-back", o["port"])
    try:
        fails = metrics(ctx.proxy.http).get("weft_upstream_failures_total", 0) - fails0
    except benchlib.BenchError:
        fails = None
    failed = sum(v for k, v in answers.items() if k != "200")
    keys = len(set(ctx.good_poems) | {ctx.poetry_poem, ctx.hammer_poem})
    cap = keys * max(1, math.ceil(outage_s))
    per = lines / failed if failed else None
    note_a = (f"a proxy with --ttl-ms {OUTAGE_TTL_MS}, {keys - 1} poems cached and stale, its "
              f"upstream resetting every connection for {outage_s:.1f} s while the good client "
              f"asked for them and 2 clients asked again and again for {ctx.hammer_poem} "
              f"(never cached; answers: {fmt_counts(answers)}): {attempts} upstream attempts "
              f"for {keys} keys (at most one per key per second wanted: {cap}); "
              f"weft_upstream_failures_total grew by {'?' if fails is None else int(fails)}")
    note_l = (f"{lines} lines on the proxy's stderr during the outage, for {failed} failed "
              f"answers and {attempts} failed upstream attempts; repeated lines should be "
              f"rate-limited, with a count")
    checks = [("upstream_attempts", "attempts", attempts, {"max": cap}, note_a),
              ("log_lines_per_failure", "lines", None if per is None else round(per, 3),
               {"max": 1}, note_l)]
    return ({"attempts": attempts, "log_lines": lines, "failures_metric": fails,
             "answers": answers}, checks,
            f"{attempts} upstream attempts (max {cap}), {lines} log lines for {failed} failed "
            f"answers")


async def after_outage(ctx):
    """Recovered also means: with the upstream back, an uncached poem is served."""
    end = time.monotonic() + max(2.0, RECOVER_S[ctx.quick])
    last = None
    while time.monotonic() < end:
        data, _, err = await exchange(
            ctx.proxy.http, f"GET /poems/{ctx.cold_poem} HTTP/1.1\r\nHost: a\r\n"
                            f"Connection: close\r\n\r\n".encode(), timeout=3.0)
        if full_200(data):
            return True, f"with the upstream back, GET /poems/{ctx.cold_poem} (uncached) got 200"
        last = statuses(data) or err
        await asyncio.sleep(0.2)
    return False, f"with the upstream back, GET /poems/{ctx.cold_poem} (uncached) got {last}"


async def a_baseline(ctx, deadline):
    await sleep_until(deadline)
    return {}, [], "no attack: the good client alone"


# name, function, what it is about (for the rows' notes)
ATTACKS = [
    ("baseline", a_baseline),
    ("slowloris_headers", a_slowloris_headers),
    ("slowloris_body", a_slowloris_body),
    ("stalled_body", a_stalled_body),
    ("never_reading", a_never_reading),
    ("reset_mid_answer", a_reset_mid_answer),
    ("half_close", a_half_close),
    ("idle_10k", a_idle_10k),
    ("oversized", a_oversized),
    ("smuggling", a_smuggling),
    ("invalid_paths", a_invalid_paths),
    ("unknown_names", a_unknown_names),
    ("poetry_half_close", a_poetry_half_close),
    ("poetry_idle_10k", a_poetry_idle_10k),
    ("poetry_junk", a_poetry_junk),
    ("transform_slowloris", with_good_transform(a_transform_slowloris)),
    ("transform_never_reading", with_good_transform(a_transform_never_reading)),
    ("transform_half_close", with_good_transform(a_transform_half_close)),
    ("transform_idle_10k", with_good_transform(a_transform_idle_10k)),
    ("transform_junk", with_good_transform(a_transform_junk)),
    ("upstream_outage", a_upstream_outage),
]


# ---- one phase: good client, attack, recovery ----

class Ctx:
    pass


async def start_good(ctx):
    p = await asyncio.create_subprocess_exec(
        PY, GOOD, "--http", str(ctx.proxy.http), "--poetry", str(ctx.proxy.poetry),
        "--poems", ",".join(ctx.good_poems), "--poetry-bytes", str(ctx.poetry_bytes),
        "--timeout", str(REQ_TIMEOUT_S),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    ctx.good_procs.append(p)
    line = await asyncio.wait_for(p.stderr.readline(), 10)
    if b"ready" not in line:
        raise benchlib.BenchError(f"good.py did not start: {line!r}")
    return p


async def stop_good(p):
    p.stdin.close()
    try:
        out, err = await asyncio.wait_for(p.communicate(), REQ_TIMEOUT_S + 10)
    except asyncio.TimeoutError:
        p.kill()
        raise benchlib.BenchError("good.py did not stop")
    if p.returncode != 0:
        raise benchlib.BenchError(f"good.py exited with {p.returncode}: {err.decode()[-500:]}")
    return json.loads(out)["records"]


def summarize(records, kind, t0, t1):
    rs = [r for r in records if r[1] == kind and t0 <= r[0] < t1]
    ok = [r[3] for r in rs if r[2]]
    errs = {}
    for r in rs:
        if not r[2]:
            errs[r[4]] = errs.get(r[4], 0) + 1
    return {"n": len(rs), "ok": len(ok),
            "ok_pct": 100.0 * len(ok) / len(rs) if rs else None,
            "p50": percentile(ok, 50), "p99": percentile(ok, 99),
            # a failed request counts in the p99 too: at the time it took
            "p99_all": percentile([r[3] for r in rs], 99), "errors": errs}


async def phase(ctx, name, fn):
    proxy = ctx.proxy
    await asyncio.sleep(0.2)  # what the last phase left settles
    rss_before = rss_mb(proxy.pid)
    lines0 = proxy.log_lines()
    good = await start_good(ctx)
    await asyncio.sleep(0.2)  # its loops are fetching
    t0 = time.monotonic()
    deadline = t0 + ctx.attack_s
    peak = [rss_before or 0.0]

    async def sample():
        while True:
            v = rss_mb(proxy.pid)
            if v is not None:
                peak[0] = max(peak[0], v)
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    try:
        facts, checks, summary = await fn(ctx, deadline)
    finally:
        sampler.cancel()
    t1 = time.monotonic()
    rss_during = max(peak[0], rss_mb(proxy.pid) or 0.0)
    await asyncio.sleep(ctx.recover_s)
    extra_ok, extra_note = True, None
    if name == "upstream_outage":
        extra_ok, extra_note = await after_outage(ctx)
    t2 = time.monotonic()
    rss_after = rss_mb(proxy.pid)
    records = await stop_good(good)
    ctx.good_procs.remove(good)
    h = summarize(records, "h", t0, t1)
    p = summarize(records, "p", t0, t1)
    ha = summarize(records, "h", t1 + GRACE_S, t2)
    pa = summarize(records, "p", t1 + GRACE_S, t2)
    alive = proxy.alive()
    served_after = ha["n"] > 0 and ha["ok"] == ha["n"] and pa["n"] > 0 and pa["ok"] == pa["n"]
    rss_ok = (rss_after is not None and rss_before is not None
              and rss_after <= rss_before * RSS_SLACK[0] + RSS_SLACK[1])
    recovered = alive and served_after and rss_ok and extra_ok
    why = []
    if not alive:
        why.append(f"the proxy died ({how_ended(proxy)}; its last lines: "
                   + " | ".join(proxy.proc.stderr().splitlines()[-3:]) + ")")
        summary += f"; the proxy DIED ({how_ended(proxy)})"
    if not served_after:
        why.append(f"good requests after the attack: HTTP {ha['ok']}/{ha['n']} "
                   f"({fmt_counts(ha['errors'])}), poetry {pa['ok']}/{pa['n']} "
                   f"({fmt_counts(pa['errors'])})")
    if not rss_ok and alive:
        why.append(f"RSS {rss_after:.1f} MB after vs {rss_before:.1f} MB before")
    if not extra_ok:
        why.append(extra_note)
    return {"name": name, "attack_s": t1 - t0, "h": h, "p": p, "h_after": ha, "p_after": pa,
            "rss": (rss_before, rss_during, rss_after), "recovered": recovered,
            "recovered_why": "; ".join(why) or (extra_note or "ok"), "facts": facts,
            "checks": checks, "summary": summary,
            "log_lines": proxy.log_lines() - lines0}


# ---- rows and table ----

def build_rows(results, ctx):
    rows = []
    cav = benchlib.caveat(ctx.quick)
    for res in results:
        a = res["name"]
        h, p = res["h"], res["p"]
        rb, rd, ra = res["rss"]
        base = a == "baseline"
        first = (f"{cav}{res['summary']}. Attack {res['attack_s']:.1f} s; the proxy logged "
                 f"{res['log_lines']} lines meanwhile. Good client (good.py: {2} HTTP loops, "
                 f"a fresh connection per request, and 1 poetry loop) during the attack: "
                 f"HTTP {h['ok']}/{h['n']} ok (errors: {fmt_counts(h['errors'])}), poetry "
                 f"{p['ok']}/{p['n']} ok (errors: {fmt_counts(p['errors'])}).")
        for kind, s, label in (("http", h, "HTTP"), ("poetry", p, "poetry")):
            rows.append(benchlib.row(
                f"{a}.good_{kind}_ok_pct", "%", s["ok_pct"], None if base else "target",
                None if base else 100, higher_is_better=True,
                target=None if base else {"min": 100}, note=first if kind == "http" else None))
            rows.append(benchlib.row(f"{a}.good_{kind}_p50_ms", "ms", s["p50"], None, None))
            rows.append(benchlib.row(
                f"{a}.good_{kind}_p99_ms", "ms", s["p99_all"], None if base else "target",
                None if base else GOOD_P99_MAX_MS,
                target=None if base else {"max": GOOD_P99_MAX_MS},
                note=(f"p99 of every good {label} request started during the attack, failed "
                      f"ones at the time they took (timeout {REQ_TIMEOUT_S:g} s); of the "
                      f"successful ones alone: "
                      f"{'-' if s['p99'] is None else format(s['p99'], '.2f')} ms")
                if kind == "http" else None))
        if a == "never_reading":
            rows.append(benchlib.row(
                f"{a}.rss_growth_mb", "MB", None if rb is None else rd - rb, "target",
                NEVER_READ_RSS_MAX_MB, target={"max": NEVER_READ_RSS_MAX_MB},
                note=f"RSS at its highest during the attack minus before ({mb(rb)} -> "
                     f"{mb(rd)} MB): queued output must be bounded per connection"))
        rows.append(benchlib.row(
            f"{a}.rss_mb", "MB", rd, None, None,
            note=f"the proxy's VmRSS before / at its highest during / after: {mb(rb)} / "
                 f"{mb(rd)} / {mb(ra)} MB"))
        rows.append(benchlib.row(
            f"{a}.recovered", "bool", 1 if res["recovered"] else 0,
            None if base else "target", None if base else 1, higher_is_better=True,
            target=None if base else {"min": 1},
            note=(f"recovered: every good request started {GRACE_S:g} s after the attack, "
                  f"within {ctx.recover_s:g} s, succeeded, and RSS came back to at most "
                  f"before x {RSS_SLACK[0]:g} + {RSS_SLACK[1]:g} MB: {res['recovered_why']}")))
        for name, unit, value, target, note in res["checks"]:
            rows.append(benchlib.row(f"{a}.{name}", unit, value, "target",
                                     target.get("min", target.get("max")),
                                     higher_is_better="min" in target, target=target,
                                     note=note))
    return rows


def verdicts(rows):
    """{attack: [failed metric, ...]}, in order."""
    out = {}
    for r in rows:
        a, _, m = r["metric"].partition(".")
        out.setdefault(a, [])
        if benchlib.check_target(r) == "MISSED" or (r.get("target") and r["weft"] is None):
            out[a].append(m)
    return out


def table(results, rows):
    v = verdicts(rows)

    def n(x, nd=1):
        return "-" if x is None else (f"{x:.0f}" if abs(x) >= 100 else f"{x:.{nd}f}")

    head = ["attack", "http ok%", "p50", "p99 ms", "poetry ok%", "p50", "p99 ms",
            "RSS MB before/during/after", "recovered", "verdict", "what the attack found"]
    lines = []
    for res in results:
        h, p = res["h"], res["p"]
        rb, rd, ra = res["rss"]
        a = res["name"]
        verdict = "-" if a == "baseline" else ("PASS" if not v.get(a) else "FAIL")
        lines.append([a, n(h["ok_pct"]), n(h["p50"], 2), n(h["p99_all"], 2), n(p["ok_pct"]),
                      n(p["p50"], 2), n(p["p99_all"], 2), f"{mb(rb)}/{mb(rd)}/{mb(ra)}",
                      "yes" if res["recovered"] else "NO", verdict, res["summary"]])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    right = {1, 2, 3, 4, 5, 6}

    def fmt(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    fails = {a: m for a, m in v.items() if m}
    if fails:
        out.append("")
        out.append("FAIL rows:")
        for a, ms in fails.items():
            out.append(f"  {a}: {', '.join(ms)}")
    return "\n".join(out), sum(len(m) for m in fails.values())


# ---- main ----

def on_signal(signum, frame):
    raise Stopped(signal.Signals(signum).name)


async def run_all(ctx, only):
    results = []
    for name, fn in ATTACKS:
        if only and name not in only and name != "baseline":
            continue
        if name == "upstream_outage":
            await setup_outage(ctx)
        print(f"bench attack: {name}...", flush=True)
        res = await phase(ctx, name, fn)
        results.append(res)
        print(f"  {res['summary']}; good HTTP {res['h']['ok']}/{res['h']['n']}, poetry "
              f"{res['p']['ok']}/{res['p']['n']}; recovered: "
              f"{'yes' if res['recovered'] else 'NO'}", flush=True)
        if not ctx.proxy.alive():
            print(f"bench attack: the proxy died during {name} ({how_ended(ctx.proxy)}); "
                  f"starting another for what follows:\n"
                  f"{ctx.proxy.proc.stderr_tail(4)}", flush=True)
            ctx.restarts += 1
            benchlib.stop(ctx.proxy.proc)
            ctx.proxy = Proxy(ctx.bins, ctx.tmp, f"proxy-{ctx.restarts}", ctx.upstream.port,
                              ctx.proxy_args, ctx.xsrv.port)
            warm(ctx.proxy, ctx.good_poems)
    return results


async def setup_outage(ctx):
    """A proxy of its own, with a short TTL, before an upstream on a fixed
    port (which the outage takes down and brings back)."""
    loop = asyncio.get_running_loop()
    port = benchlib.free_port()
    up = await loop.run_in_executor(None, start_upstream, ctx.bins, ctx.tmp, "outage-upstream",
                                    port)
    extra = ctx.proxy_args + ["--ttl-ms", str(OUTAGE_TTL_MS)]
    proxy = await loop.run_in_executor(None, Proxy, ctx.bins, ctx.tmp, "outage-proxy", port,
                                       extra)
    await loop.run_in_executor(None, warm, proxy, ctx.good_poems)
    await asyncio.sleep(OUTAGE_TTL_MS / 1000 + 0.2)  # every entry stale
    ctx.proxy = proxy
    ctx.outage = {"upstream": up, "port": port,
                  "fails0": metrics(proxy.http).get("weft_upstream_failures_total", 0)}


def main():
    ap = argparse.ArgumentParser(
        description="hostile clients against weft's caching poetry proxy")
    ap.add_argument("bench", nargs="?", help="BUILD/tools/bench/attack/bench_attack (tools/"
                    "weft's way of naming the build directory); or give --bin-dir")
    ap.add_argument("outdir", nargs="?", help="same as --out-dir")
    ap.add_argument("--bin-dir", help="the build directory (e.g. build/release)")
    ap.add_argument("--out-dir", help="where attack.json goes (default: build/bench)")
    ap.add_argument("--quick", action="store_true",
                    help=f"{ATTACK_S[True]:g} s per attack instead of {ATTACK_S[False]:g}")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a row FAILs")
    ap.add_argument("--proxy-arg", action="append", default=[], metavar="ARG",
                    help="pass ARG (split like a shell word list) to every poetry_proxy started; "
                    "write --proxy-arg=--debug when ARG starts with a dash")
    ap.add_argument("--only", help="comma-separated attacks to run (with the baseline)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the proxies' and upstreams' output (say where)")
    args = ap.parse_intermixed_args()
    bin_dir = benchlib.bin_dir(ap, args)
    if bin_dir is None:
        return 2
    only = set(args.only.split(",")) if args.only else None
    if only and only - {n for n, _ in ATTACKS}:
        print(f"run.py: no attack named {', '.join(sorted(only - {n for n, _ in ATTACKS}))} "
              f"(have: {', '.join(n for n, _ in ATTACKS)})", file=sys.stderr)
        return 2
    outdir = args.out_dir or args.outdir or benchlib.DEFAULT_OUTDIR
    proxy_args = [w for a in args.proxy_arg for w in shlex.split(a)]

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = tempfile.mkdtemp(prefix="weft-bench-attack-")
    ctx = Ctx()
    ctx.good_procs = []
    ctx.slow = None
    ctx.restarts = 0
    started = time.monotonic()
    try:
        ctx.quick, ctx.tmp = args.quick, tmp
        ctx.attack_s, ctx.recover_s = ATTACK_S[args.quick], RECOVER_S[args.quick]
        ctx.bins = Bins(os.path.abspath(bin_dir))
        ctx.proxy_args = proxy_args
        fds = raise_fd_limit()
        # This process holds the crowd; the proxy (which inherits the limit)
        # holds as many, plus its own.
        ctx.fd_budget = max(0, fds - 256)
        ctx.upstream = start_upstream(ctx.bins, tmp, "upstream")
        ctx.xsrv = benchlib.Proc("transform-upstream", [ctx.bins.xform, "--port", "0"], tmp,
                                 ready_line=LISTENING)
        ctx.proxy = Proxy(ctx.bins, tmp, "proxy", ctx.upstream.port, proxy_args, ctx.xsrv.port)
        poems = poem_names()
        if len(poems) < 3 or "ozymandias" not in poems:
            raise benchlib.BenchError(f"{POEMS}: want ozymandias and two more poems")
        # cold: never asked before the outage is over; hammer: asked during it only
        ctx.cold_poem, ctx.hammer_poem = [p for p in poems if p != "ozymandias"][-2:]
        ctx.good_poems = [p for p in poems if p not in (ctx.cold_poem, ctx.hammer_poem)]
        ctx.poetry_poem = "ozymandias"  # the proxy's poetry_default
        ctx.poetry_bytes = warm(ctx.proxy, ctx.good_poems)
        m = metrics(ctx.proxy.http)
        ctx.conn_limit, ctx.conn_limit_src = limit(
            m, ("weft_connections_max", "weft_max_connections", "weft_connections_limit"),
            proxy_args, "--max-connections", "max_connections")
        ctx.max_body, ctx.max_body_src = limit(
            m, ("weft_max_body_bytes", "weft_body_max_bytes"), proxy_args, "--max-body",
            "max_body")
        print(f"bench attack: proxy pid {ctx.proxy.pid}, connection limit {ctx.conn_limit} "
              f"({ctx.conn_limit_src}), body limit {ctx.max_body} ({ctx.max_body_src}), open "
              f"files limit {fds}; {os.cpu_count()} cores shared with the attackers (load "
              f"average now: {open('/proc/loadavg').read().split()[0]})", flush=True)
        results = asyncio.run(run_all(ctx, only))
        rows = build_rows(results, ctx)
    except benchlib.BenchError as e:
        print(f"bench attack: FAILED: {e}", file=sys.stderr)
        return 1
    except (Stopped, KeyboardInterrupt) as e:
        print(f"bench attack: stopped by {e or 'SIGINT'}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in ctx.good_procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        benchlib.stop_all()
        if args.keep_logs:
            print(f"bench attack: the processes' output is in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    title = benchlib.title("bench attack: hostile clients against weft's caching poetry proxy, "
                           "a good client fetching meanwhile", args.quick)
    mi = benchlib.machine()
    mi["connection_limit"] = ctx.conn_limit
    print()
    print(title)
    print(benchlib.format_machine(mi))
    print(f"{len(results)} phases in {elapsed:.0f} s; each attack {ctx.attack_s:g} s (plus its "
          f"connecting), recovery {ctx.recover_s:g} s; good p99 bound {GOOD_P99_MAX_MS:g} ms; "
          f"proxy args: {' '.join(proxy_args) or '(none)'}")
    print()
    text, nfail = table(results, rows)
    print(text)
    try:
        path = benchlib.write_json("attack", rows, outdir, mi)
    except OSError as e:
        print(f"bench attack: FAILED to write results: {e}", file=sys.stderr)
        return 1
    print()
    print(f"{nfail} row(s) FAIL" if nfail else "every row PASS")
    print(f"wrote {path}")
    if benchlib.NO_SIGTERM:
        print(f"bench attack: WARNING: did not exit on SIGTERM within "
              f"{benchlib.STOP_TIMEOUT:.0f} s (killed): {', '.join(benchlib.NO_SIGTERM)}",
              file=sys.stderr)
    return 1 if (args.strict and nfail) else 0


if __name__ == "__main__":
    sys.exit(main())
