#!/usr/bin/python3
"""bench soak: weft's caching poetry proxy held at half its peak for minutes.

usage: /usr/bin/python3 tools/bench/soak/run.py BUILD/tools/bench/soak/bench_soak [OUTDIR]
                                                [--minutes M] [--quick] [--trace] [--cluster]

(tools/weft bench soak [--minutes M] [--quick] [--trace] runs it that way: the build
directory is found from the path of the bench_soak target.) BUILD holds
examples/poetry_proxy, tools/poetry/poetry-server and
tools/bench/soak/soak_load.

1. A healthy upstream poetry-server and the release proxy in front of it,
   with a cache TTL of TTL_MS so that every poem is fetched again every few
   seconds all along (the fetcher and the cache's refresh are soaked too,
   not only cache hits); every poem asked once to warm the cache.
2. The peak: soak_load --peak (closed loop, as wrk does) on all the poems
   in turn, RAMP_SECONDS at each of RAMP_CONNS connections; the best
   requests/s is the peak.
3. The soak: soak_load --rate (open loop: a request is due every 1/rate s
   whether or not the proxy kept up, and its latency counts from when it
   was due) at half the peak, on SOAK_CONNS connections, for --minutes
   (default 10; --quick: 0.5, reported every 10 s instead of every
   minute). Every second the proxy's resident memory (VmRSS) is read.

Reported: requests due, sent and answered, errors by kind (soak_load's
kinds: connect, closed, timeout, status_5xx, status_other, malformed,
unanswered, not_sent), p50/p99 per minute, and RSS at the start of the
soak (after the warm-up and the peak ramp) and at its end, whose growth
must stay under 5%. Writes OUTDIR/soak.json (default build/bench) in the
other benchmarks' format. Exit status: 0 when everything ran, even if a
target was missed (the table says MISSED); 1 when something failed to run;
2 on bad usage. Every process started is stopped, whatever happens.

With --trace the proxy runs as a flight recorder always on would: every
request traced (sampling 1) into a bounded ring on disk (ring-size
RING_SIZE); reported besides: the events recorded and dropped (target: none
dropped), the ring's size on disk at the end (target: within its bound and
one segment), and the request rate the proxy could still reach (the peak,
measured with tracing on). Writes soak_trace.json instead.

With --cluster the proxy is three weft-nodes on loopback, as a cluster file
spreads it (front: listener and renderer; cache; fetch), each with its own
flight recorder under --trace; the front's RSS is watched. Writes
soak_cluster[_trace].json.

Not in `tools/weft bench`'s default list: it takes minutes.
"""

import argparse
import json
import os
import re
import select
import signal
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

POEMS_DIR = os.path.join(ROOT, "examples", "poems")
POEMS = sorted(f[:-4] for f in os.listdir(POEMS_DIR) if f.endswith(".txt"))
TTL_MS = 5000
RAMP_CONNS = (4, 16, 64)
RAMP_SECONDS = 3
SOAK_CONNS = 64
TIMEOUT_MS = 5000
RSS_GROWTH_MAX_PCT = 5.0
ERROR_KINDS = ("connect", "closed", "timeout", "status_5xx", "status_other", "malformed",
               "unanswered", "not_sent")


class Stopped(Exception):
    """run.py itself got SIGTERM/SIGINT: clean up and leave."""


def on_signal(signum, frame):
    raise Stopped(signal.Signals(signum).name)


class Bins:
    def __init__(self, bin_dir):
        self.proxy = os.path.join(bin_dir, "examples", "poetry_proxy")
        self.server = os.path.join(bin_dir, "tools", "poetry", "poetry-server")
        self.load = os.path.join(bin_dir, "tools", "bench", "soak", "soak_load")
        self.node = os.path.join(bin_dir, "tools", "weft-node")
        for p in (self.proxy, self.server, self.load, self.node):
            if not os.access(p, os.X_OK):
                raise benchlib.BenchError(
                    f"{p} is missing: build it first (ninja -C {bin_dir} bench_soak)")


