"""Shared pieces of weft's benchmarks: weft next to a peer (Twisted, Erlang,
raw nng, nginx...), one row per metric.

A benchmark's run.py builds rows with row(), then calls report(), which
prints the machine and a side-by-side table and writes build/bench/NAME.json:
a JSON list with one object per row, holding metric, unit, weft, peer,
peer_value, ratio, higher_is_better, target, note and machine.

Ratio convention: how many times better weft is, whichever way the metric
goes (peer_value / weft when lower is better, weft / peer_value when higher
is), so a ratio above 1 means weft wins.

Targets: {"min_ratio": R} means weft must be at least R times better than
the peer; {"max": X} / {"min": X} bound weft's own value. A row whose peer
is a target rather than a program uses peer="target" with the bound as
peer_value.

The peers' helpers live here too: building a peer when it is stale
(newer, build, compile_erlang, which compiles an Erlang peer together with
benchlib.erl, the gen_server, median and JSON printer the Erlang peers
share) and checking what it printed (check_keys, require_tools).

Standard library only, so that any python3 can import it.
"""

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys


# Where each benchmark writes NAME.json unless told otherwise.
DEFAULT_OUTDIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "build", "bench")


class BenchError(Exception):
    """Something failed to run: no result, as opposed to a missed target."""


