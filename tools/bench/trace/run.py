#!/usr/bin/python3
"""bench trace: what tracing costs, weft against itself.

usage: /usr/bin/python3 tools/bench/trace/run.py BENCH_TRACE [OUTDIR] [--quick]

The issue names no outside peer: the comparison is weft with tracing off,
or on, against weft without it, in the same run.

1. Local ask/reply round trips (bench_trace: two actors, one outstanding,
   each ask a new trace as each HTTP request is at the listener), in
   rounds that interleave the variants so that the machine's drift hits
   them alike:
     - tracing compiled out (bench_trace_base, WEFT_NO_TRACE) vs tracing
       off: "off costs nothing measurable", by rate and by instructions per
       round trip (callgrind: repeatable whatever else the machine does);
     - tracing on with the file sink, sampling 1, 0.1 and 0.01, vs off:
       "at most 10%". With sampling 1 the loop makes five events per round
       trip, several million a second; events the writer cannot keep up
       with are dropped and counted, and the table says how many.
2. The caching poetry proxy serving cache hits over HTTP (wrk -t1 -c32):
   tracing on (file sink, every request sampled) vs off.

Writes OUTDIR/trace.json. Exit status: 0 when everything ran, even if a
target was missed (the table says MISSED); 1 when something failed to run.
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "proxy"))
sys.dont_write_bytecode = True

import benchlib  # noqa: E402
import run as proxy  # noqa: E402  (the proxy benchmark's poetry servers)

SAMPLINGS = {"s1": 1, "s0.1": 0.1, "s0.01": 0.01}
MAX_COST = 0.10  # tracing on may cost at most 10% of the throughput
OFF_NOISE = 0.05  # "nothing measurable": off within 5% of compiled out (rate)
OFF_INSTR = 0.03  # ... and within 3% by instructions


def within_round(rates, base):
    """The median of each round's rate over the base rate of the same round:
    rounds run their variants back to back, so a slow phase of the host
    weighs on both sides of a ratio."""
    return statistics.median(a / b for a, b in zip(rates, base))


def asks(binary, n, samples, spec=None):
    cmd = [binary, str(n), str(samples)] + ([spec] if spec else [])
    return benchlib.run_json(cmd, timeout=600)


def instructions(binary, n, tmp):
    """Instructions per round trip under callgrind (all threads)."""
    out = os.path.join(tmp, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, str(n), "1"]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
    if p.returncode != 0 or not m:
        raise benchlib.BenchError(f"callgrind failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    # bench_trace runs a warm-up of n/10 + 1 round trips before its sample.
    return int(m.group(1)) / (n + n // 10 + 1)


def local(bins, tmp, quick):
    # Many short rounds, each running every variant back to back: this
    # machine's host has slow phases lasting seconds, which a round shares
    # between its variants instead of handing to one.
    n, samples, rounds = (200000, 1, 1) if quick else (1000000, 1, 11)
    trace_file = os.path.join(tmp, "asks.jsonl")
    variants = {
        "base": (bins.base, None),
        "off": (bins.traced, None),
        "s1": (bins.traced, f"file={trace_file};sample=1"),
        "s0.1": (bins.traced, f"file={trace_file};sample=0.1"),
        "s0.01": (bins.traced, f"file={trace_file};sample=0.01"),
    }
    got = {k: {"rps": [], "events": 0, "lost": 0} for k in variants}
    order = list(variants)
    for r in range(rounds):
        for k in order[r % len(order):] + order[:r % len(order)]:
            binary, spec = variants[k]
            o = asks(binary, n, samples, spec)
            got[k]["rps"] += o["rps_samples"]
            got[k]["events"] += o["events"]
            got[k]["lost"] += o["lost"]
            got[k]["compiler"] = o["compiler"]
            if spec:
                got.setdefault("clock_ns", []).append(o["clock_ns"])
    clock_ns = statistics.median(got.pop("clock_ns"))
    for k in got:
        got[k]["median"] = statistics.median(got[k]["rps"])
        got[k]["paired"] = within_round(got[k]["rps"], got["off"]["rps"])
    ni = 20000 if quick else 200000
    got["instr"] = {"base": instructions(bins.base, ni, tmp),
                    "off": instructions(bins.traced, ni, tmp)}
    got["n"], got["samples"], got["clock_ns"] = n, samples * rounds, clock_ns
    return got


def http(bins, tmp, quick):
    seconds, runs = (1, 1) if quick else (3, 5)
    up = proxy.start_upstream(bins, tmp, "upstream")
    files = {k: os.path.join(tmp, f"proxy-{k}.jsonl") for k in SAMPLINGS}
    procs = {"off": proxy.start_weft(bins, tmp, "proxy-off", up)}
    for k, v in SAMPLINGS.items():
        procs[k] = proxy.start_weft(bins, tmp, f"proxy-{k}", up,
                                    ["--trace", f"file={files[k]};sample={v}"])
    path = f"/poems/{proxy.HIT_POEM}"
    for k, p in procs.items():
        for _ in range(2):  # a MISS, then a HIT
            status, h, body, total = benchlib.http_get(p.port, path)
            if status != 200:
                raise benchlib.BenchError(f"proxy ({k}): GET {path} answered {status}")
        if h.get("x-cache") != "HIT":
            raise benchlib.BenchError(f"proxy ({k}): the second GET is not a hit")
    if not quick:
        for p in procs.values():
            proxy.wrk(bins, p.port, 1)
    samples = {k: [] for k in procs}
    order = list(procs)
    for r in range(runs):
        for k in order[r % len(order):] + order[:r % len(order)]:
            s = proxy.wrk(bins, procs[k].port, seconds)
            if s["non2xx"] > 0.01 * max(1, s["requests"]):
                raise benchlib.BenchError(f"proxy ({k}): {s['non2xx']} answers were not 2xx")
            samples[k].append(s["rps"])
    benchlib.stop(*procs.values())
    benchlib.stop(up)
    lines, mb = {}, {}
    for k, f in files.items():
        with open(f) as fh:
            lines[k] = sum(1 for _ in fh)
        mb[k] = os.path.getsize(f) / 1e6
    paired = {k: within_round(v, samples["off"]) for k, v in samples.items()}
    return {"seconds": seconds, "runs": runs, "lines": lines, "trace_mb": mb, "paired": paired,
            **{k: statistics.median(v) for k, v in samples.items()},
            "samples": samples}


def build_rows(loc, web, quick):
    caveat = benchlib.caveat(quick)
    rows = []
    each = f"median of {loc['samples']} samples of {loc['n']:,} round trips"

    def fmt(xs):
        return ", ".join(f"{x / 1e6:.2f}M" for x in xs)

    base, off = loc["base"], loc["off"]
    rows.append(benchlib.row(
        "ask_rps_tracing_off", "round trips/s", off["median"],
        "weft, tracing compiled out", base["median"], higher_is_better=True,
        target={"min_ratio": 1 - OFF_NOISE},
        note=f"{caveat}Local ask/reply, {each}: off {fmt(off['rps'])}; compiled out "
             f"{fmt(base['rps'])}; median of the ratios within a round "
             f"{1 / base['paired']:.2f}x. 'Nothing measurable' read as within {OFF_NOISE:.0%} "
             f"(a band chosen for this shared machine; the samples show its spread)."))
    ib, io = loc["instr"]["base"], loc["instr"]["off"]
    rows.append(benchlib.row(
        "ask_instructions_tracing_off", "instructions/round trip", round(io, 1),
        "weft, tracing compiled out", round(ib, 1), higher_is_better=False,
        target={"min_ratio": 1 - OFF_INSTR},
        note=f"{caveat}callgrind, whole process: what the hooks add when a node does not "
             f"trace ({io - ib:+.1f} instructions per round trip)."))
    for k, label in (("s1", "1"), ("s0.1", "0.1"), ("s0.01", "0.01")):
        v = loc[k]
        total = v["events"] + v["lost"]
        kept = f"{v['events']:,} events written, {v['lost']:,} dropped" + (
            f" ({v['lost'] / total:.0%})" if total else "")
        rows.append(benchlib.row(
            f"ask_rps_tracing_on_sample_{label}", "round trips/s", v["median"],
            "weft, tracing off", off["median"], higher_is_better=True,
            target={"min_ratio": 1 - MAX_COST},
            note=f"{caveat}File sink, sampling {label}, {each}: {fmt(v['rps'])}; median of "
                 f"the ratios within a round {v['paired']:.2f}x. {kept}. A round trip untraced "
                 f"takes {1e9 / off['median']:.0f} ns; a clock reading, which each recorded "
                 f"event takes, {loc['clock_ns']:.1f} ns."))
    off_s = ", ".join(f"{x:,.0f}" for x in web["samples"]["off"])
    for k, v in SAMPLINGS.items():
        rows.append(benchlib.row(
            f"proxy_hits_rps_tracing_on_sample_{v}", "req/s", web[k], "weft proxy, tracing off",
            web["off"], higher_is_better=True, target={"min_ratio": 1 - MAX_COST},
            note=f"{caveat}The caching poetry proxy serving hits, wrk -t1 -c32, median of "
                 f"{web['runs']} runs of {web['seconds']} s each (on: "
                 f"{', '.join(f'{x:,.0f}' for x in web['samples'][k])}; off: {off_s}; median "
                 f"of the ratios within a run {web['paired'][k]:.2f}x); "
                 f"file sink, sampling {v}: {web['lines'][k]:,} lines, "
                 f"{web['trace_mb'][k]:.0f} MB written."))
    return rows


def main():
    a = benchlib.parse_args("trace", __doc__.splitlines()[0])
    bin_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(a.bench)))))
    bins = types.SimpleNamespace(
        traced=a.bench, base=os.path.join(os.path.dirname(a.bench), "bench_trace_base"),
        proxy=os.path.join(bin_dir, "examples", "poetry_proxy"),
        server=os.path.join(bin_dir, "tools", "poetry", "poetry-server"),
        wrk=shutil.which("wrk"))
    for k, p in vars(bins).items():
        if not p or not os.access(p, os.X_OK):
            print(f"bench trace: {k} is missing ({p}); build bench_trace, or apt-get install "
                  f"wrk", file=sys.stderr)
            return 1
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(1))
    try:
        with tempfile.TemporaryDirectory(prefix="weft-bench-trace.") as tmp:
            loc = local(bins, tmp, a.quick)
            web = http(bins, tmp, a.quick)
    except benchlib.BenchError as e:
        print(f"bench trace: {e}", file=sys.stderr)
        return 1
    finally:
        benchlib.stop_all()
    rows = build_rows(loc, web, a.quick)
    return benchlib.finish("trace", rows, a.outdir, benchlib.machine(loc["off"]["compiler"]),
                           benchlib.title("bench trace: what tracing costs (weft against itself)",
                                          a.quick))


if __name__ == "__main__":
    sys.exit(main())
