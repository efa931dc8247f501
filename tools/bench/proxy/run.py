#!/usr/bin/python3
"""bench proxy: weft's caching poetry proxy against nginx, Twisted and a
fixed-body libuv server, with wrk on loopback.

usage: /usr/bin/python3 tools/bench/proxy/run.py --bin-dir BUILD [--out-dir DIR] [--quick]
       /usr/bin/python3 tools/bench/proxy/run.py BUILD/tools/bench/proxy/bench_proxy [OUTDIR] [--quick]

(the second form is how tools/weft runs every benchmark: the build directory
is found from the path of the bench_proxy target.)

BUILD holds examples/poetry_proxy, tools/poetry/poetry-server and
tools/bench/proxy/bench_ceiling. Needs wrk, nginx and python3-twisted.

Cache hits. Each contender gets its own upstream poetry-server and is warmed
with one request for the poem (a MISS), then wrk -t1 -c32 --latency asks
for that poem again and again (all HITs; the upstream's log must show that
one fetch only). 10 rounds; in each, one 2 s run of weft, nginx and the
ceiling, the order reversed every other round (Twisted joins the first 3):
requests/s and p99 are medians of the runs, and each ratio is the median of
the per-round ratios, printed with its min and max (nginx's own rate moves
widely between runs here; a ratio of runs seconds apart moves far less):

    weft      examples/poetry_proxy (listener, cache, fetcher, renderer actors)
    nginx     1 worker, proxy_cache + proxy_cache_lock, the same poem from the
              same upstream program in --http mode (nginx cannot speak the
              raw poetry protocol), configured by nginx.conf.in
    twisted   twisted_proxy.py, a caching proxy in the style of the Twisted
              tutorial (Deferreds coalescing concurrent misses)
    ceiling   bench_ceiling: libuv answering every request with the same
              fixed body, as long as weft's page; no parsing, no cache, no
              rendering: what this machine can serve with wrk beside it

Cold burst. A fresh weft and a fresh nginx (empty cache), each against a
fresh SLOW upstream (poetry-server --slow: the poem takes 1.25 s to arrive),
get 1,000 concurrent requests for the uncached poem (burst.py: all
connections opened first, then every request sent at once). Reported: p99
of the burst and how many times the upstream served the poem (its log says
"served NAME" once per fetch). nginx's waiters poll the cache lock every
500 ms; weft's are woken by the fetch itself. Median over 3 bursts.

The issue's targets: cache-hit requests/s >= 1.3x nginx's (1 worker) with a
lower p99, >= 60% of the ceiling's, and >= 5x Twisted's; exactly 1 upstream fetch for the burst; a burst
p99 far below nginx's, read here as: lower, and with at most half of nginx's
wait beyond the upstream's own time for the fetch (p99 minus fetch time).

Everything runs on this machine: wrk and the server under test share its
cores, which the output says. Writes OUTDIR/proxy.json (default
build/bench). Exit status: 0 when everything ran, even if a target was
missed (the table says MISSED); 1 when something failed to run; 2 on bad
usage. Every process started is stopped, whatever happens.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

# Twisted is Debian's python3-twisted, seen only by the system interpreter.
TWISTED_PYTHON = "/usr/bin/python3"
POEMS = os.path.join(ROOT, "examples", "poems")
HIT_POEM = "ozymandias"
COLD_POEM = "the_tyger"
WRK_THREADS, WRK_CONNS = 1, 32
# Cache hits: rounds of one wrk run each for weft, nginx and the ceiling.
# Short runs and many rounds: nginx's own rate moves widely from one run to
# the next here, and a ratio of samples taken seconds apart moves less.
HIT_SECONDS, HIT_ROUNDS = 2, 10
BURST_N = 1000
# The slow upstream takes 1.25 s per fetch: half-way between two of nginx's
# 500 ms lock polls, so its waiters lose the average 250 ms (at 1.0 s they
# would lose ~0 or ~500 ms, depending on a few ms of jitter).
SLOW_DELAY_MS, SLOW_DELAYS = 125, 10
NGINX_LOCK_POLL_MS = 500  # nginx's proxy_cache_lock waiters re-check on this timer (fixed)

# Targets (the words, as ratios).
NGINX_RPS_MIN_RATIO = 1.3    # issue 12: cache hits at least 1.3x nginx's...
NGINX_P99_MIN_RATIO = 1.0    # ...with a lower p99...
CEILING_RPS_MIN_RATIO = 0.6  # ...and at least 60% of the fixed-body ceiling
TWISTED_RPS_MIN_RATIO = 5.0
BURST_P99_MIN_RATIO = 1.0   # the burst's p99 below nginx's...
BURST_WAIT_MIN_RATIO = 2.0  # ...and "far below": at most half its wait beyond the fetch


class Stopped(Exception):
    """run.py itself got SIGTERM/SIGINT: clean up and leave."""


class Bins:
    def __init__(self, bin_dir):
        self.proxy = os.path.join(bin_dir, "examples", "poetry_proxy")
        self.server = os.path.join(bin_dir, "tools", "poetry", "poetry-server")
        self.ceiling = os.path.join(bin_dir, "tools", "bench", "proxy", "bench_ceiling")
        for p in (self.proxy, self.server, self.ceiling):
            if not os.access(p, os.X_OK):
                raise benchlib.BenchError(
                    f"{p} is missing: build it first (ninja -C {bin_dir} bench_proxy)")
        self.wrk = shutil.which("wrk")
        self.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access(
            "/usr/sbin/nginx", os.X_OK) else None)
        if not self.wrk:
            raise benchlib.BenchError("wrk is not installed (apt-get install wrk)")
        if not self.nginx:
            raise benchlib.BenchError("nginx is not installed (apt-get install nginx-light)")


LISTENING = r"listening on 127\.0\.0\.1:(\d+)"


def start_upstream(bins, tmp, name, http=False, slow_chunk=None):
    cmd = [bins.server, "--port", "0", "--poems", POEMS]
    if http:
        cmd.append("--http")
    if slow_chunk:
        cmd += ["--slow", "--delay-ms", str(SLOW_DELAY_MS), "--chunk", str(slow_chunk)]
    return benchlib.Proc(name, cmd, tmp, ready_line=LISTENING)


def start_weft(bins, tmp, name, upstream, extra=()):
    """weft's proxy in front of upstream; extra: more arguments (--trace)."""
    port, pport = benchlib.free_port(), benchlib.free_port()
    cmd = [bins.proxy, "--send-name", "--upstream", f"poetry://127.0.0.1:{upstream.port}",
           "--http", f"127.0.0.1:{port}", "--poetry", f"127.0.0.1:{pport}", *extra]
    return benchlib.Proc(name, cmd, tmp, ready_line=r"poetry proxy: http://", ready_port=port)


