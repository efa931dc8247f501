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
share) and checking what it printed (check_keys, require_tools). So do the
servers' (Proc, a program started and stopped whatever happens; free_port;
http_get; wrk).

Standard library only, so that any python3 can import it.
"""

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time


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


def bin_dir(ap, args):
    """The build directory: --bin-dir, or the one the bench binary given by
    tools/weft sits in (BUILD/tools/bench/NAME/bench_NAME); None (usage
    said) if neither."""
    if args.bin_dir is not None:
        return args.bin_dir
    if args.bench:
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(args.bench)))))
    ap.print_usage(sys.stderr)
    print("run.py: give --bin-dir BUILD", file=sys.stderr)
    return None


def title(text, quick):
    """A report's title, saying when the run was a smoke test."""
    return text + (" (QUICK: numbers meaningless)" if quick else "")


def caveat(quick):
    """What a quick run's first notes start with."""
    return "QUICK smoke run, not a measurement. " if quick else ""


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


def run_weft(args, keys=(), timeout=None):
    """Runs the bench_NAME binary of a run.py's command line (args from
    parse_args), with --quick when given; returns its JSON object, checked
    for keys, after a warning when it was built without optimisation."""
    what = os.path.basename(args.bench)
    cmd = [os.path.abspath(args.bench)] + (["--quick"] if args.quick else [])
    c = check_keys(run_json(cmd, what, timeout=timeout), keys, what)
    warn_unoptimized(c, what)
    return c


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


# ---- servers: processes, ports, HTTP ----

START_TIMEOUT = 15.0  # for a server to be ready
STOP_TIMEOUT = 5.0    # for a server to exit on SIGTERM, before SIGKILL
RUNNING = []          # the Procs not yet stopped, for stop_all
NO_SIGTERM = []       # the Procs that had to be killed (stop())


class Proc:
    """One program started by a benchmark, in its own process group, its
    stdout and stderr in files of the run's temporary directory tmp. Ready
    once its stdout matches ready_line (whose first group, if any, is its
    port) and ready_port accepts connections; raises BenchError if it exits
    or is not ready within START_TIMEOUT."""

    def __init__(self, name, cmd, tmp, ready_line=None, ready_port=None):
        self.name, self.cmd = name, cmd
        self.out = os.path.join(tmp, f"{name}.out")
        self.err = os.path.join(tmp, f"{name}.err")
        self.sigterm_ok = None
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            try:
                self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          start_new_session=True)
            except OSError as e:
                raise BenchError(f"{name}: cannot run {cmd[0]}: {e}") from e
        RUNNING.append(self)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        if ready_line is not None:
            while True:
                m = re.search(ready_line, self.stdout())
                if m:
                    self.port = int(m.group(1)) if m.groups() else None
                    break
                self._check_alive(deadline)
                time.sleep(0.02)
        if ready_port is not None:
            self.port = ready_port
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ready_port), timeout=1).close()
                    break
                except OSError:
                    self._check_alive(deadline)
                    time.sleep(0.02)

    def _check_alive(self, deadline):
        if self.p.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.p.returncode} at start-up: "
                f"{' '.join(self.cmd)}\n{self.stderr_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{self.name} not ready after {START_TIMEOUT:.0f} s: "
                             f"{' '.join(self.cmd)}\n{self.stderr_tail()}")

    def stdout(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err, errors="replace") as f:
            return f.read()

    def stderr_tail(self, lines=8):
        return "\n".join("    " + l for l in self.stderr().splitlines()[-lines:])

    def stop(self):
        """SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT.
        Sets sigterm_ok: whether SIGTERM alone ended it."""
        if self in RUNNING:
            RUNNING.remove(self)
        if self.p.poll() is not None:
            return
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(STOP_TIMEOUT)
            self.sigterm_ok = True
        except subprocess.TimeoutExpired:
            self.sigterm_ok = False
            print(f"WARNING: {self.name} (pid {self.p.pid}) still running "
                  f"{STOP_TIMEOUT:.0f} s after SIGTERM; killing it", file=sys.stderr)
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        # Whatever it left in its group (nginx's worker, say).
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stop(*procs):
    """Stops procs; those that had to be killed go to NO_SIGTERM."""
    for p in procs:
        p.stop()
        if p.sigterm_ok is False:
            NO_SIGTERM.append(p.name)


def stop_all():
    """Stops every Proc still running, the last started first."""
    for p in reversed(list(RUNNING)):
        p.stop()


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now (for the
    programs that cannot be told to pick one themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=30, host="127.0.0.1"):
    """One GET on a fresh connection to host:port, read by Content-Length
    (a server may ignore Connection: close): (status, headers, body,
    response bytes)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"Connection: close\r\n\r\n".encode("ascii"))
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            want = int(headers.get("content-length", "-1"))
            while want < 0 or len(body) < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
    except (OSError, ValueError) as e:
        raise BenchError(f"GET {host}:{port}{path}: {e}") from e
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise BenchError(f"GET {host}:{port}{path}: not an HTTP response: {data[:80]!r}")
    return status, headers, body, len(head) + 4 + len(body)



def trace_counts(port):
    """(events, lost) a traced proxy's GET /trace reports."""
    status, _, body, _ = http_get(port, "/trace")
    text = body.decode() if isinstance(body, bytes) else body
    got = dict(kv.split("=", 1) for kv in text.strip().split(";") if "=" in kv)
    if status != 200 or "events" not in got:
        raise BenchError(f"GET /trace answered {status}: {text[:200]}")
    return int(got["events"]), int(got["lost"])


def du(path):
    """Bytes of the files under path, each inode once (a flight recorder's
    dumps are links to its ring's segments)."""
    seen, total = set(), 0
    for d, _, fs in os.walk(path):
        for f in fs:
            st = os.stat(os.path.join(d, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total

def spread(xs):
    """min, median and max of xs, Nones left out (None when nothing is left)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3),
            "max": round(max(xs), 3), "pairs": len(xs)}


def parse_duration_ms(s):
    """wrk's durations ("250.00us", "1.20ms", "2s") in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s)
    if not m:
        raise ValueError(s)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[m.group(2)]


def wrk(binary, url, seconds, threads, conns, script=None, script_args=(), wrap=()):
    """One wrk --latency run: {rps, p50_ms, p99_ms, requests, non2xx,
    socket_errors}; script: a Lua file given script_args; wrap: a command
    prefix (ip netns exec NS, say)."""
    cmd = [binary, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    cmd += (["-s", script, url, "--", *script_args] if script else [url])
    cmd = [*wrap, *cmd]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=seconds + 60)
    except subprocess.SubprocessError as e:
        raise BenchError(f"wrk: {e}") from e
    out = p.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if p.returncode != 0 or not rps or not p50 or not p99 or not total:
        raise BenchError(f"wrk failed (status {p.returncode}): {' '.join(cmd)}\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockerr = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rps.group(1)), "p50_ms": parse_duration_ms(p50.group(1)),
            "p99_ms": parse_duration_ms(p99.group(1)),
            "requests": int(total.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sockerr.group(1).strip() if sockerr else None}
