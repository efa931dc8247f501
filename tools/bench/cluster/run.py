#!/usr/bin/python3
"""bench cluster: the caching poetry proxy over four hosts against the same
four actors in one process, hits and misses with wrk.

usage: /usr/bin/python3 tools/bench/cluster/run.py --bin-dir BUILD [--out-dir DIR] [--quick]
       /usr/bin/python3 tools/bench/cluster/run.py BUILD/tools/bench/cluster/bench_cluster [OUTDIR] [--quick]

(the second form is how tools/weft runs every benchmark: the build directory
is found from the path of the bench_cluster target.)

The hosts are Linux network namespaces on this machine, joined by veth
pairs on a bridge (as tools/weft demo --hosts builds them, with names and
addresses of their own so that the two never meet):

    wfb-front     10.78.0.1  weft-node: listener, renderer; and, for the
                             comparison, examples/poetry_proxy (all four
                             actors in one process); wrk runs here too
    wfb-cache     10.78.0.2  weft-node: cache
    wfb-fetch     10.78.0.3  weft-node: fetcher
    wfb-upstream  10.78.0.4  poetry-server --never-read (a fast upstream:
                             the first poem at once; one per contender)

Both contenders are asked from the front host and fetch from the upstream
host, so what differs is only where the actors run: a hit crosses the
front-cache link once (listener -> cache -> listener, the renderer is on
the front), a miss also crosses cache-fetch and fetch-upstream.

Measured, in alternating rounds (the order reversed every other round; each
figure is the median of the rounds, each ratio the median of the per-round
ratios, with its min and max):
    hits     wrk -t1 -c32 --latency on a poem fetched once before: requests/s,
             p50, p99; and the same with one connection (-c1): the latency of
             one request when nothing waits in line
    misses   wrk -t1 -c32 --latency -s miss.lua: every request a poem name
             never asked before (each one fetched from the upstream, whose log
             proves it), bounded by time and by count
    links    the raw round trip of each link: probe.py, a one-byte TCP echo
             between the two namespaces (median of 2,000), and over loopback
             on the front host for comparison

Targets (issue 11): the hit p50 through four hosts at most 2x the
single-process p50 plus the round trips a hit makes over the links (one,
front-cache); hit requests/s through four hosts at least half the
single-process figure. Both are computed from this run's measurements.

Needs root (network namespaces), iproute2 and wrk. Without root, or where
namespaces cannot be made or entered (a chroot, a container), it says it is
SKIPPED and why, and exits 0 (tools/weft runs it only when named). Leftovers
of an earlier run (namespaces wfb-*, their processes) are removed at start,
everything at exit, on SIGINT/SIGTERM/SIGHUP too. Writes OUTDIR/cluster.json
(default build/bench). Exit status: 0 when everything ran (or was skipped),
even if a target was missed (the table says MISSED); 1 when something
failed to run; 2 on bad usage.
"""

import argparse
import fcntl
import glob
import os
import re
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

POEMS = os.path.join(ROOT, "examples", "poems")
PROBE = os.path.join(HERE, "probe.py")
MISS_LUA = os.path.join(HERE, "miss.lua")
HIT_POEM = "ozymandias"

# The hosts. The prefix is not demo-hosts' "wf-", whose clean-up removes
# every namespace named wf-*.
PREFIX = "wfb-"
LAN = PREFIX + "lan"
HOSTS = {"front": "10.78.0.1", "cache": "10.78.0.2", "fetch": "10.78.0.3",
         "upstream": "10.78.0.4"}
LOCK = "/run/weft-bench-cluster.lock"
TMP_PREFIX = "weft-bench-cluster-"
NODE_PORT = 7100
CLUSTER_HTTP, SINGLE_HTTP = 8080, 8090
CLUSTER_UP, SINGLE_UP = 10000, 10001
ECHO_PORT = 7900
LINKS = [("front", "cache"), ("cache", "fetch"), ("fetch", "upstream")]
HIT_LINK = ("front", "cache")  # the one link a hit crosses, there and back