def rss_kb(pid):
    """The process's resident set (VmRSS) in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def paths():
    return ",".join(f"/poems/{p}" for p in POEMS)


def run_load(bins, port, args, timeout):
    """soak_load with args; its JSON lines."""
    cmd = [bins.load, "--port", str(port), "--paths", paths(), "--timeout-ms",
           str(TIMEOUT_MS)] + args
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.SubprocessError as e:
        raise benchlib.BenchError(f"soak_load: {e}") from e
    if p.returncode != 0:
        raise benchlib.BenchError(f"soak_load exited with {p.returncode}: {' '.join(cmd)}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def ramp(bins, port, quick):
    """The closed-loop ramp: [(conns, result)], and the best requests/s."""
    seconds = 1 if quick else RAMP_SECONDS
    out = []
    for c in RAMP_CONNS:
        r = run_load(bins, port, ["--peak", "--conns", str(c), "--seconds", str(seconds)],
                     timeout=seconds + 60)[-1]
        print(f"bench soak: peak ramp, {c} connections: {r['rps']:.0f} req/s, p99 "
              f"{r['p99_ms']:.2f} ms, {r['errors_total']} errors", flush=True)
        out.append((c, r))
    return out, max(r["rps"] for _, r in out)


def soak(bins, port, proxy_pid, rate, seconds, interval):
    """The open-loop run: (interval lines, final line, RSS samples [(t, kB)])."""
    cmd = [bins.load, "--port", str(port), "--paths", paths(), "--timeout-ms", str(TIMEOUT_MS),
           "--rate", f"{rate:.1f}", "--conns", str(SOAK_CONNS), "--seconds", str(seconds),
           "--interval", str(interval)]
    rss = [(0.0, rss_kb(proxy_pid))]
    lines = []
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        fd = p.stdout.fileno()
        buf = b""
        deadline = t0 + seconds + TIMEOUT_MS / 1000 + 60
        eof = False
        while not eof:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                eof = not chunk
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        lines.append(json.loads(line))
                        show(lines[-1], rss[-1][1])
            now = time.monotonic()
            if now > deadline:
                raise benchlib.BenchError("soak_load did not finish in time")
            if now - t0 < seconds and now - t0 - rss[-1][0] >= 1.0:
                rss.append((now - t0, rss_kb(proxy_pid)))
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0:
        raise benchlib.BenchError(f"soak_load exited with {p.returncode}: {' '.join(cmd)}")
    final = [l for l in lines if l.get("final")]
    if not final:
        raise benchlib.BenchError("soak_load printed no summary")
    return [l for l in lines if not l.get("final")], final[0], rss


def show(l, rss):
    if l.get("final"):
        return
    errs = {k: v for k, v in l["errors"].items() if v}
    print(f"bench soak: {l['t_s']:6.0f} s: {l['answered']} answered ({l['rps']:.0f}/s), p50 "
          f"{l['p50_ms']:.2f} ms, p99 {l['p99_ms']:.2f} ms, errors {errs or 0}, RSS "
          f"{rss / 1024:.1f} MiB", flush=True)


class Node:
    """weft-node NAME on loopback. Its standard input is a FIFO opened for
    reading and writing (its end would shut the node down), through which
    run.py asks for its trace counters."""

    def __init__(self, bins, tmp, conf, name, trace_args):
        self.fifo = os.path.join(tmp, f"{name}.in")
        os.mkfifo(self.fifo)
        cmd = ["sh", "-c", 'exec "$@" <>"$0"', self.fifo, bins.node, "--config", conf,
               "--name", name] + trace_args
        self.proc = benchlib.Proc(f"node-{name}", cmd, tmp, ready_line=rf"ready {name}")
        self.p = self.proc.p

    def trace_counts(self):
        """(events, lost) as its trace command says them."""
        before = self.proc.stdout().count("\ntrace ")
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"trace\n")
        finally:
            os.close(fd)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = self.proc.stdout()
            if out.count("\ntrace ") > before:
                line = out[out.rindex("\ntrace ") + 1:].splitlines()[0]
                got = dict(re.findall(r"(\w+)=(\d+)", line))
                return int(got["events"]), int(got["lost"])
            time.sleep(0.05)
        raise benchlib.BenchError(f"weft-node {self.proc.name} did not answer 'trace'")


def start_cluster(bins, tmp, up, port, pport, trace):
    """The proxy as three weft-nodes on loopback: listener and renderer on
    front, the cache, the fetcher; each with its own flight recorder when
    traced. Returns the nodes, front first."""
    ports = {n: benchlib.free_port() for n in ("front", "cache", "fetch")}
    conf = os.path.join(tmp, "cluster.conf")
    with open(conf, "w") as f:
        f.write(f"""# bench soak --cluster: the caching poetry proxy as three nodes