def start_nginx(bins, tmp, name, upstream):
    prefix = os.path.join(tmp, name)
    os.makedirs(prefix)
    port = benchlib.free_port()
    with open(os.path.join(HERE, "nginx.conf.in")) as f:
        conf = f.read()
    conf = (conf.replace("@PREFIX@", prefix).replace("@PORT@", str(port))
            .replace("@UPSTREAM_PORT@", str(upstream.port)))
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    cmd = [bins.nginx, "-p", prefix + "/", "-c", path, "-e", os.path.join(prefix, "error.log")]
    return benchlib.Proc(name, cmd, tmp, ready_port=port)


def start_twisted(tmp, name, upstream):
    cmd = [TWISTED_PYTHON, os.path.join(HERE, "twisted_proxy.py"),
           "--upstream", f"127.0.0.1:{upstream.port}", "--port", "0"]
    return benchlib.Proc(name, cmd, tmp, ready_line=LISTENING)


def start_ceiling(bins, tmp, body_bytes):
    cmd = [bins.ceiling, "--port", "0", "--body-bytes", str(body_bytes)]
    return benchlib.Proc("ceiling", cmd, tmp, ready_line=LISTENING)


def served(upstream, poem):
    """How many times the upstream sent the whole poem, and how long each took."""
    times = [int(m.group(1)) for m in
             re.finditer(rf"served {re.escape(poem)} \(\d+ bytes\) in (\d+) ms", upstream.stderr())]
    return len(times), times