CLUSTER, SINGLE = "cluster", "single"
PEER = "weft, one process"  # examples/poetry_proxy: the four actors in one process

WRK_CONNS = 32
HIT_SECONDS, MISS_SECONDS, ONE_SECONDS, ROUNDS = 2, 2, 1, 8
MISS_LIMIT = 20000  # per wrk run: bounds the upstream connections (and TIME_WAITs)
RTT_N = 2000

HIT_P50_FACTOR = 2.0     # issue 11: hit p50 <= 2x single-process + the links' round trips
HIT_RPS_MIN_RATIO = 0.5  # issue 11: hit throughput >= half of single-process


class Stopped(Exception):
    """run.py itself got a signal: clean up and leave."""


class Skip(Exception):
    """This machine cannot make the hosts: nothing measured, said why."""


# ---- the hosts ----

def ip(*args, check=True):
    p = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise benchlib.BenchError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def in_ns(host, cmd):
    return ["ip", "netns", "exec", PREFIX + host, *cmd]


def remove_hosts():
    """Every namespace named wfb-*, and whatever runs in it."""
    p = ip("netns", "list", check=False)
    for line in p.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith(PREFIX):
            continue
        pids = ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", ns, check=False)


def check_can_run():
    """Raises Skip saying why this machine cannot make the hosts."""
    if os.geteuid() != 0:
        raise Skip("network namespaces need root (sudo tools/weft bench cluster)")
    with open("/proc/self/mountinfo") as f:
        if not any(line.split()[4] == "/" for line in f if len(line.split()) > 4):
            raise Skip("this is a chroot; network namespaces need the machine's own root")
    if shutil.which("ip") is None:
        raise Skip("ip not found (apt-get install iproute2)")
    probe = PREFIX + "probe"
    p = ip("netns", "add", probe, check=False)
    if p.returncode != 0:
        raise Skip(f"cannot make a network namespace here: {p.stderr.strip()}")
    p = ip("netns", "exec", probe, "true", check=False)
    ip("netns", "del", probe, check=False)
    if p.returncode != 0:
        raise Skip(f"cannot run a program in a network namespace here (a container without "
                   f"CAP_SYS_ADMIN?): {p.stderr.strip()}")


def make_hosts():
    """The four hosts on a bridge in a fifth namespace, as demo-hosts does."""
    ip("netns", "add", LAN)
    ip("-n", LAN, "link", "add", "br0", "type", "bridge")
    ip("-n", LAN, "link", "set", "br0", "up")
    for h, addr in HOSTS.items():
        ns = PREFIX + h
        ip("netns", "add", ns)
        ip("link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", ns, "netns", LAN)
        ip("-n", LAN, "link", "set", ns, "master", "br0", "up")
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")


# ---- the programs ----

class Bins:
    def __init__(self, bin_dir):
        self.node = os.path.join(bin_dir, "tools", "weft-node")
        self.proxy = os.path.join(bin_dir, "examples", "poetry_proxy")
        self.server = os.path.join(bin_dir, "tools", "poetry", "poetry-server")
        for p in (self.node, self.proxy, self.server):
            if not os.access(p, os.X_OK):
                raise benchlib.BenchError(
                    f"{p} is missing: build it first (ninja -C {bin_dir} bench_cluster)")
        self.wrk = shutil.which("wrk")
        if not self.wrk:
            raise benchlib.BenchError("wrk is not installed (apt-get install wrk)")


def start_upstream(bins, tmp, name, port):
    addr = HOSTS["upstream"]
    cmd = in_ns("upstream", [bins.server, "--host", addr, "--port", str(port), "--poems", POEMS,
                             "--never-read"])
    return benchlib.Proc(name, cmd, tmp, ready_line=rf"listening on {re.escape(addr)}:(\d+)")


