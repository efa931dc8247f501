#!/usr/bin/python3
"""The peers of `tools/weft bench actors`: Erlang/OTP and CAF.

    run_erlang(quick, build_dir=None) -> dict
    run_caf(build_dir, quick) -> dict

Each builds its peer when needed, runs it and returns its JSON object, with
the same keys for both:

    version               "Erlang/OTP 25.2.3 (erts 13.1.5)", "CAF 0.17.6"
    ask_rps               sequential request/reply round trips per second
                          (gen_server:call / request(...).then), default
                          schedulers
    ask_rps_s1            the same on one scheduler thread (erl +S 1 /
                          scheduler.max-threads=1)
    spawn_per_s           idle actors spawned per second (spawn loop only;
                          they are killed and awaited afterwards, untimed)
    bytes_per_idle_actor  memory growth over idle_actors_n idle actors / N
                          (Erlang: erlang:memory(processes); CAF: RSS)
    bytes_one_idle_actor  one idle actor (Erlang: process_info(P, memory);
                          CAF: sizeof the actor object)
    schedulers, schedulers_s1, samples, spawn_n, idle_actors_n, quick

Rates are medians of `samples` samples of ~100-300 ms each. Raises
benchlib.BenchError with a readable message when something fails.

Command line (prints the merged JSON):
    /usr/bin/python3 tools/bench/actors/peers.py erlang|caf [BUILD_DIR] [--quick]

Needs Debian's erlang-base and libcaf-dev (apt-get install -y erlang-base
libcaf-dev). Standard library only.
"""

import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

ERL_SRC = os.path.join(HERE, "peer_erlang.erl")
CAF_SRC = os.path.join(HERE, "peer_caf.cpp")
CAF_BUILD = os.path.join(HERE, "build_caf.sh")
TIMEOUT = 300  # seconds per peer process; a full run takes well under 60

KEYS = ("version", "ask_rps", "ask_rps_s1", "spawn_per_s", "bytes_per_idle_actor")


def run_erlang(quick, build_dir=None):
    """Compiles peer_erlang.erl and benchlib.erl (into BUILD_DIR/peer_erlang, or a temporary
    directory), runs it with the default schedulers and again with +S 1, and
    returns the merged result."""
    what = "erlang peer"
    benchlib.require_tools(what, ("erl", "erlc"), "erlang-base")
    tmp = None
    if build_dir is None:
        tmp = tempfile.mkdtemp(prefix="weft-bench-erlang-")
        out = tmp
    else:
        out = os.path.join(os.path.abspath(build_dir), "peer_erlang")
    try:
        os.makedirs(out, exist_ok=True)
        benchlib.compile_erlang(ERL_SRC, out, what)
        extra = ["quick"] if quick else []
        # Two nodes, one after the other, so neither steals the other's core.
        base = benchlib.run_json(
            ["erl", "-noshell", "-pa", out, "-run", "peer_erlang", "main", "all"] + extra,
            what, timeout=TIMEOUT)
        s1 = benchlib.run_json(
            ["erl", "-noshell", "+S", "1", "-pa", out, "-run", "peer_erlang", "main", "ask"]
            + extra, f"{what} (+S 1)", timeout=TIMEOUT)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        base["ask_rps_s1"] = s1["ask_rps"]
        base["schedulers_s1"] = s1["schedulers"]
    except (KeyError, TypeError) as e:
        raise benchlib.BenchError(f"{what} (+S 1): output lacks {e}") from e
    return benchlib.check_keys(base, KEYS, what)


def run_caf(build_dir, quick):
    """Builds BUILD_DIR/peer_caf with build_caf.sh when it is missing or
    stale, runs it, and returns its result."""
    what = "caf peer"
    exe = os.path.join(os.path.abspath(build_dir), "peer_caf")
    if benchlib.newer(exe, CAF_SRC, CAF_BUILD):
        if not os.path.exists("/usr/include/caf/all.hpp"):
            raise benchlib.BenchError(
                f"{what}: CAF headers not found (apt-get install -y libcaf-dev)")
        benchlib.build(["sh", CAF_BUILD, exe], f"{what} build", timeout=TIMEOUT)
    result = benchlib.run_json([exe] + (["--quick"] if quick else []), what,
                               timeout=TIMEOUT)
    return benchlib.check_keys(result, KEYS, what)


def main(argv):
    args = [a for a in argv if a != "--quick"]
    quick = len(args) != len(argv)
    if len(args) not in (1, 2) or args[0] not in ("erlang", "caf") or (
            args[0] == "caf" and len(args) != 2):
        print("usage: peers.py erlang [BUILD_DIR] [--quick]\n"
              "       peers.py caf BUILD_DIR [--quick]", file=sys.stderr)
        return 2
    try:
        if args[0] == "erlang":
            r = run_erlang(quick, args[1] if len(args) == 2 else None)
        else:
            r = run_caf(args[1], quick)
    except benchlib.BenchError as e:
        print(f"peers.py: FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