# ---- wrk ----

def wrk(bins, port, seconds):
    """wrk on the poem every cache-hit run asks for."""
    return benchlib.wrk(bins.wrk, f"http://127.0.0.1:{port}/poems/{HIT_POEM}", seconds,
                        WRK_THREADS, WRK_CONNS)


# ---- the two parts ----

def hits(bins, tmp, quick):
    """The cache-hit runs: {contender: {rps, p99_ms, samples...}} plus facts.

    weft, nginx and the ceiling take turns in every round (the order
    reversed every other round, so drift favours none), so each round gives
    one weft/nginx and one weft/ceiling ratio from samples taken seconds
    apart: the machine's load moves both alike. Twisted, far behind and
    slow to measure, runs in the first rounds only."""
    seconds, rounds, twisted_rounds = (1, 1, 1) if quick else (HIT_SECONDS, HIT_ROUNDS, 3)
    up = {n: start_upstream(bins, tmp, f"up-{n}", http=(n == "nginx"))
          for n in ("weft", "nginx", "twisted")}
    procs = {"weft": start_weft(bins, tmp, "weft", up["weft"]),
             "nginx": start_nginx(bins, tmp, "nginx", up["nginx"]),
             "twisted": start_twisted(tmp, "twisted", up["twisted"])}
    facts = {"response_bytes": {}, "body_bytes": {}, "upstream_fetches": {}}
    path = f"/poems/{HIT_POEM}"
    for n, p in procs.items():
        status, h, body, total = benchlib.http_get(p.port, path)  # the warm-up: a MISS
        if status != 200:
            raise benchlib.BenchError(f"{n}: GET {path} answered {status} (warm-up)\n"
                                      f"{p.stderr_tail()}")
        status, h, body, total = benchlib.http_get(p.port, path)
        if status != 200 or h.get("x-cache") != "HIT":
            raise benchlib.BenchError(f"{n}: the second GET {path} is not a cache hit "
                                      f"(status {status}, X-Cache {h.get('x-cache')})")
        facts["response_bytes"][n], facts["body_bytes"][n] = total, len(body)
    procs["ceiling"] = start_ceiling(bins, tmp, facts["body_bytes"]["weft"])
    status, h, body, total = benchlib.http_get(procs["ceiling"].port, path)
    facts["response_bytes"]["ceiling"], facts["body_bytes"]["ceiling"] = total, len(body)

    order = ["weft", "nginx", "twisted", "ceiling"]
    samples = {n: [] for n in order}
    rounds_of = {n: [] for n in order}  # the round of each sample, to pair them
    if not quick:  # one untimed second each: caches, allocators, CPython
        for n in order:
            wrk(bins, procs[n].port, 1)
    for r in range(rounds):
        turn = ["weft", "nginx", "ceiling"] + (["twisted"] if r < twisted_rounds else [])
        for n in (turn if r % 2 == 0 else turn[::-1]):
            s = wrk(bins, procs[n].port, seconds)
            bad = s["non2xx"] / max(1, s["requests"])
            if bad > 0.01:
                raise benchlib.BenchError(f"{n}: {s['non2xx']} of {s['requests']} answers "
                                          f"were not 2xx\n{procs[n].stderr_tail()}")
            samples[n].append(s)
            rounds_of[n].append(r)
        if not quick:
            w, g = samples["weft"][-1], samples["nginx"][-1]
            print(f"bench proxy: round {r + 1}/{rounds}: weft {w['rps']:.0f} req/s (p99 "
                  f"{w['p99_ms']:.2f} ms), nginx {g['rps']:.0f} (p99 {g['p99_ms']:.2f} ms), "
                  f"ratio {w['rps'] / g['rps']:.2f}", flush=True)
    for n in ("weft", "nginx", "twisted"):
        facts["upstream_fetches"][n] = served(up[n], HIT_POEM)[0]
    benchlib.stop(*procs.values())
    benchlib.stop(*up.values())
    res = {}
    for n in order:
        ss = samples[n]
        res[n] = {"rps": statistics.median(s["rps"] for s in ss),
                  "p99_ms": statistics.median(s["p99_ms"] for s in ss),
                  "rps_samples": [s["rps"] for s in ss],
                  "p99_samples": [s["p99_ms"] for s in ss],
                  "non2xx": sum(s["non2xx"] for s in ss),
                  "socket_errors": [s["socket_errors"] for s in ss if s["socket_errors"]]}
    # Per-round ratios, "how many times better weft is" as in benchlib.
    weft = dict(zip(rounds_of["weft"], samples["weft"]))
    for n in ("nginx", "twisted", "ceiling"):
        pairs = [(weft[r], s) for r, s in zip(rounds_of[n], samples[n]) if r in weft]
        res[n]["rps_ratios"] = [w["rps"] / s["rps"] for w, s in pairs if s["rps"] > 0]
        res[n]["p99_ratios"] = [s["p99_ms"] / w["p99_ms"] for w, s in pairs if w["p99_ms"] > 0]
    return res, facts, seconds, rounds


