#!/usr/bin/python3
"""bench actors: weft's actors against Erlang/OTP's processes and CAF's actors.

usage: /usr/bin/python3 tools/bench/actors/run.py BENCH_ACTORS [OUTDIR] [--quick]

Runs the C bench (bench_actors), then the Erlang peer, then the CAF peer
(peers.py builds them next to BENCH_ACTORS when needed), one after the other
so that none steals another's cores. Prints the machine and the comparison
with the issue's targets:

    ask round trips      >= 1.5x Erlang's gen_server:call rate
    idle actor           < 512 bytes (Erlang ~2.7 KB, CAF ~1.2 KB)
    spawn rate           >= 2x Erlang's

plus rows without a target: ask_rps against Erlang on one scheduler (+S 1)
and against CAF (default scheduler and one thread), context switches and
thread hops per ask, and weft's ask against a raw nng inproc round trip.
Writes OUTDIR/actors.json (default: build/bench under the source tree).

Exit status: 0 when everything ran, even if a target was missed (the table
says MISSED); 1 when something failed to run (if a peer failed, weft's
figures are still printed and the failed peer named); 2 on bad usage.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402
import peers  # noqa: E402

ASK_MIN_RATIO = 1.5   # x Erlang's gen_server:call
SPAWN_MIN_RATIO = 2   # x Erlang's spawn
IDLE_MAX_BYTES = 512  # per idle actor

WEFT_KEYS = ("ask_rps", "ask_csw_per_ask", "thread_hops_per_ask", "spawn_per_s",
             "bytes_per_idle_actor", "bytes_per_idle_actor_heap", "nng_inproc_rps")


def _get(d, key):
    return None if d is None else d.get(key)


def build_rows(c, erl, caf, failed, quick):
    """c: bench_actors' output; erl, caf: the peers' (None if they failed);
    failed: {peer: message}."""
    caveat = benchlib.caveat(quick)
    samples = c["samples"]

    def peer_label(name, d, extra=""):
        if d is None:
            return f"{name} (FAILED)"
        return f"{name}{extra}"

    def tgt(d, target):
        # Without the peer's figure there is nothing to hold weft to.
        return target if d is not None else None

    def failed_note(name):
        return f" The {name} peer FAILED to run: {failed[name]}" if name in failed else ""

    erl_s = _get(erl, "schedulers")
    caf_s = _get(caf, "schedulers")
    rows = []

    # -- ask --------------------------------------------------------------
    ask_note = (
        f"{caveat}Sequential request/reply round trips between two actors on one node, one "
        f"outstanding: weft's client sends the next wf_ask_as from the reply's callback "
        f"(examples/ping_pong.c), the node running on one thread; {c['msg_bytes']}-byte "
        f"payload. Median of {samples} samples of {c['ask_rps_n']} asks (min "
        f"{min(c['ask_rps_samples']):.0f}, max {max(c['ask_rps_samples']):.0f}). Erlang: "
        f"gen_server:call with {erl_s or '?'} schedulers; the issue's target is >= "
        f"{ASK_MIN_RATIO}x that.{failed_note('erlang')}")
    rows.append(benchlib.row(
        "ask_rps", "round trips/s", c["ask_rps"],
        peer_label("erlang gen_server:call", erl, f" ({erl_s} sched)" if erl_s else ""),
        _get(erl, "ask_rps"), higher_is_better=True,
        target=tgt(erl, {"min_ratio": ASK_MIN_RATIO}), note=ask_note))
    rows.append(benchlib.row(
        "ask_rps", "round trips/s", c["ask_rps"],
        peer_label("erlang gen_server:call +S 1", erl), _get(erl, "ask_rps_s1"),
        higher_is_better=True,
        note="Extra row, no target: Erlang on one scheduler thread (erl +S 1), like weft's "
             "single loop thread." + failed_note("erlang")))
    rows.append(benchlib.row(
        "ask_rps", "round trips/s", c["ask_rps"],
        peer_label("CAF request().then", caf, f" ({caf_s} thr)" if caf_s else ""),
        _get(caf, "ask_rps"), higher_is_better=True,
        note="Extra row, no target: CAF's request(...).then(...) with the next request sent "
             "from the reply handler, default scheduler." + failed_note("caf")))
    rows.append(benchlib.row(
        "ask_rps", "round trips/s", c["ask_rps"], peer_label("CAF 1 thread", caf),
        _get(caf, "ask_rps_s1"), higher_is_better=True,
        note="Extra row, no target: CAF with scheduler.max-threads=1." + failed_note("caf")))
    nng_note = (
        f"{caveat}Fast path vs nng inproc: the same {c['msg_bytes']}-byte request/reply as a raw "
        f"nng {c.get('nng_version', '?')} inproc exchange between two pair1 sockets in one "
        f"process (nng_send/nng_recv, {c['nng_mode']}; {c['nng_note']}). That is what "
        f"delivering a local message through nng inproc would cost instead of weft's direct "
        f"mailbox path, and it is a lower bound: weft's own work (actor dispatch, pending-ask "
        f"table, deferreds) would come on top. nng takes {c['nng_csw_per_rt']:.1f} context "
        f"switches per round trip (its aio completions run on nng's own threads); weft's ask "
        f"{c['ask_csw_per_ask']:.6f}.")
    rows.append(benchlib.row(
        "ask_rps", "round trips/s", c["ask_rps"], "nng inproc", c["nng_inproc_rps"],
        higher_is_better=True, note=nng_note))
    rows.append(benchlib.row(
        "ask_csw_per_ask", "csw/ask", c["ask_csw_per_ask"], None, None,
        higher_is_better=False,
        note=f"Voluntary + involuntary context switches of the whole process "
             f"(getrusage(RUSAGE_SELF)) during the timed ask loops, over "
             f"{c['ask_asks_measured']} asks: {c['ask_csw_voluntary']} voluntary, "
             f"{c['ask_csw_involuntary']} involuntary (preemption), with {c['ask_threads']} "
             f"thread(s) in the process (exact value in actors.json). For scale, a raw nng "
             f"inproc round trip takes {c['nng_csw_per_rt']:.1f}."))
    rows.append(benchlib.row(
        "thread_hops_per_ask", "hops/ask", c["thread_hops_per_ask"], None, None,
        higher_is_better=False,
        note=f"Evidence that a local ask takes no thread hop. {c['thread_hops_basis']}."))

    # -- spawn ------------------------------------------------------------
    spawn_note = (
        f"{caveat}Anonymous idle actors (state_size 0, one handler) spawned with wf_spawn from "
        f"the main thread on a node not yet running; only the spawn loop of "
        f"{c['spawn_per_s_n']} actors is timed (a sample is therefore shorter than the usual "
        f"100 ms), then they are stopped, untimed. Median of {samples}; min "
        f"{min(c['spawn_per_s_samples']):.0f}. Erlang: spawn of a process waiting in receive; "
        f"the issue's target is >= {SPAWN_MIN_RATIO}x.{failed_note('erlang')}")
    rows.append(benchlib.row(
        "spawn_per_s", "actors/s", c["spawn_per_s"], peer_label("erlang spawn", erl),
        _get(erl, "spawn_per_s"), higher_is_better=True,
        target=tgt(erl, {"min_ratio": SPAWN_MIN_RATIO}), note=spawn_note))
    rows.append(benchlib.row(
        "spawn_per_s", "actors/s", c["spawn_per_s"], peer_label("CAF spawn", caf),
        _get(caf, "spawn_per_s"), higher_is_better=True,
        note="Extra row, no target: CAF's system.spawn of an event-based actor, from the main "
             "thread." + failed_note("caf")))

    # -- memory -----------------------------------------------------------
    rows.append(benchlib.row(
        "bytes_per_idle_actor", "bytes", c["bytes_per_idle_actor"], "target", IDLE_MAX_BYTES,
        higher_is_better=False, target={"max": IDLE_MAX_BYTES},
        note=f"{caveat}RSS growth (/proc/self/statm) over {c['idle_actors_n']} idle actors / N, "
             f"measured first while the heap is fresh, as peer_caf.cpp does; it includes "
             f"malloc's overhead and the registry's slot table. The issue's target: under "
             f"{IDLE_MAX_BYTES} bytes."))
    rows.append(benchlib.row(
        "bytes_per_idle_actor", "bytes", c["bytes_per_idle_actor"],
        peer_label("erlang process", erl), _get(erl, "bytes_per_idle_actor"),
        higher_is_better=False,
        note="Erlang's figure is erlang:memory(processes) growth / N: memory the VM accounts to "
             "processes, closer to weft's heap figure below than to RSS."
             + failed_note("erlang")))
    rows.append(benchlib.row(
        "bytes_per_idle_actor", "bytes", c["bytes_per_idle_actor"], peer_label("CAF actor", caf),
        _get(caf, "bytes_per_idle_actor"), higher_is_better=False,
        note="CAF's figure is RSS growth / N, measured the same way."
             + failed_note("caf")))
    rows.append(benchlib.row(
        "bytes_per_idle_actor_heap", "bytes", c["bytes_per_idle_actor_heap"], None, None,
        higher_is_better=False,
        note=f"Growth of live heap bytes (malloc_usable_size) seen by a counting allocator "
             f"installed with wf_replace_allocator, over the same {c['idle_actors_n']} actors / "
             f"N; one actor alone: {c['bytes_one_idle_actor']} bytes (the rest is the "
             f"registry's slot table, grown by doubling)."))
    return rows


def main():
    args = benchlib.parse_args("actors", "weft's actors against Erlang/OTP and CAF",
                               "tiny N: a smoke test")

    build_dir = os.path.dirname(os.path.abspath(args.bench))  # the peers are built next to it
    try:
        c = benchlib.run_weft(args, WEFT_KEYS)
    except benchlib.BenchError as e:
        print(f"bench actors: FAILED: {e}", file=sys.stderr)
        return 1

    failed = {}
    erl = caf = None
    try:
        erl = peers.run_erlang(args.quick, build_dir)
    except benchlib.BenchError as e:
        failed["erlang"] = str(e)
    try:
        caf = peers.run_caf(build_dir, args.quick)
    except benchlib.BenchError as e:
        failed["caf"] = str(e)

    try:
        rows = build_rows(c, erl, caf, failed, args.quick)
    except KeyError as e:
        print(f"bench actors: FAILED: an output lacks {e}", file=sys.stderr)
        return 1

    m = benchlib.machine(compiler=c.get("compiler"))
    m["erlang"] = erl["version"] if erl else "FAILED"
    m["caf"] = caf["version"] if caf else "FAILED"
    m["nng"] = c.get("nng_version")
    if benchlib.finish("actors", rows, args.outdir, m,
                       benchlib.title("bench actors: weft vs Erlang/OTP and CAF", args.quick)):
        return 1
    if failed:
        for name, msg in failed.items():
            print(f"bench actors: FAILED: the {name} peer did not run: {msg}", file=sys.stderr)
        print(f"bench actors: weft's figures above are complete; comparisons with "
              f"{' and '.join(failed)} are missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