def cluster_conf(tmp):
    """The cluster file: the actors where demo-hosts puts them, and the
    options poetry_proxy gives its actors (TTL and timeouts)."""
    path = os.path.join(tmp, "cluster.conf")
    with open(path, "w") as f:
        f.write(f"""# bench cluster: the caching poetry proxy over four hosts
secret = weft-bench-cluster
node front = tcp://{HOSTS['front']}:{NODE_PORT}
node cache = tcp://{HOSTS['cache']}:{NODE_PORT}
node fetch = tcp://{HOSTS['fetch']}:{NODE_PORT}
actors front = listener renderer
actors cache = cache
actors fetch = fetcher
listener.http = {HOSTS['front']}:{CLUSTER_HTTP}
listener.poetry = {HOSTS['front']}:{CLUSTER_HTTP + 1}
cache.ttl-ms = 7200000
fetcher.upstream = poetry://{HOSTS['upstream']}:{CLUSTER_UP}
fetcher.total-timeout-ms = 30000
""")
    return path


class Node:
    """weft-node NAME on its host. Its standard input is a FIFO opened for
    reading and writing (its end would shut the node down), through which
    run.py asks for its stats."""

    def __init__(self, bins, tmp, conf, name):
        self.fifo = os.path.join(tmp, f"{name}.in")
        os.mkfifo(self.fifo)
        cmd = in_ns(name, ["sh", "-c", 'exec "$@" <>"$0"', self.fifo,
                           bins.node, "--config", conf, "--name", name])
        self.proc = benchlib.Proc(f"node-{name}", cmd, tmp, ready_line=rf"ready {name}")

    def stats(self):
        """Its transport counters ({name: number}), or None if it does not say."""
        before = self.proc.stdout().count("\nstats ")
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"stats\n")
            finally:
                os.close(fd)
        except OSError:
            return None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = self.proc.stdout()
            if out.count("\nstats ") > before:
                line = out[out.rindex("\nstats ") + 1:].splitlines()[0]
                return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
            time.sleep(0.05)
        return None


def start_cluster(bins, tmp):
    conf = cluster_conf(tmp)
    # front last: its listener's first ask finds the cache up.
    return {n: Node(bins, tmp, conf, n) for n in ("cache", "fetch", "front")}


def start_single(bins, tmp):
    f = HOSTS["front"]
    cmd = in_ns("front", [bins.proxy, "--upstream", f"poetry://{HOSTS['upstream']}:{SINGLE_UP}",
                          "--http", f"{f}:{SINGLE_HTTP}", "--poetry", f"{f}:{SINGLE_HTTP + 1}"])
    return benchlib.Proc("single", cmd, tmp, ready_line=r"poetry proxy: http://")


def probe(host, *args, timeout=60):
    return benchlib.run_json(in_ns(host, [sys.executable, PROBE, *map(str, args)]),
                             f"probe {args[0]} on {host}", timeout=timeout)