def slow_chunks():
    """--chunk for the raw and the HTTP slow upstreams, such that both wait
    SLOW_DELAYS times SLOW_DELAY_MS per fetch: in --http mode the response
    head goes out first, as a write of its own."""
    size = os.path.getsize(os.path.join(POEMS, COLD_POEM + ".txt"))
    raw = -(-size // (SLOW_DELAYS + 1))
    http = -(-size // SLOW_DELAYS)
    return raw, http


def burst_once(bins, tmp, n, r):
    raw_chunk, http_chunk = slow_chunks()
    up = start_upstream(bins, tmp, f"slow-{n}-{r}", http=(n == "nginx"),
                        slow_chunk=http_chunk if n == "nginx" else raw_chunk)
    try:
        proxy = (start_nginx if n == "nginx" else start_weft)(bins, tmp, f"{n}-cold-{r}", up)
        try:
            cmd = [sys.executable, os.path.join(HERE, "burst.py"), "127.0.0.1", str(proxy.port),
                   f"/poems/{COLD_POEM}", "-n", str(BURST_N)]
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=180)
                out = json.loads(p.stdout)
            except (subprocess.SubprocessError, ValueError) as e:
                raise benchlib.BenchError(f"burst.py against {n}: {e}") from e
            if p.returncode != 0:
                raise benchlib.BenchError(f"burst.py against {n} exited with {p.returncode}")
            time.sleep(0.2)  # the upstream logs a fetch once its FIN is acknowledged
            out["fetches"], out["fetch_ms"] = served(up, COLD_POEM)
        finally:
            benchlib.stop(proxy)
    finally:
        benchlib.stop(up)
    if out["ok"] == 0:
        raise benchlib.BenchError(f"{n}: no request of the burst was answered 200: "
                                  f"statuses {out['statuses']}, errors {out['errors']}")
    return out


def bursts(bins, tmp, quick):
    rounds = 1 if quick else 3
    res = {"weft": [], "nginx": []}
    for r in range(rounds):
        for n in ("weft", "nginx"):
            res[n].append(burst_once(bins, tmp, n, r))
    return res, rounds


# ---- the table ----

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_list(xs, nd=0):
    return ", ".join(f"{x:.{nd}f}" for x in xs)


def build_rows(h, facts, seconds, runs, b, rounds, quick, versions):
    caveat = benchlib.caveat(quick)
    cores = os.cpu_count()
    nginx = f"nginx {versions['nginx']} (1 worker)"
    twisted = f"twisted {versions['twisted']}"
    ceiling = "libuv fixed body (ceiling)"
    rb, fb = facts["response_bytes"], facts["upstream_fetches"]
    rows = []

    def samples(n):
        return (f"{n}: {fmt_list(h[n]['rps_samples'])} req/s, p99 "
                f"{fmt_list(h[n]['p99_samples'], 2)} ms")

    def paired(r, ratios):
        """The row's ratio is the median of the per-round ratios (a ratio
        of medians would pair samples taken minutes apart); its spread
        goes beside it."""
        sp = benchlib.spread(ratios)
        if sp is not None and r["weft"] is not None and r["peer_value"] is not None:
            r["ratio"] = sp["median"]
            r["ratio_spread"] = sp
        return r

    def spread_text(n, key, what):
        sp = benchlib.spread(h[n][key])
        if sp is None:
            return ""
        return (f" {what} ratio per round (weft vs {n}): min {sp['min']:.2f}, median "
                f"{sp['median']:.2f}, max {sp['max']:.2f} over {sp['pairs']} round(s).")

    errs = "; ".join([f"{n}: {h[n]['non2xx']} non-2xx" for n in h if h[n]["non2xx"]]
                     + [f"{n}: socket errors {e}" for n in h for e in h[n]["socket_errors"]])
    rows.append(paired(benchlib.row(
        "hit_rps", "req/s", h["weft"]["rps"], nginx, h["nginx"]["rps"], higher_is_better=True,
        target={"min_ratio": NGINX_RPS_MIN_RATIO},
        note=f"{caveat}wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{seconds}s --latency on "
             f"GET /poems/{HIT_POEM}, every answer a cache hit; {runs} round(s), in each one "
             f"run of weft, nginx and the ceiling (order reversed every other round); values "
             f"are medians of the runs, the ratio is the median of the per-round ratios."
             f"{spread_text('nginx', 'rps_ratios', 'req/s')} wrk and the server under test "
             f"share this machine's {cores} cores (wrk's thread takes one). Response bytes "
             f"(head + body): weft {rb['weft']}, nginx {rb['nginx']}, twisted {rb['twisted']}, "
             f"ceiling {rb['ceiling']}: weft and Twisted render an HTML page per request (weft "
             f"assembles it on the loop from its renderer's prepared page, with a session "
             f"cookie and counter), nginx sends the cached upstream body (text/plain), which it "
             f"got from poetry-server --http since nginx cannot speak the raw poetry protocol. "
             f"Upstream fetches over the whole run (1 = only the warm-up missed): weft "
             f"{fb['weft']}, nginx {fb['nginx']}, twisted {fb['twisted']}. Samples: "
             f"{samples('weft')}; {samples('nginx')}."
             + (f" Errors: {errs}." if errs else "")), h["nginx"]["rps_ratios"]))
    rows.append(paired(benchlib.row(
        "hit_rps", "req/s", h["weft"]["rps"], twisted, h["twisted"]["rps"],
        higher_is_better=True, target={"min_ratio": TWISTED_RPS_MIN_RATIO},
        note=f"twisted_proxy.py on CPython {versions['python']}, one reactor thread "
             f"(epoll), in the first round(s) only. {samples('twisted')}."),
        h["twisted"]["rps_ratios"]))
    rows.append(paired(benchlib.row(
        "hit_rps", "req/s", h["weft"]["rps"], ceiling, h["ceiling"]["rps"],
        higher_is_better=True, target={"min_ratio": CEILING_RPS_MIN_RATIO},
        note=f"bench_ceiling: one libuv loop answering every request with the same "
             f"{facts['body_bytes']['ceiling']}-byte body (weft's page length), parsing "
             f"nothing but the end of each request: the most this machine serves with wrk "
             f"beside it. A ratio under 1 is how much of it weft reaches."
             f"{spread_text('ceiling', 'rps_ratios', 'req/s')} {samples('ceiling')}."),
        h["ceiling"]["rps_ratios"]))
    rows.append(paired(benchlib.row(
        "hit_p99_ms", "ms", h["weft"]["p99_ms"], nginx, h["nginx"]["p99_ms"],
        higher_is_better=False, target={"min_ratio": NGINX_P99_MIN_RATIO},
        note=f"wrk's p99 of the same runs (with {WRK_CONNS} connections kept busy the "
             f"latency is mostly queueing: {WRK_CONNS} / throughput), median of the runs."
             f"{spread_text('nginx', 'p99_ratios', 'p99')} Ceiling's p99: "
             f"{h['ceiling']['p99_ms']:.2f} ms."), h["nginx"]["p99_ratios"]))
    rows.append(paired(benchlib.row(
        "hit_p99_ms", "ms", h["weft"]["p99_ms"], twisted, h["twisted"]["p99_ms"],
        higher_is_better=False), h["twisted"]["p99_ratios"]))

    w, g = b["weft"], b["nginx"]
    wp99, gp99 = med(x["p99_ms"] for x in w), med(x["p99_ms"] for x in g)
    wf = [x["fetches"] for x in w]
    gf = [x["fetches"] for x in g]
    wfetch_ms = med(t for x in w for t in x["fetch_ms"])
    gfetch_ms = med(t for x in g for t in x["fetch_ms"])

    def burst_desc(xs):
        return "; ".join(
            f"p50 {x['p50_ms']:.0f}, p99 {x['p99_ms']:.0f}, max {x['max_ms']:.0f} ms, "
            f"{x['ok']}/{x['n']} ok, X-Cache {x['x_cache']}, sent over {x['send_spread_ms']:.0f} ms"
            + (f", errors {x['errors']}" if x["errors"] else "")
            + (f", statuses {x['statuses']}" if set(x["statuses"]) - {"200"} else "")
            for x in xs)

    raw_chunk, http_chunk = slow_chunks()
    rows.append(benchlib.row(
        "cold_burst_p99_ms", "ms", wp99, nginx, gp99, higher_is_better=False,
        target={"min_ratio": BURST_P99_MIN_RATIO},
        note=f"{caveat}{BURST_N} concurrent GET /poems/{COLD_POEM} on a fresh proxy (nginx: "
             f"empty cache), all connections opened first, then every request sent at once "
             f"(burst.py, asyncio), each timed from its send to its last byte; median over "
             f"{rounds} burst(s). Upstream: poetry-server --slow, {SLOW_DELAYS} pauses of "
             f"{SLOW_DELAY_MS} ms per fetch (--chunk {raw_chunk} raw for weft, {http_chunk} "
             f"--http for nginx, whose response head is a write of its own); it took "
             f"{wfetch_ms} ms for weft, {gfetch_ms} ms for nginx. nginx's waiters re-check "
             f"the cache lock on a {NGINX_LOCK_POLL_MS} ms timer; weft's are woken by the "
             f"fetch. The upstream's pauses alone ({SLOW_DELAYS * SLOW_DELAY_MS} ms) end "
             f"{-SLOW_DELAYS * SLOW_DELAY_MS % NGINX_LOCK_POLL_MS} ms before nginx's next "
             f"poll, which its waiters wait for. "
             f"weft: {burst_desc(w)}. nginx: {burst_desc(g)}."))
    if wp99 is not None and gp99 is not None and wfetch_ms is not None and gfetch_ms is not None:
        rows.append(benchlib.row(
            "cold_burst_wait_ms", "ms", wp99 - wfetch_ms, nginx, gp99 - gfetch_ms,
            higher_is_better=False, target={"min_ratio": BURST_WAIT_MIN_RATIO},
            note=f"The burst's p99 minus the upstream's own time for the fetch (the median "
                 f"of its 'served' log lines): how long the last requests waited beyond the "
                 f"poem's arrival. 'Far below nginx's' is read as at least "
                 f"{BURST_WAIT_MIN_RATIO:g}x lower here."))
    rows.append(benchlib.row(
        "cold_burst_upstream_fetches", "fetches", max(wf), "target", 1, higher_is_better=False,
        target={"min": 1, "max": 1},
        note=f"Times the upstream served {COLD_POEM} during a burst (its log's 'served' "
             f"lines), the worst of the {rounds} burst(s): weft {wf}, nginx {gf} "
             f"(proxy_cache_lock on, lock timeout and age 60 s)."))
    rows.append(benchlib.row(
        "cold_burst_upstream_fetches", "fetches", max(wf), nginx, max(gf),
        higher_is_better=False))
    rows.append(benchlib.row(
        "cold_burst_ok", "answers", min(x["ok"] for x in w), nginx, min(x["ok"] for x in g),
        higher_is_better=True, target={"min": BURST_N},
        note=f"Requests of the burst answered 200 (the fewest over the bursts); all "
             f"{BURST_N} must be."))
    return rows


def versions(bins):
    v = {}
    p = subprocess.run([bins.nginx, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    m = re.search(r"nginx/(\S+)", p.stdout)
    v["nginx"] = m.group(1) if m else "?"
    p = subprocess.run([TWISTED_PYTHON, "-c",
                        "import sys, twisted; print(twisted.__version__, sys.version.split()[0])"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0:
        raise benchlib.BenchError(f"{TWISTED_PYTHON} cannot import twisted "
                                  f"(apt-get install python3-twisted)")
    v["twisted"], v["python"] = p.stdout.split()
    p = subprocess.run([bins.wrk, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    m = re.search(r"wrk (\S+)", p.stdout)
    v["wrk"] = m.group(1) if m else "?"
    return v


def raise_fd_limit(need):
    """The children inherit it: weft and nginx hold a thousand connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(max(soft, need), hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_signal(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def main():
    ap = argparse.ArgumentParser(
        description="weft's caching proxy against nginx, Twisted and a fixed-body server")
    ap.add_argument("bench", nargs="?", help="BUILD/tools/bench/proxy/bench_proxy (tools/weft's "
                    "way of naming the build directory); or give --bin-dir")
    ap.add_argument("outdir", nargs="?", help="same as --out-dir")
    ap.add_argument("--bin-dir", help="the build directory (e.g. build/release)")
    ap.add_argument("--out-dir", help="where proxy.json goes (default: build/bench)")
    ap.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    args = ap.parse_intermixed_args()
    bin_dir = benchlib.bin_dir(ap, args)
    if bin_dir is None:
        return 2
    outdir = args.out_dir or args.outdir or benchlib.DEFAULT_OUTDIR

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = tempfile.mkdtemp(prefix="weft-bench-proxy-")
    try:
        bins = Bins(os.path.abspath(bin_dir))
        v = versions(bins)
        fds = raise_fd_limit(4 * BURST_N + 256)
        if fds < BURST_N + 128:
            raise benchlib.BenchError(f"cannot raise the open files limit to {BURST_N + 128} "
                                      f"(have {fds})")
        cores = os.cpu_count()
        print(f"bench proxy: wrk and the servers share this machine's {cores} cores "
              f"(load average now: {open('/proc/loadavg').read().split()[0]})", flush=True)
        print("bench proxy: cache hits (wrk)...", flush=True)
        h, facts, seconds, runs = hits(bins, tmp, args.quick)
        print(f"bench proxy: cold bursts ({BURST_N} requests)...", flush=True)
        b, rounds = bursts(bins, tmp, args.quick)
        rows = build_rows(h, facts, seconds, runs, b, rounds, args.quick, v)
    except benchlib.BenchError as e:
        print(f"bench proxy: FAILED: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        print(f"bench proxy: stopped by {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        benchlib.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    m = benchlib.machine()
    m["nginx"], m["twisted"], m["wrk"] = v["nginx"], v["twisted"], v["wrk"]
    if benchlib.finish("proxy", rows, outdir, m, benchlib.title(
            "bench proxy: weft's caching poetry proxy vs nginx, Twisted and a fixed-body "
            "libuv server", args.quick)):
        return 1
    print(f"note: wrk and the server under test shared {os.cpu_count()} cores")
    if benchlib.NO_SIGTERM:
        print(f"bench proxy: WARNING: did not exit on SIGTERM within "
              f"{benchlib.STOP_TIMEOUT:.0f} s (killed): {', '.join(benchlib.NO_SIGTERM)}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
