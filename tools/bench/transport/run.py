#!/usr/bin/python3
"""bench transport: weft's remote ask/reply against raw nng REQ/REP (the
ceiling) and Erlang's distributed gen_server:call.

usage: /usr/bin/python3 tools/bench/transport/run.py BENCH_TRANSPORT [OUTDIR] [--quick]

Runs bench_transport (weft, then raw nng, per transport and number in
flight; each a server process and a client process on this host), then the
Erlang peer (peer_dist.py: two nodes on loopback), one after the other so
that none steals another's cores. Prints the machine and the comparison
with the issue's targets:

    round trips/s, 1 and 64 outstanding, tcp and ipc   >= 0.8x raw nng REQ/REP
    round trips/s, 1 and 64 outstanding, tcp            >= 2x Erlang dist call

plus median latencies (no target). Writes OUTDIR/transport.json (default:
build/bench under the source tree).

Exit status: 0 when everything ran, even if a target was missed (the table
says MISSED); 1 when something failed to run (if the Erlang peer failed,
weft's and nng's figures are still printed); 2 on bad usage.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402
import peer_dist  # noqa: E402

NNG_MIN_RATIO = 0.8  # x raw nng REQ/REP round trips/s
ERL_MIN_RATIO = 2    # x Erlang's cross-node gen_server:call rate
TRANSPORTS = ("tcp", "ipc")
OUTSTANDING = (1, 64)
BENCH_TIMEOUT = 1500  # bench_transport bounds each configuration itself


def _keys():
    for tr in TRANSPORTS:
        for k in OUTSTANDING:
            for impl in ("weft", "nng"):
                for what in ("rps", "p50_us"):
                    yield f"{impl}_{tr}_{k}_{what}"


def build_rows(c, erl, erl_error, quick):
    """c: bench_transport's output; erl: the Erlang peer's (None if it failed)."""
    caveat = benchlib.caveat(quick)
    nng_label = f"nng {c.get('nng_version', '?')} REQ/REP aio+ctx"
    erl_label = "erlang dist gen_server:call" if erl else "erlang dist (FAILED)"
    erl_fail = f" The Erlang peer FAILED to run: {erl_error}" if erl_error else ""
    rows = []

    def samples_range(key, d=c):
        s = d.get(f"{key}_rps_samples") or []
        return f"min {min(s):.0f}, max {max(s):.0f}" if s else "no samples"

    def per_rt(key):
        try:
            csw = c[f"{key}_client_csw_per_rt"] + c[f"{key}_server_csw_per_rt"]
            cpu = c[f"{key}_client_cpu_us_per_rt"] + c[f"{key}_server_cpu_us_per_rt"]
        except KeyError:
            return "?"
        return f"{csw:.2f} context switches, {cpu:.1f} us CPU"

    for tr in TRANSPORTS:
        for k in OUTSTANDING:
            w, n = f"weft_{tr}_{k}", f"nng_{tr}_{k}"
            url = c.get(f"{w}_url", tr)
            note = None
            if k == OUTSTANDING[0] and tr == TRANSPORTS[0]:
                note = (
                    f"{caveat}Two processes per run: a server node (actor echo, transport "
                    f"listening) and a client node dialling it; a driver actor keeps K asks of a "
                    f"{c['msg_bytes']}-byte body in flight, each reply's callback sending the "
                    f"next with wf_ask_as. Raw nng: rep0 server with K contexts echoing through "
                    f"aio, req0 client with K contexts each keeping one request in flight "
                    f"(nng_ctx_send/nng_ctx_recv callbacks), same body size. Median of "
                    f"{c['samples']} samples of ~150 ms. The issue's target: weft >= "
                    f"{NNG_MIN_RATIO}x raw nng.")
            rows.append(benchlib.row(
                f"{tr}_{k}_rps", "round trips/s", c[f"{w}_rps"], nng_label, c[f"{n}_rps"],
                higher_is_better=True, target={"min_ratio": NNG_MIN_RATIO},
                note=(note + " " if note else "")
                + f"{url}, K={k}: weft {samples_range(w)}; nng {samples_range(n)}. "
                + f"Per round trip, client + server over their whole lives: weft "
                + per_rt(w) + "; nng " + per_rt(n) + "."))
            if tr == "tcp":
                ek = f"dist_{k}"
                enote = None
                if k == OUTSTANDING[0]:
                    enote = (
                        f"{caveat}Erlang: two nodes (-name ...@127.0.0.1, private epmd) on "
                        f"loopback TCP, gen_server:call({{echo, Node}}, {{ping, Bin}}) with a "
                        f"{c['msg_bytes']}-byte binary; K=1: one caller, K=64: 64 processes "
                        f"calling at once; {erl.get('schedulers', '?') if erl else '?'} "
                        f"schedulers. The issue's target: weft >= {ERL_MIN_RATIO}x.")
                else:
                    enote = "Erlang, 64 concurrent callers."
                if erl:
                    enote += f" Erlang {samples_range(ek, erl)}."
                rows.append(benchlib.row(
                    f"{tr}_{k}_rps", "round trips/s", c[f"{w}_rps"], erl_label,
                    erl.get(f"{ek}_rps") if erl else None, higher_is_better=True,
                    target={"min_ratio": ERL_MIN_RATIO} if erl else None,
                    note=enote + erl_fail))
    for tr in TRANSPORTS:
        for k in OUTSTANDING:
            w, n = f"weft_{tr}_{k}", f"nng_{tr}_{k}"
            note = None
            if k == OUTSTANDING[0] and tr == TRANSPORTS[0]:
                note = (f"{caveat}Extra rows, no target: median per-round-trip latency, from "
                        f"the send (uv_hrtime) to the reply's callback, over every round trip "
                        f"of the samples ({c[f'{w}_latencies']} for weft here); with 64 in "
                        f"flight it includes queueing. p99 in transport.json.")
            rows.append(benchlib.row(
                f"{tr}_{k}_p50", "us", c[f"{w}_p50_us"], nng_label, c[f"{n}_p50_us"],
                higher_is_better=False, note=note))
            if tr == "tcp":
                rows.append(benchlib.row(
                    f"{tr}_{k}_p50", "us", c[f"{w}_p50_us"], erl_label,
                    erl.get(f"dist_{k}_p50_us") if erl else None, higher_is_better=False))
    return rows


def main():
    args = benchlib.parse_args(
        "transport", "weft's remote ask/reply against raw nng REQ/REP and Erlang dist")

    build_dir = os.path.dirname(os.path.abspath(args.bench))  # the Erlang peer is compiled next to it
    try:
        c = benchlib.run_weft(args, list(_keys()), timeout=BENCH_TIMEOUT)
    except benchlib.BenchError as e:
        print(f"bench transport: FAILED: {e}", file=sys.stderr)
        return 1

    erl, erl_error = None, None
    try:
        erl = peer_dist.run_erlang_dist(args.quick, build_dir)
    except benchlib.BenchError as e:
        erl_error = str(e)

    try:
        rows = build_rows(c, erl, erl_error, args.quick)
    except KeyError as e:
        print(f"bench transport: FAILED: an output lacks {e}", file=sys.stderr)
        return 1

    m = benchlib.machine(compiler=c.get("compiler"))
    m["nng"] = c.get("nng_version")
    m["erlang"] = erl["version"] if erl else "FAILED"
    if benchlib.finish("transport", rows, args.outdir, m, benchlib.title(
            "bench transport: weft remote asks vs raw nng REQ/REP and Erlang dist", args.quick)):
        return 1
    if erl_error:
        print(f"bench transport: FAILED: the Erlang peer did not run: {erl_error}",
              file=sys.stderr)
        print("bench transport: weft's and nng's figures above are complete; the comparison "
              "with Erlang is missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