secret = weft-bench-soak
node front = tcp://127.0.0.1:{ports['front']}
node cache = tcp://127.0.0.1:{ports['cache']}
node fetch = tcp://127.0.0.1:{ports['fetch']}
actors front = listener renderer
actors cache = cache
actors fetch = fetcher
listener.http = 127.0.0.1:{port}
listener.poetry = 127.0.0.1:{pport}
cache.ttl-ms = {TTL_MS}
fetcher.upstream = poetry://127.0.0.1:{up.port}
fetcher.send-name = yes
""")
    nodes = []
    for name in ("front", "cache", "fetch"):
        ring = os.path.join(tmp, f"ring-{name}")
        args = ["--trace", f"ring={ring};ring-size={RING_SIZE};sample=1"] if trace else []
        nodes.append(Node(bins, tmp, conf, name, args))
        nodes[-1].ring = ring
    return nodes


def warm_up(port):
    """Every poem asked once; a cluster's nodes may still be connecting."""
    deadline = time.monotonic() + 15
    for p in POEMS:
        while True:
            status, _, _, _ = benchlib.http_get(port, f"/poems/{p}")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise benchlib.BenchError(f"warm-up: /poems/{p} answered {status}")
            time.sleep(0.2)


def served_count(upstream):
    return upstream.stderr().count("served ")


def settle(seconds):
    """When, into the soak, its RSS is taken as the start: the load's own
    buffers are allocated by then."""
    return min(10.0, seconds / 3)


def rss_points(rss, seconds):
    """(idle before the soak, start, end, every sample under load) in KiB."""
    idle = rss[0][1]
    loaded = [(t, kb) for t, kb in rss[1:] if kb is not None]
    if not loaded or idle is None:
        raise benchlib.BenchError("the proxy's RSS could not be read")
    start = next((kb for t, kb in loaded if t >= settle(seconds)), loaded[0][1])
    return idle, start, loaded[-1][1], [kb for _, kb in loaded]


def build_rows(ramp_res, peak, rate, seconds, interval, windows, final, rss, fetches, quick):
    caveat = benchlib.caveat(quick)
    rows = []
    ramp_desc = "; ".join(f"{c} conns: {r['rps']:.0f} req/s (p99 {r['p99_ms']:.2f} ms)"
                          for c, r in ramp_res)
    rows.append(benchlib.row(
        "peak_rps", "req/s", peak, None, None, higher_is_better=True,
        note=f"{caveat}soak_load --peak (closed loop, like wrk) over the {len(POEMS)} poems in "
             f"turn, {1 if quick else RAMP_SECONDS} s at each step of a ramp: {ramp_desc}. The "
             f"load generator and the proxy share this machine's {os.cpu_count()} cores."))
    span = "minute" if interval == 60 else f"{interval} s"
    rows.append(benchlib.row(
        "soak_rate", "req/s", final["rps"], "offered (half the peak)", rate,
        higher_is_better=True,
        note=f"soak_load --rate {rate:.0f} on {SOAK_CONNS} keep-alive connections for "
             f"{seconds / 60:g} min: open loop, a request due every 1/rate s whatever the proxy "
             f"does, its latency counted from when it was due. Proxy cache TTL {TTL_MS} ms: "
             f"{fetches} upstream fetches during the soak."))
    rows.append(benchlib.row("soak_requests", "requests", final["answered"], "due",
                             final["due"], higher_is_better=True,
                             target={"min": final["due"]},
                             note="Every request due must be sent and answered (answered "
                                  "counts 2xx and 5xx alike; errors below)."))
    rows.append(benchlib.row("soak_errors", "requests", final["errors_total"], "target", 0,
                             target={"max": 0}))
    for k in ERROR_KINDS:
        rows.append(benchlib.row(f"soak_errors_{k}", "requests", final["errors"].get(k, 0), None,
                                 None))
    for i, w in enumerate(windows, 1):
        rows.append(benchlib.row(f"p50_ms_{span.replace(' ', '')}_{i}", "ms", w["p50_ms"], None,
                                 None))
        rows.append(benchlib.row(f"p99_ms_{span.replace(' ', '')}_{i}", "ms", w["p99_ms"], None,
                                 None,
                                 note=None if i > 1 else
                                 f"Per {span} of the soak, in order: its answers' p50 and p99 "
                                 f"(1% buckets), from when each request was due."))
    rows.append(benchlib.row("soak_p50_ms", "ms", final["p50_ms"], None, None))
    rows.append(benchlib.row("soak_p99_ms", "ms", final["p99_ms"], None, None))
    rows.append(benchlib.row("soak_max_ms", "ms", final["max_ms"], None, None))
    idle, start, end, kbs = rss_points(rss, seconds)
    growth = (end - start) / start * 100.0
    rows.append(benchlib.row("rss_idle", "MiB", round(idle / 1024, 2), None, None,
                             note="The proxy's VmRSS just before the soak, idle after the "
                                  "warm-up and the peak ramp."))
    rows.append(benchlib.row("rss_start", "MiB", round(start / 1024, 2), None, None,
                             note=f"The proxy's VmRSS {settle(seconds):g} s into the soak, once "
                                  f"its {SOAK_CONNS} connections are open and busy (what the "
                                  f"load itself needs is not growth), and at its end."))
    rows.append(benchlib.row("rss_end", "MiB", round(end / 1024, 2), None, None))
    rows.append(benchlib.row("rss_max", "MiB", round(max(kbs) / 1024, 2), None, None))
    rows.append(benchlib.row(
        "rss_growth", "%", round(growth, 2), "target", RSS_GROWTH_MAX_PCT,
        target={"max": RSS_GROWTH_MAX_PCT},
        note=f"(end - start) / start, from {len(kbs)} samples, one a second."))
    return rows, start, end, growth, idle


