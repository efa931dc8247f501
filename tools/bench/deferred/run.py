#!/usr/bin/python3
"""bench deferred: weft's Deferred against Twisted's.

usage: /usr/bin/python3 tools/bench/deferred/run.py BENCH_DEFERRED [OUTDIR] [--quick]

Runs the C bench (bench_deferred) and then twisted_deferred.py, one after
the other so that neither steals the other's core, prints the machine and
the comparison with the issue's targets (weft at least 30x faster than
Twisted on each time metric; create + 3 callbacks + fire in at most one heap
allocation), and writes OUTDIR/deferred.json (default: build/bench under the
source tree).

Exit status: 0 when everything ran, even if a target was missed (the table
says MISSED); 1 when something failed to run; 2 on bad usage.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

# Twisted is Debian's python3-twisted, seen only by the system interpreter.
TWISTED_PYTHON = "/usr/bin/python3"
MIN_RATIO = 30
MAX_ALLOCS = 1

METRICS = [
    ("create_3cb_fire", "new + 3 callbacks + fire + release, per op"),
    ("chained", "per outer+inner pair: outer's callback returns the unfired inner, "
     "outer fired, inner fired, outer's next callback sees its value, both released"),
    ("maybe", "wf_maybe / maybeDeferred on a plain function returning an int, "
     "plus one callback and release, per op"),
]


def build_rows(c, py, quick):
    twisted = f"twisted {py.get('twisted', '?')}"
    caveat = benchlib.caveat(quick)
    rows = []
    for name, what in METRICS:
        note = (f"{caveat}{what}. Median of {c['samples']} samples; "
                f"min weft {c[name + '_min_ns']:.1f} ns, twisted {py[name + '_min_ns']:.0f} ns.")
        rows.append(benchlib.row(
            f"{name}_ns", "ns/op", c[f"{name}_ns"], twisted, py[f"{name}_ns"],
            higher_is_better=False, target={"min_ratio": MIN_RATIO}, note=note))
    for name, _ in METRICS:
        allocs = c[f"{name}_allocs"]
        if name == "create_3cb_fire":
            rows.append(benchlib.row(
                f"{name}_allocs", "allocs/op", allocs, "target", MAX_ALLOCS,
                higher_is_better=False, target={"max": MAX_ALLOCS},
                note="malloc+realloc calls through wf_replace_allocator; the issue's target "
                     "is at most 1. Not compared with Twisted: Python objects are not "
                     "malloc calls."))
        else:
            floor = "2 (two deferreds)" if name == "chained" else "1 (one deferred)"
            rows.append(benchlib.row(
                f"{name}_allocs", "allocs/op", allocs, None, None, higher_is_better=False,
                note=f"malloc+realloc calls; no target in the issue, shown to catch "
                     f"regressions; the floor is {floor}."))
    return rows


def main():
    args = benchlib.parse_args("deferred", "weft's Deferred against Twisted's",
                               "few iterations: a smoke test")

    try:
        c = benchlib.run_weft(args)
        py = benchlib.run_json(
            [TWISTED_PYTHON, os.path.join(HERE, "twisted_deferred.py")]
            + (["--quick"] if args.quick else []), "twisted_deferred.py")
        rows = build_rows(c, py, args.quick)
    except benchlib.BenchError as e:
        print(f"bench deferred: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyError as e:
        print(f"bench deferred: FAILED: a bench's output lacks {e}", file=sys.stderr)
        return 1

    m = benchlib.machine(compiler=c.get("compiler"))
    m["peer"] = f"Twisted {py.get('twisted')} on {py.get('python')}"
    return benchlib.finish("deferred", rows, args.outdir, m,
                           benchlib.title("bench deferred: weft vs Twisted", args.quick))


if __name__ == "__main__":
    sys.exit(main())
