#!/usr/bin/python3
"""The Erlang peer of `tools/weft bench transport`: distributed
gen_server:call between two Erlang nodes on loopback.

    run_erlang_dist(quick, build_dir=None) -> dict

Compiles peer_erlang_dist.erl and benchlib.erl (into BUILD_DIR/peer_erlang_dist, or a
temporary directory), then, all on 127.0.0.1:

  1. starts a private epmd on a free port (epmd -port P -address 127.0.0.1),
     so that a system epmd is neither needed nor touched;
  2. starts the server node (erl -name weftsrvPID@127.0.0.1 ... main server)
     with ERL_EPMD_PORT=P and -start_epmd false (no node starts an epmd of
     its own), and waits for its "ready";
  3. runs the client node (... main client SERVER [quick]) and reads its JSON;
  4. closes the server's standard input (it halts), stops epmd, and kills
     whatever of the three is left: each runs in its own process group,
     which is swept with SIGKILL at the end, and each gets SIGKILL if this
     Python process dies (PR_SET_PDEATHSIG).

The nodes share a random cookie (-setcookie) and get a temporary HOME, so no
~/.erlang.cookie is read or written. Everything is bounded in time.

Keys of the result: version, schedulers, samples, msg_bytes, connect_ms,
dist_1_rps, dist_1_p50_us, dist_1_p99_us, dist_1_rps_samples, dist_1_n,
and the same for dist_64 (64 concurrent callers). Raises
benchlib.BenchError with a readable message when something fails.

Command line (prints the JSON):
    /usr/bin/python3 tools/bench/transport/peer_dist.py [BUILD_DIR] [--quick]

Needs Debian's erlang-base (erl, erlc, epmd). Standard library only.
"""

import ctypes
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import benchlib  # noqa: E402

ERL_SRC = os.path.join(HERE, "peer_erlang_dist.erl")
CLIENT_TIMEOUT = 300  # seconds; a full run takes well under 30
START_TIMEOUT = 20    # for epmd and the server node to come up
STOP_TIMEOUT = 5      # for a process to exit once told, before SIGKILL

KEYS = ("version", "dist_1_rps", "dist_1_p50_us", "dist_64_rps", "dist_64_p50_us")

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # best effort: the process groups are swept anyway


def _spawn(cmd, env, what, **kw):
    try:
        return subprocess.Popen(cmd, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent, **kw)
    except OSError as e:
        raise benchlib.BenchError(f"{what}: cannot run {' '.join(cmd)}: {e}") from e


def _stop(p, group_too=True):
    """Waits STOP_TIMEOUT for p, then kills it; sweeps its process group."""
    if p is None:
        return
    try:
        p.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if group_too:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_epmd(port, proc, deadline):
    """True once epmd answers a NAMES request on 127.0.0.1:port (a bare
    connection would make it log a partial packet); False if proc exits."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"\x00\x01n")  # length 1, NAMES_REQ (110)
                if len(s.recv(4)) > 0:
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def _read_line(proc, deadline):
    """The first line of proc's stdout by deadline, or None."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buf += chunk
    finally:
        sel.close()
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def run_erlang_dist(quick, build_dir=None):
    what = "erlang dist peer"
    benchlib.require_tools(what, ("erl", "erlc", "epmd"), "erlang-base")
    tmp = tempfile.mkdtemp(prefix="weft-bench-erldist-")
    out = tmp if build_dir is None else os.path.join(os.path.abspath(build_dir),
                                                     "peer_erlang_dist")
    home = os.path.join(tmp, "home")
    epmd = server = None
    try:
        os.makedirs(out, exist_ok=True)
        os.makedirs(home, exist_ok=True)
        benchlib.compile_erlang(ERL_SRC, out, what)

        # 1. A private epmd (a port taken meanwhile: try another).
        for _ in range(3):
            port = benchlib.free_port()
            epmd = _spawn(["epmd", "-port", str(port), "-address", "127.0.0.1"],
                          dict(os.environ), f"{what} (epmd)",
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            if _wait_epmd(port, epmd, time.monotonic() + START_TIMEOUT):
                break
            epmd.kill()
            _stop(epmd)
            epmd = None
        if epmd is None:
            raise benchlib.BenchError(f"{what}: epmd did not start on 127.0.0.1")

        env = dict(os.environ, HOME=home, ERL_EPMD_PORT=str(port))
        cookie = "weftbench" + secrets.token_hex(8)
        tag = str(os.getpid())
        srv_name = f"weftsrv{tag}@127.0.0.1"
        common = ["erl", "-noshell", "-start_epmd", "false", "-setcookie", cookie,
                  "-kernel", "inet_dist_use_interface", "{127,0,0,1}", "-pa", out]

        # 2. The server node, until its standard input closes.
        server = _spawn(common + ["-name", srv_name, "-run", "peer_erlang_dist", "main",
                                  "server"], env, f"{what} (server)",
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = _read_line(server, time.monotonic() + START_TIMEOUT)
        if line != "ready":
            raise benchlib.BenchError(
                f"{what}: the server node did not start (said {line!r}, status "
                f"{server.poll()})")

        # 3. The client node: the measurement.
        cmd = common + ["-name", f"weftcli{tag}@127.0.0.1", "-run", "peer_erlang_dist",
                        "main", "client", srv_name] + (["quick"] if quick else [])
        client = _spawn(cmd, env, f"{what} (client)", stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE)
        try:
            stdout, _ = client.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            client.kill()
            client.communicate()
            raise benchlib.BenchError(f"{what}: the client node took over {CLIENT_TIMEOUT} s")
        finally:
            _stop(client)
        if client.returncode != 0:
            raise benchlib.BenchError(f"{what}: the client node exited with status "
                                      f"{client.returncode}")
        try:
            result = json.loads(stdout)
        except ValueError as e:
            raise benchlib.BenchError(f"{what}: output is not JSON: {e}") from e
    finally:
        # 4. Everything down, whatever happened.
        if server is not None:
            try:
                server.stdin.close()
            except OSError:
                pass
            _stop(server)
            server.stdout.close()
        if epmd is not None:
            epmd.terminate()
            _stop(epmd)
        shutil.rmtree(tmp, ignore_errors=True)
    if server is not None and server.returncode not in (0, -signal.SIGKILL):
        raise benchlib.BenchError(f"{what}: the server node exited with status "
                                  f"{server.returncode}")
    return benchlib.check_keys(result, KEYS, what)


def main(argv):
    args = [a for a in argv if a != "--quick"]
    quick = len(args) != len(argv)
    if len(args) > 1:
        print("usage: peer_dist.py [BUILD_DIR] [--quick]", file=sys.stderr)
        return 2
    try:
        r = run_erlang_dist(quick, args[0] if args else None)
    except benchlib.BenchError as e:
        print(f"peer_dist.py: FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