RING_SIZE_BYTES = 256 << 20
RING_SIZE = "256M"


def trace_rows(t, peak):
    total = t["events"] + t["lost"]
    seg = RING_SIZE_BYTES // 8  # recorder.c: a segment is an eighth of the bound
    return [
        benchlib.row("trace_events", "events", t["events"], None, None,
                     note="Events the flight recorder kept during the soak (sampling 1)."),
        benchlib.row("trace_events_lost", "events", t["lost"], "target", 0, target={"max": 0},
                     note=f"Events dropped during the soak ({t['lost']:,} of {total:,}; "
                          f"GET /trace's counters)."),
        benchlib.row("trace_ring_mib", "MiB", round(t["ring"] / 2**20, 1), "target",
                     round((RING_SIZE_BYTES + seg) / 2**20, 1),
                     target={"max": round((RING_SIZE_BYTES + seg) / 2**20, 1)},
                     note=f"The ring on disk at the end (the largest of {t['nodes']} node(s)), "
                          f"dumps included ({t['dumps']} dumps; a dump links the ring's "
                          f"segments, counted once): within ring-size={RING_SIZE} and the "
                          f"segment being written."),
        benchlib.row("trace_peak_rps", "req/s", round(peak), None, None,
                     note="The peak measured before the soak, with tracing on."),
    ]


