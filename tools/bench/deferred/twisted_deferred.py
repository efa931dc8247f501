#!/usr/bin/python3
"""The Twisted side of the Deferred benchmark: bench_deferred.c's three
operations, with the same method (calibrate to ~200 ms per sample, median and
minimum of 7 samples, ns per op), printed as the same JSON keys.

Run it with /usr/bin/python3: Twisted is Debian's python3-twisted, which only
that interpreter sees. --quick runs few iterations (a smoke test).

Like the C side, each op is a whole life cycle; "release" is dropping the last
reference, which CPython does at once by reference counting. Callbacks get
their extra argument through addCallback's args, as the C ones get arg, so
neither side pays for building a closure per op.
"""

import argparse
import json
import platform
import sys
import time

from twisted.internet.defer import Deferred, maybeDeferred
import twisted

SAMPLES = 7
TARGET_NS = 200_000_000  # per sample, as in bench_deferred.c
CALIBRATE_NS = 40_000_000
QUICK_ITERS = 1000


def add_one(r):
    return r + 1


# The last callback adds into a sink so that each run can prove every op ran
# to the end with the right value (the C side does the same).
def add_one_sink(r, sink):
    r += 1
    sink[0] += r
    return r


def return_inner(_, inner):
    return inner


def forty_one():
    return 41


def run_create_3cb_fire(n, sink):
    for _ in range(n):
        d = Deferred()
        d.addCallback(add_one)
        d.addCallback(add_one)
        d.addCallback(add_one_sink, sink)
        d.callback(0)
        del d


def run_chained(n, sink):
    for _ in range(n):
        outer = Deferred()
        inner = Deferred()
        outer.addCallback(return_inner, inner)
        outer.addCallback(add_one_sink, sink)
        outer.callback(0)
        inner.callback(41)
        del outer, inner


def run_maybe(n, sink):
    for _ in range(n):
        d = maybeDeferred(forty_one)
        d.addCallback(add_one_sink, sink)
        del d


BENCHES = [
    ("create_3cb_fire", run_create_3cb_fire, 3),
    ("chained", run_chained, 42),
    ("maybe", run_maybe, 42),
]


def timed(fn, per_op, n):
    sink = [0]
    t0 = time.monotonic_ns()
    fn(n, sink)
    t = time.monotonic_ns() - t0
    if sink[0] != n * per_op:
        raise SystemExit(f"twisted_deferred: callbacks produced {sink[0]}, expected {n * per_op}")
    return t


def calibrate(fn, per_op):
    # As in bench_deferred.c: the faster of two runs at the final n, so that
    # one run slowed by a neighbour does not make every sample short; the
    # calibration runs double as the warm-up.
    n = 256
    while (t := timed(fn, per_op, n)) < CALIBRATE_NS:
        n *= 2
    t = min(t, timed(fn, per_op, n))
    return int(n * TARGET_NS / t) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few iterations: a smoke test")
    args = ap.parse_args()

    out = {
        "twisted": twisted.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "quick": args.quick,
        "samples": SAMPLES,
    }
    for name, fn, per_op in BENCHES:
        n = QUICK_ITERS if args.quick else calibrate(fn, per_op)
        samples = [timed(fn, per_op, n) / n for _ in range(SAMPLES)]
        ordered = sorted(samples)
        out[f"{name}_ns"] = round(ordered[SAMPLES // 2], 3)
        out[f"{name}_min_ns"] = round(ordered[0], 3)
        out[f"{name}_samples_ns"] = [round(s, 3) for s in samples]
        out[f"{name}_iterations"] = n
        # Python heap allocations are not comparable with malloc calls.
        out[f"{name}_allocs"] = None
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