def machine(compiler=None):
    """What the numbers were measured on."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    cpu = value.strip()
                    break
    except OSError:
        pass
    m = {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "arch": platform.machine(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if compiler:
        m["compiler"] = compiler
    return m


def format_machine(m):
    parts = [f"{m['cpu']}", f"{m['cores']} cores"]
    if m.get("cores_usable") not in (None, m["cores"]):
        parts[-1] += f" ({m['cores_usable']} usable)"
    parts += [m["kernel"], m["arch"]]
    if m.get("compiler"):
        parts.append(m["compiler"])
    # Whatever a benchmark added (the peer's version, say).
    known = {"cpu", "cores", "cores_usable", "arch", "kernel", "python", "compiler"}
    parts += [f"{k} {v}" for k, v in m.items() if k not in known and v is not None]
    return "machine: " + ", ".join(parts)


def ratio(weft, peer_value, higher_is_better):
    """How many times better weft is; None when it cannot be said (no peer,
    or a zero that would make it infinite)."""
    if weft is None or peer_value is None:
        return None
    num, den = (weft, peer_value) if higher_is_better else (peer_value, weft)
    if den == 0:
        return None
    return num / den


def check_target(r):
    """'ok', 'MISSED', or None when the row has no target (or no value)."""
    t = r.get("target")
    if not t or r["weft"] is None:
        return None
    ok = True
    if "min_ratio" in t:
        ok = ok and r["ratio"] is not None and r["ratio"] >= t["min_ratio"]
    if "max" in t:
        ok = ok and r["weft"] <= t["max"]
    if "min" in t:
        ok = ok and r["weft"] >= t["min"]
    return "ok" if ok else "MISSED"


def _round(v):
    return None if v is None else round(v, 3)


def row(metric, unit, weft, peer, peer_value, higher_is_better=False, target=None, note=None):
    """One result. weft and peer_value are numbers (or None when missing);
    peer names what weft is compared with (a program and version, "target",
    or None)."""
    r = {
        "metric": metric,
        "unit": unit,
        "weft": weft,
        "peer": peer,
        "peer_value": peer_value,
        "ratio": _round(ratio(weft, peer_value, higher_is_better)),
        "higher_is_better": higher_is_better,
        "target": target,
        "note": note,
    }
    return r


def format_target(t, higher_is_better):
    if not t:
        return "-"
    parts = []
    if "min_ratio" in t:
        parts.append(f">={_num(t['min_ratio'])}x peer")
    if "max" in t:
        parts.append(f"<={_num(t['max'])}")
    if "min" in t:
        parts.append(f">={_num(t['min'])}")
    return ", ".join(parts)


def _num(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def format_table(rows):
    """The rows side by side, then their notes as numbered footnotes."""
    head = ["metric", "unit", "weft", "peer", "peer value", "ratio", "target", "verdict"]
    lines, notes = [], []
    for r in rows:
        metric = r["metric"]
        if r.get("note"):
            notes.append(r["note"])
            metric += f" [{len(notes)}]"
        verdict = check_target(r) or "-"
        lines.append([
            metric,
            r["unit"],
            _num(r["weft"]),
            r["peer"] or "-",
            _num(r["peer_value"]),
            "-" if r["ratio"] is None else _num(r["ratio"]) + "x",
            format_target(r.get("target"), r["higher_is_better"]),
            verdict,
        ])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    numeric = {2, 4, 5}

    def fmt(cells):
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    if notes:
        out.append("")
        out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    out.append("")
    out.append("ratio: how many times better weft is (>1: weft wins)")
    return "\n".join(out)


def write_json(name, rows, outdir, machine_info=None):
    """Writes OUTDIR/NAME.json (a list of row objects) and returns its path."""
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{name}.json")
    out = []
    for r in rows:
        o = dict(r)
        if machine_info is not None:
            o["machine"] = machine_info
        out.append(o)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def report(name, rows, outdir, machine_info, title=None, file=sys.stdout):
    """Prints the machine and the table, writes the JSON; returns the names
    of the metrics that missed their target."""
    print(title or f"bench {name}", file=file)
    print(format_machine(machine_info), file=file)
    print(file=file)
    print(format_table(rows), file=file)
    path = write_json(name, rows, outdir, machine_info)
    missed = [r["metric"] for r in rows if check_target(r) == "MISSED"]
    print(file=file)
    if missed:
        print(f"MISSED {len(missed)} target(s): {', '.join(missed)}", file=file)
    else:
        print("all targets met", file=file)
    print(f"wrote {path}", file=file)
    return missed


def parse_args(name, description, quick_help="small N: a smoke test"):
    """The command line of a run.py: BENCH [OUTDIR] [--quick], BENCH being
    the built bench_NAME (tools/weft's way of naming it)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("bench", help=f"path to the built bench_{name} binary")
    ap.add_argument("outdir", nargs="?", default=DEFAULT_OUTDIR,
                    help=f"where {name}.json goes (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    return ap.parse_intermixed_args()  # --quick may come anywhere


def title(text, quick):
    """A report's title, saying when the run was a smoke test."""
    return text + (" (QUICK: numbers meaningless)" if quick else "")


def warn_unoptimized(c, binary):
    """Says on stderr when the bench's output c says it was built without
    optimisation."""
    if not c.get("optimized", True):
        print(f"warning: {binary} was built without optimisation; "
              "use a Release build for real numbers", file=sys.stderr)


def finish(name, rows, outdir, machine_info, title):
    """report(), as a run.py's exit status: 0, or 1 when the JSON could not
    be written. A missed target is not a failure (the table says MISSED)."""
    try:
        report(name, rows, outdir, machine_info, title=title)
    except OSError as e:
        print(f"bench {name}: FAILED to write results: {e}", file=sys.stderr)
        return 1
    return 0


def run_json(cmd, what=None, timeout=None):
    """Runs cmd (a list) and returns the JSON object it prints on stdout.
    Its stderr passes through; raises BenchError if it cannot be run, fails,
    or prints something that is not JSON."""
    what = what or os.path.basename(cmd[0])
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"{what}: cannot run {' '.join(cmd)}: {e}") from e
    if p.returncode != 0:
        raise BenchError(f"{what}: {' '.join(cmd)} exited with status {p.returncode}")
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise BenchError(f"{what}: output is not JSON: {e}") from e


def check_keys(result, keys, what):
    """Returns result, or raises BenchError naming the keys it lacks."""
    missing = [k for k in keys if k not in result]
    if missing:
        raise BenchError(f"{what}: output lacks {', '.join(missing)}")
    return result


def require_tools(what, tools, package):
    """Raises BenchError when one of the commands is not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise BenchError(f"{what}: {tool} not found (apt-get install -y {package})")


def newer(target, *sources):
    """True when target is missing or older than any of the sources."""
    try:
        t = os.path.getmtime(target)
    except OSError:
        return True
    return any(os.path.getmtime(s) > t for s in sources)


def build(cmd, what, timeout=300):
    """Runs a build command (cmd, a list); raises BenchError with its output
    if it cannot be run or fails."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"{what}: cannot run {' '.join(cmd)}: {e}") from e
    if p.returncode != 0:
        raise BenchError(
            f"{what}: {' '.join(cmd)} exited with status {p.returncode}:\n{p.stdout.strip()}")


ERLANG_LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchlib.erl")


def compile_erlang(src, out, what):
    """Compiles the Erlang peer src with benchlib.erl (the modules it shares
    with the other peers) into the directory out, unless both are built."""
    module = os.path.splitext(os.path.basename(src))[0]
    beams = [os.path.join(out, f"{m}.beam") for m in (module, "benchlib")]
    if any(newer(b, src, ERLANG_LIB) for b in beams):
        build(["erlc", "-o", out, src, ERLANG_LIB], what)