def main():
    ap = argparse.ArgumentParser(description="weft's caching proxy at half its peak for minutes")
    ap.add_argument("bench", help="BUILD/tools/bench/soak/bench_soak")
    ap.add_argument("outdir", nargs="?", default=benchlib.DEFAULT_OUTDIR)
    ap.add_argument("--minutes", type=float, default=None, help="how long to soak (default 10)")
    ap.add_argument("--quick", action="store_true", help="0.5 min, reported every 10 s")
    ap.add_argument("--trace", action="store_true",
                    help="the flight recorder on, every request traced")
    ap.add_argument("--cluster", action="store_true",
                    help="the proxy as three weft-nodes on loopback (front, cache, fetch)")
    args = ap.parse_intermixed_args()
    minutes = args.minutes if args.minutes is not None else (0.5 if args.quick else 10)
    if minutes <= 0:
        ap.error("--minutes must be positive")
    seconds = minutes * 60
    interval = 10 if args.quick or minutes < 2 else 60
    bin_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(args.bench)))))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = tempfile.mkdtemp(prefix="weft-bench-soak-")
    try:
        bins = Bins(bin_dir)
        up = benchlib.Proc("upstream", [bins.server, "--port", "0", "--poems", POEMS_DIR], tmp,
                           ready_line=r"listening on 127\.0\.0\.1:(\d+)")
        port, pport = benchlib.free_port(), benchlib.free_port()
        ring = os.path.join(tmp, "ring")
        trace_args = ["--trace", f"ring={ring};ring-size={RING_SIZE};sample=1"] if args.trace else []
        if args.cluster:
            nodes = start_cluster(bins, tmp, up, port, pport, args.trace)
            proxy = nodes[0]  # the front: the listener, whose RSS is watched
        else:
            proxy = benchlib.Proc(
                "proxy", [bins.proxy, "--send-name", "--upstream", f"poetry://127.0.0.1:{up.port}",
                          "--http", f"127.0.0.1:{port}", "--poetry", f"127.0.0.1:{pport}",
                          "--ttl-ms", str(TTL_MS)] + trace_args, tmp,
                ready_line=r"poetry proxy: http://", ready_port=port)
            proxy.ring = ring
            nodes = [proxy]
        warm_up(port)
        print(f"bench soak: the proxy and the load generator share this machine's "
              f"{os.cpu_count()} cores (load average now: "
              f"{open('/proc/loadavg').read().split()[0]})", flush=True)
        ramp_res, peak = ramp(bins, port, args.quick)
        rate = peak / 2
        print(f"bench soak: peak {peak:.0f} req/s; soaking at {rate:.0f} req/s for "
              f"{minutes:g} min", flush=True)
        fetched_before = served_count(up)
        def counts():
            got = [n.trace_counts() if args.cluster else benchlib.trace_counts(port)
                   for n in nodes]
            return sum(e for e, _ in got), sum(lost for _, lost in got)

        traced0 = counts() if args.trace else None
        windows, final, rss = soak(bins, port, proxy.p.pid, rate, seconds, interval)
        fetches = served_count(up) - fetched_before
        traced = None
        if args.trace:
            time.sleep(0.1)  # the writers' last round
            ev, lost = counts()
            traced = {"events": ev - traced0[0], "lost": lost - traced0[1],
                      "ring": max(benchlib.du(n.ring) for n in nodes),
                      "dumps": sum(len(os.listdir(os.path.join(n.ring, "dumps"))) for n in nodes),
                      "nodes": len(nodes)}
        for n in nodes:
            if n.p.poll() is not None:
                raise benchlib.BenchError(f"{'a node' if args.cluster else 'the proxy'} exited "
                                          f"during the soak")
        benchlib.stop(*[n.proc if args.cluster else n for n in nodes], up)
        rows, start, end, growth, idle = build_rows(ramp_res, peak, rate, seconds, interval,
                                                    windows, final, rss, fetches, args.quick)
        if traced is not None:
            rows += trace_rows(traced, peak)
    except benchlib.BenchError as e:
        print(f"bench soak: FAILED: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        print(f"bench soak: stopped by {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        benchlib.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    span = "minute" if interval == 60 else f"{interval} s"
    print()
    print(f"{span:>8}  {'answered':>9}  {'req/s':>7}  {'errors':>6}  {'p50 ms':>7}  {'p99 ms':>7}"
          f"  {'RSS MiB':>7}")
    for i, w in enumerate(windows, 1):
        kb = [k for t, k in rss if k is not None and t <= w["t_s"]][-1]
        print(f"{i:>8}  {w['answered']:>9}  {w['rps']:>7.0f}  {w['errors_total']:>6}  "
              f"{w['p50_ms']:>7.3f}  {w['p99_ms']:>7.3f}  {kb / 1024:>7.1f}")
    errs = ", ".join(f"{k} {final['errors'].get(k, 0)}" for k in ERROR_KINDS)
    print(f"total: {final['due']} due, {final['sent']} sent, {final['answered']} answered "
          f"({final['ok']} 2xx); errors: {errs}")
    verdict = "ok" if growth < RSS_GROWTH_MAX_PCT else "MISSED"
    print(f"RSS: {idle / 1024:.1f} MiB idle before, {start / 1024:.1f} MiB {settle(seconds):g} s "
          f"into the soak, {end / 1024:.1f} MiB at the end: "
          f"{growth:+.2f}% (must stay under {RSS_GROWTH_MAX_PCT:g}%): {verdict}")
    print()
    m = benchlib.machine()
    name = "soak" + ("_cluster" if args.cluster else "") + ("_trace" if args.trace else "")
    if benchlib.finish(name, rows, args.outdir, m, benchlib.title(
            f"bench soak: weft's caching poetry proxy at half its peak for {minutes:g} min",
            args.quick)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