def cpu_s(procs):
    """CPU seconds (user + system, every thread) the processes have used."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in procs:
        try:
            with open(f"/proc/{p.p.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            raise benchlib.BenchError(f"{p.name}: cannot read its CPU time (did it exit?)\n"
                                      f"{p.stderr_tail()}")
    return total / tick


def fetches(upstream):
    """How many poems the upstream has served."""
    return upstream.stderr().count(": served ")


def settled_fetches(upstream, quiet_s=0.2, limit_s=3.0):
    """fetches() once it has not changed for quiet_s (at most limit_s): the
    requests in flight when a wrk run ends are fetched after it, and must
    be counted with that run, not with the next."""
    end = time.monotonic() + limit_s
    n = fetches(upstream)
    while time.monotonic() < end:
        time.sleep(quiet_s)
        m = fetches(upstream)
        if m == n:
            break
        n = m
    return n


# ---- the links ----

def round_trips(tmp, n):
    """{"front-cache": {...}, ..., "loopback": {...}}: probe.py rtt results."""
    res = {}
    targets = [(a, b, HOSTS[b]) for a, b in LINKS] + [("front", "front", "127.0.0.1")]
    for a, b, addr in targets:
        echo = benchlib.Proc(f"echo-{b}-{addr}", in_ns(b, [sys.executable, PROBE, "echo", addr,
                                                         str(ECHO_PORT)]),
                             tmp, ready_line=r"listening on")
        try:
            res["loopback" if a == b else f"{a}-{b}"] = probe(a, "rtt", addr, ECHO_PORT, n)
        finally:
            benchlib.stop(echo)
    return res


# ---- wrk ----

def wrk(bins, port, seconds, conns, prefix=None):
    """One wrk --latency run from the front host (benchlib.wrk); with
    prefix, every request a new poem (miss.lua)."""
    return benchlib.wrk(bins.wrk, f"http://{HOSTS['front']}:{port}/poems/{HIT_POEM}", seconds, 1,
                        conns, script=MISS_LUA if prefix is not None else None,
                        script_args=(prefix, str(MISS_LIMIT)), wrap=in_ns("front", []))


# ---- the measurement ----

def warm(name, port, proc):
    """Fetches the hit poem once (a MISS), then checks it is a HIT."""
    path = f"/poems/{HIT_POEM}"
    r = probe("front", "get", HOSTS["front"], port, path, 15)
    if r["status"] != 200:
        raise benchlib.BenchError(f"{name}: GET {path} answered {r['status']} (warm-up)\n"
                                  f"{proc.stderr_tail()}")
    r = probe("front", "get", HOSTS["front"], port, path)
    if r["status"] != 200 or r["x_cache"] != "HIT":
        raise benchlib.BenchError(f"{name}: the second GET {path} is not a cache hit (status "
                                  f"{r['status']}, X-Cache {r['x_cache']})")
    return r["bytes"]


def measure(bins, tmp, quick):
    """Both contenders, in alternating rounds: {contender: {kind: [sample]}}
    and facts."""
    hit_s, miss_s, one_s, rounds = (1, 1, 1, 1) if quick else (HIT_SECONDS, MISS_SECONDS,
                                                               ONE_SECONDS, ROUNDS)
    up = {CLUSTER: start_upstream(bins, tmp, "up-cluster", CLUSTER_UP),
          SINGLE: start_upstream(bins, tmp, "up-single", SINGLE_UP)}
    print("bench cluster: the links' round trips...", flush=True)
    rtt = round_trips(tmp, 200 if quick else RTT_N)
    print("bench cluster: " + ", ".join(f"{k} {v['echo_us']:.0f} us" for k, v in rtt.items()),
          flush=True)
    nodes = start_cluster(bins, tmp)
    single = start_single(bins, tmp)
    port = {CLUSTER: CLUSTER_HTTP, SINGLE: SINGLE_HTTP}
    proc = {CLUSTER: nodes["front"].proc, SINGLE: single}
    # Whose CPU a hit costs (the fetch host and the upstreams are idle then).
    hit_procs = {"front": [nodes["front"].proc], "cache": [nodes["cache"].proc],
                 "one process": [single]}
    of = {CLUSTER: ("front", "cache"), SINGLE: ("one process",)}
    facts = {"response_bytes": {c: warm(c, port[c], proc[c]) for c in (CLUSTER, SINGLE)},
             "rounds": rounds, "seconds": {"hit": hit_s, "miss": miss_s, "one": one_s},
             "hit_fetches": {}, "miss_fetches": {c: 0 for c in up},
             "miss_requests": {c: 0 for c in up},
             "hit_cpu_s": {k: 0.0 for k in hit_procs}, "hit_requests": {c: 0 for c in up}}
    base = {c: settled_fetches(up[c]) for c in up}
    if not quick:  # one untimed second each: caches, allocators, connections
        for c in (CLUSTER, SINGLE):
            wrk(bins, port[c], 1, WRK_CONNS)
    samples = {c: {"hit": [], "miss": [], "one": []} for c in (CLUSTER, SINGLE)}
    for r in range(rounds):
        order = [CLUSTER, SINGLE] if r % 2 == 0 else [SINGLE, CLUSTER]
        for c in order:
            before = {k: cpu_s(hit_procs[k]) for k in of[c]}
            samples[c]["hit"].append(wrk(bins, port[c], hit_s, WRK_CONNS))
            for k in of[c]:
                facts["hit_cpu_s"][k] += cpu_s(hit_procs[k]) - before[k]
            facts["hit_requests"][c] += samples[c]["hit"][-1]["requests"]
        for c in order:
            samples[c]["one"].append(wrk(bins, port[c], one_s, 1))
        for c in order:
            before = settled_fetches(up[c])
            s = wrk(bins, port[c], miss_s, WRK_CONNS, prefix=f"m{c[0]}{r}")
            s["fetches"] = settled_fetches(up[c]) - before
            samples[c]["miss"].append(s)
            facts["miss_fetches"][c] += s["fetches"]
            facts["miss_requests"][c] += s["requests"]
        for c in order:
            for kind, ss in samples[c].items():
                s = ss[-1]
                if s["non2xx"] > 0.01 * max(1, s["requests"]):
                    raise benchlib.BenchError(f"{c} ({kind}): {s['non2xx']} of {s['requests']} "
                                              f"answers were not 2xx\n{proc[c].stderr_tail()}")
            m = samples[c]["miss"][-1]
            if m["fetches"] < 0.98 * m["requests"]:
                raise benchlib.BenchError(
                    f"{c}: {m['requests']} miss requests but {m['fetches']} upstream fetches: "
                    f"the misses were not all misses")
        if not quick:
            w, s = samples[CLUSTER], samples[SINGLE]
            print(f"bench cluster: round {r + 1}/{rounds}: hits {w['hit'][-1]['rps']:.0f} vs "
                  f"{s['hit'][-1]['rps']:.0f} req/s (p50 {w['hit'][-1]['p50_ms']:.2f} vs "
                  f"{s['hit'][-1]['p50_ms']:.2f} ms; one connection {w['one'][-1]['p50_ms']:.3f} "
                  f"vs {s['one'][-1]['p50_ms']:.3f} ms), misses {w['miss'][-1]['rps']:.0f} vs "
                  f"{s['miss'][-1]['rps']:.0f} req/s (four hosts vs one process)", flush=True)
    # Hits must not have fetched: every fetch beyond the warm-up's is a miss run's.
    for c in up:
        facts["hit_fetches"][c] = settled_fetches(up[c]) - base[c] - facts["miss_fetches"][c]
        if facts["hit_fetches"][c] != 0:
            raise benchlib.BenchError(f"{c}: the upstream served {facts['hit_fetches'][c]} "
                                      f"poem(s) during the hit runs: not all hits")
    facts["node_stats"] = {n: node.stats() for n, node in nodes.items()}
    benchlib.stop(single, *(n.proc for n in nodes.values()))
    benchlib.stop(*up.values())
    return samples, rtt, facts


# ---- the table ----

def med(samples, key):
    return statistics.median(s[key] for s in samples)


def build_rows(samples, rtt, facts, quick):
    caveat = benchlib.caveat(quick)
    w, s = samples[CLUSTER], samples[SINGLE]
    rounds, secs = facts["rounds"], facts["seconds"]
    hit_rtt_ms = rtt["-".join(HIT_LINK)]["echo_us"] / 1e3
    all_rtt_ms = sum(rtt[f"{a}-{b}"]["echo_us"] for a, b in LINKS) / 1e3
    rows = []

    def round_ratios(kind, key, higher):
        """The per-round ratios, four hosts against one process: their spread."""
        return benchlib.spread(benchlib.ratio(a[key], b[key], higher)
                               for a, b in zip(w[kind], s[kind]))

    def paired(r, kind, key, higher):
        """The row's ratio: the median of the per-round ratios, its spread beside it."""
        sp = round_ratios(kind, key, higher)
        if sp is not None:
            r["ratio"] = sp["median"]
            r["ratio_spread"] = sp
        return r

    def values(kind, key, nd):
        return (f"four hosts {', '.join(f'{x[key]:.{nd}f}' for x in w[kind])}; one process "
                f"{', '.join(f'{x[key]:.{nd}f}' for x in s[kind])}")

    def ratio_text(kind, key, higher):
        sp = round_ratios(kind, key, higher)
        return "" if sp is None else (f" Ratio per round: min {sp['min']:.2f}, median "
                                      f"{sp['median']:.2f}, max {sp['max']:.2f}.")

    errs = "; ".join(f"{c} {k}: socket errors {x['socket_errors']}"
                     for c in samples for k in samples[c] for x in samples[c][k]
                     if x["socket_errors"])
    rb = facts["response_bytes"]
    st = facts["node_stats"]
    stats = "; ".join(
        f"{n}: " + (", ".join(f"{k} {v[k]}" for k in ("frames_in", "frames_out", "send_failures",
                                                      "peers_down") if k in v)
                    if v else "no answer")
        for n, v in st.items())

    cpu = {k: v * 1e6 / max(1, facts["hit_requests"][CLUSTER if k != "one process" else SINGLE])
           for k, v in facts["hit_cpu_s"].items()}
    hit_allow = HIT_P50_FACTOR * med(s["hit"], "p50_ms") + hit_rtt_ms
    rows.append(paired(benchlib.row(
        "hit_rps", "req/s", med(w["hit"], "rps"), PEER, med(s["hit"], "rps"),
        higher_is_better=True, target={"min_ratio": HIT_RPS_MIN_RATIO},
        note=f"{caveat}weft is the proxy over four hosts (weft-node on front: listener and "
             f"renderer, on cache: cache, on fetch: fetcher; network namespaces on this "
             f"machine, veth pairs on a bridge); the peer is the same four actors in one "
             f"process (examples/poetry_proxy), on the front host. wrk -t1 -c{WRK_CONNS} "
             f"-d{secs['hit']}s --latency from the front host on GET /poems/{HIT_POEM}, every "
             f"answer a cache hit; {rounds} round(s), the order reversed every other round; "
             f"values are medians of the runs, the ratio the median of the per-round ratios."
             f"{ratio_text('hit', 'rps', True)} Target (issue 11): at least half the "
             f"single-process rate. Response bytes: four hosts {rb[CLUSTER]}, one process "
             f"{rb[SINGLE]}. CPU per hit (user + system, every thread, over the hit runs): "
             f"four hosts {cpu['front']:.0f} us on front + {cpu['cache']:.0f} us on cache = "
             f"{cpu['front'] + cpu['cache']:.0f} us, one process {cpu['one process']:.0f} us "
             f"(wrk's own not counted). Upstream fetches during the hit runs (must be 0): "
             f"four hosts {facts['hit_fetches'][CLUSTER]}, one process {facts['hit_fetches'][SINGLE]}. "
             f"Every process (wrk, the nodes, the proxy, the upstreams) shares this machine's "
             f"{os.cpu_count()} cores. Samples (req/s): {values('hit', 'rps', 0)}."),
        "hit", "rps", True))
    rows.append(paired(benchlib.row(
        "hit_p50_ms", "ms", med(w["hit"], "p50_ms"), PEER, med(s["hit"], "p50_ms"),
        higher_is_better=False, target={"max": round(hit_allow, 3)},
        note=f"wrk's p50 of the same runs. Target (issue 11), computed from this run: "
             f"{HIT_P50_FACTOR:g} x the single-process p50 ({med(s['hit'], 'p50_ms'):.3f} ms) + "
             f"the raw round trip of the one link a hit crosses, front-cache "
             f"({hit_rtt_ms * 1e3:.0f} us) = {hit_allow:.3f} ms (read as the round trips of "
             f"every link, {all_rtt_ms * 1e3:.0f} us, it would be "
             f"{hit_allow - hit_rtt_ms + all_rtt_ms:.3f} ms). With {WRK_CONNS} connections "
             f"kept busy the p50 is mostly waiting in line ({WRK_CONNS} / throughput)."
             f"{ratio_text('hit', 'p50_ms', False)} Samples (ms): {values('hit', 'p50_ms', 3)}."),
        "hit", "p50_ms", False))
    rows.append(paired(benchlib.row(
        "hit_p99_ms", "ms", med(w["hit"], "p99_ms"), PEER, med(s["hit"], "p99_ms"),
        higher_is_better=False,
        note=f"wrk's p99 of the same runs. Samples (ms): {values('hit', 'p99_ms', 2)}."),
        "hit", "p99_ms", False))
    one_allow = HIT_P50_FACTOR * med(s["one"], "p50_ms") + hit_rtt_ms
    rows.append(paired(benchlib.row(
        "hit_p50_ms_1conn", "ms", med(w["one"], "p50_ms"), PEER, med(s["one"], "p50_ms"),
        higher_is_better=False, target={"max": round(one_allow, 3)},
        note=f"wrk -t1 -c1 -d{secs['one']}s: one request at a time, so the p50 is the path's "
             f"own latency, nothing queued. The same target rule: {HIT_P50_FACTOR:g} x "
             f"{med(s['one'], 'p50_ms'):.3f} ms + {hit_rtt_ms * 1e3:.0f} us = "
             f"{one_allow:.3f} ms. Requests/s: four hosts {med(w['one'], 'rps'):.0f}, one "
             f"process {med(s['one'], 'rps'):.0f}.{ratio_text('one', 'p50_ms', False)} "
             f"Samples (ms): {values('one', 'p50_ms', 3)}."),
        "one", "p50_ms", False))
    rows.append(paired(benchlib.row(
        "miss_rps", "req/s", med(w["miss"], "rps"), PEER, med(s["miss"], "rps"),
        higher_is_better=True,
        note=f"{caveat}wrk -t1 -c{WRK_CONNS} -d{secs['miss']}s --latency -s miss.lua: every "
             f"request a poem name never asked before (at most {MISS_LIMIT} per run), so each "
             f"one goes listener -> cache -> fetcher -> upstream (four hosts: over the "
             f"front-cache, cache-fetch and fetch-upstream links; one process: over "
             f"front-upstream) on a new upstream TCP connection. The upstream is "
             f"poetry-server --never-read: the first poem at once, whatever the name (neither "
             f"proxy sends it), so the figures are weft's path, not an upstream's delay. "
             f"Requests answered / upstream fetches over the miss runs: four hosts "
             f"{facts['miss_requests'][CLUSTER]} / {facts['miss_fetches'][CLUSTER]}, one "
             f"process {facts['miss_requests'][SINGLE]} / {facts['miss_fetches'][SINGLE]} "
             f"(fetches may exceed answers by the requests in flight when a run ends)."
             f"{ratio_text('miss', 'rps', True)} Samples (req/s): {values('miss', 'rps', 0)}."
             + (f" Errors: {errs}." if errs else "")),
        "miss", "rps", True))
    rows.append(paired(benchlib.row(
        "miss_p50_ms", "ms", med(w["miss"], "p50_ms"), PEER, med(s["miss"], "p50_ms"),
        higher_is_better=False,
        note=f"Samples (ms): {values('miss', 'p50_ms', 2)}."), "miss", "p50_ms", False))
    rows.append(paired(benchlib.row(
        "miss_p99_ms", "ms", med(w["miss"], "p99_ms"), PEER, med(s["miss"], "p99_ms"),
        higher_is_better=False,
        note=f"Samples (ms): {values('miss', 'p99_ms', 2)}. The nodes' transport counters at "
             f"the end: {stats}."), "miss", "p99_ms", False))
    lo = rtt["loopback"]
    for i, (a, b) in enumerate(LINKS):
        x = rtt[f"{a}-{b}"]
        rows.append(benchlib.row(
            f"link_rtt_{a}_{b}", "us", round(x["echo_us"], 1), None, None,
            note=(f"{caveat}The links' raw round trips: probe.py, a one-byte TCP echo from "
                  f"the first host to a Python echo server on the second (median of "
                  f"{RTT_N if not quick else 200} after a warm-up; TCP_NODELAY), so it "
                  f"includes a Python recv and send at each end; over loopback on the front "
                  f"host the same probe takes {lo['echo_us']:.0f} us (min "
                  f"{lo['echo_min_us']:.0f}). Per link, min / p90 echo and median TCP connect "
                  f"(us): " + "; ".join(
                      f"{p}-{q} {rtt[f'{p}-{q}']['echo_min_us']:.0f} / "
                      f"{rtt[f'{p}-{q}']['echo_p90_us']:.0f}, connect "
                      f"{rtt[f'{p}-{q}']['connect_us']:.0f}" for p, q in LINKS) + ".")
            if i == 0 else None))
    return rows


def on_signal(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def main():
    ap = argparse.ArgumentParser(
        description="the caching poetry proxy over four hosts against the same actors in one "
                    "process")
    ap.add_argument("bench", nargs="?", help="BUILD/tools/bench/cluster/bench_cluster "
                    "(tools/weft's way of naming the build directory); or give --bin-dir")
    ap.add_argument("outdir", nargs="?", help="same as --out-dir")
    ap.add_argument("--bin-dir", help="the build directory (e.g. build/release)")
    ap.add_argument("--out-dir", help="where cluster.json goes (default: build/bench)")
    ap.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    args = ap.parse_intermixed_args()
    bin_dir = benchlib.bin_dir(ap, args)
    if bin_dir is None:
        return 2
    outdir = args.out_dir or args.outdir or benchlib.DEFAULT_OUTDIR

    # One run at a time: a second one's clean-up would take the first's
    # hosts, and its checks make and remove a probe namespace of the same
    # name. (Without root there is no lock to take: the checks say so.)
    try:
        lock = open(LOCK, "w")
    except OSError:
        lock = None
    if lock is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(f"bench cluster: FAILED: another bench cluster is running (it holds {LOCK})",
                  file=sys.stderr)
            return 1
    try:
        check_can_run()
    except Skip as e:
        print(f"bench cluster: SKIPPED: {e}; nothing measured, {outdir}/cluster.json not "
              f"written", file=sys.stderr)
        return 0
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
    try:
        bins = Bins(os.path.abspath(bin_dir))
        remove_hosts()  # what a crashed run left: its hosts, processes and files
        for d in glob.glob(os.path.join(tempfile.gettempdir(), TMP_PREFIX + "*")):
            if d != tmp:
                shutil.rmtree(d, ignore_errors=True)
        print(f"bench cluster: four hosts (namespaces {PREFIX}*, 10.78.0.0/24); every process "
              f"shares this machine's {os.cpu_count()} cores (load average now: "
              f"{os.getloadavg()[0]:.2f})", flush=True)
        make_hosts()
        samples, rtt, facts = measure(bins, tmp, args.quick)
        rows = build_rows(samples, rtt, facts, args.quick)
    except benchlib.BenchError as e:
        print(f"bench cluster: FAILED: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        print(f"bench cluster: stopped by {e}", file=sys.stderr)
        return 1
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        benchlib.stop_all()
        remove_hosts()
        shutil.rmtree(tmp, ignore_errors=True)

    m = benchlib.machine()
    p = subprocess.run([bins.wrk, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    v = re.search(r"wrk (\S+)", p.stdout)
    m["wrk"] = v.group(1) if v else "?"
    m["hosts"] = "4 network namespaces on this machine (veth pairs on a bridge)"
    if benchlib.finish("cluster", rows, outdir, m, benchlib.title(
            f"bench cluster: the caching poetry proxy over four hosts (weft) vs the same four "
            f"actors in one process (peer: {PEER})", args.quick)):
        return 1
    if benchlib.NO_SIGTERM:
        print(f"bench cluster: WARNING: did not exit on SIGTERM within "
              f"{benchlib.STOP_TIMEOUT:.0f} s (killed): {', '.join(benchlib.NO_SIGTERM)}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
