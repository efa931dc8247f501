#!/usr/bin/env bash
# relay.sh WEFT_RELAY: weft-relay (tools/cluster/relay.c), the slow and
# lossy link of the multi-host fault tour, on loopback. Bad options are
# refused naming the option; the delay is applied each way (measured
# against the direct round trip); bytes arrive intact and in order both
# ways; a close on either side reaches the other after what was sent
# before it; a stall holds a read for the retransmission timeout; a
# receiver that does not read bounds what the relay holds; --control
# changes the link of an open connection; --for-ms and SIGTERM end the
# relay with its counters. Every wait is bounded.
set -uo pipefail
relay=$1
fail=0
check() { # check WHAT COMMAND...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}

# refused OPTIONS... WORDS: exit 2 and an error line holding WORDS.
refused() {
    local words=${*: -1} err
    err=$(timeout 5 "$relay" "${@:1:$#-1}" 2>&1 >/dev/null)
    [ $? -eq 2 ] && grep -q -- "$words" <<<"$err" || { echo "   got: $err"; return 1; }
}
a=(--listen 127.0.0.1:0 --to 127.0.0.1:9)
check "no --to" refused --listen 127.0.0.1:0 "--listen and --to are both needed"
check "a host name is no address" refused --listen localhost:1 --to 127.0.0.1:9 "--listen localhost:1"
check "port 0 is no target" refused --listen 127.0.0.1:0 --to 127.0.0.1:0 "--to 127.0.0.1:0"
check "a delay that is no number" refused "${a[@]}" --delay-ms 10x "--delay-ms 10x"
check "a negative delay" refused "${a[@]}" --delay-ms -5 "--delay-ms -5"
check "a probability over 1" refused "${a[@]}" --stall-prob 1.5 "--stall-prob 1.5"
check "jitter beyond the delay" refused "${a[@]}" --delay-ms 5 --jitter-ms 6 "jitter-ms must not exceed"
check "a tiny buffer" refused "${a[@]}" --buffer 10 "--buffer 10"
check "an unknown option" refused "${a[@]}" --loss 3 "unknown option --loss"
check "a missing value" refused "${a[@]}" --stall-ms "--stall-ms wants a value"
check "a stray argument" refused "${a[@]}" extra "unexpected argument extra"
err=$(timeout 5 "$relay" "${a[@]}" --to-netns wf-no-such-ns 2>&1)
rc=$?
check "an unknown namespace stops it before it listens (exit $rc)" \
    bash -c "[ $rc -eq 1 ] && grep -q 'wf-no-such-ns' <<<'$err' && ! grep -q listening <<<'$err'"

timeout 120 python3 - "$relay" <<'EOF'
import atexit, hashlib, os, re, signal, socket, subprocess, sys, threading, time

relay_bin = sys.argv[1]
failed = False

def check(what, ok, detail=""):
    global failed
    print(("ok: " if ok else "FAILED: ") + what + (" (" + detail + ")" if detail else ""))
    failed |= not ok

def server(mode):
    """A server on 127.0.0.1:0: echo (back what it reads; closes when its
    client does), hello (sends hello, closes), sink (never reads). Returns
    (port, events): events gets (time, what) of each connection's end."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    events = []
    def serve(c):
        if mode == "hello":
            c.sendall(b"hello")
            c.close()
            return
        if mode == "sink":
            time.sleep(30)
            return
        got = b""
        while True:
            b = c.recv(65536)
            if not b:
                events.append((time.monotonic(), got))
                c.close()
                return
            got = (got + b)[-16:]
            c.sendall(b)
    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1], events

started = []  # every relay, killed at exit however the test ends

@atexit.register
def kill_relays():
    for p in started:
        if p.poll() is None:
            p.kill()

class Relay:
    def __init__(self, port, *args, control=False):
        self.p = subprocess.Popen([relay_bin, "--listen", "127.0.0.1:0", "--to",
                                   "127.0.0.1:%d" % port, "--for-ms", "60000", *args]
                                  + (["--control"] if control else []),
                                  stdin=subprocess.PIPE if control else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(self.p)
        line = self.p.stdout.readline()
        m = re.match(r"listening on 127.0.0.1:(\d+)", line)
        assert m, "no listening line: %r" % line
        self.port = int(m.group(1))
    def tell(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()
    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, err = self.p.communicate(timeout=10)
        return self.p.returncode, out, err

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def rtt(s):
    t = time.monotonic()
    s.sendall(b"x")
    assert s.recv(16) == b"x"
    return (time.monotonic() - t) * 1000

echo_port, echo_events = server("echo")
direct = connect(echo_port)
base = min(rtt(direct) for _ in range(5))
direct.close()

# The delay, each way.
r = Relay(echo_port, "--delay-ms", "120", "--jitter-ms", "10")
s = connect(r.port)
rtts = [rtt(s) for _ in range(5)]
check("a round trip through a 120 ms link takes 2 x 120 +- 2 x 10 ms",
      all(220 <= x < 240 + 20 + 150 for x in rtts),
      "direct %.1f ms, through it %s ms" % (base, " ".join("%.0f" % x for x in rtts)))

# Bytes intact and in order both ways, while both ways are busy.
data = os.urandom(3 << 20)
got = bytearray()
def send():
    i = 0
    while i < len(data):
        n = 1 + (i * 7919) % 70000
        s.sendall(data[i:i + n])
        i += n
t = threading.Thread(target=send)
t.start()
while len(got) < len(data):
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
t.join()
check("3 MiB echoed through it intact and in order", bytes(got) == data,
      "%d of %d bytes back, sha256 %s" % (len(got), len(data),
                                           "equal" if bytes(got) == data else "differs"))

# A client's close reaches the server after what it sent, and closes the
# client's side too.
n0 = len(echo_events)
t0 = time.monotonic()
s.sendall(b"last words")
s.shutdown(socket.SHUT_WR)
s.settimeout(10)
while s.recv(65536):
    pass
closed = (time.monotonic() - t0) * 1000
s.close()
deadline = time.monotonic() + 5
while len(echo_events) == n0 and time.monotonic() < deadline:
    time.sleep(0.01)
ok = len(echo_events) > n0 and echo_events[-1][1].endswith(b"last words")
seen = (echo_events[-1][0] - t0) * 1000 if ok else -1
check("the client's close reached the server after its last bytes, 120 ms later",
      ok and 110 <= seen < 600, "after %.0f ms" % seen)
check("and the relay closed the client's side", 110 <= closed < 600, "after %.0f ms" % closed)
code, out, err = r.stop()
check("SIGTERM ends it, exit 0, with its counters", code == 0 and "relay: connections=1" in out,
      out.strip())

# A server's close reaches the client after its data.
hello_port, _ = server("hello")
r = Relay(hello_port, "--delay-ms", "80", control=True)
s = connect(r.port)
t0 = time.monotonic()
got = b""
while True:
    b = s.recv(100)
    if not b:
        break
    got += b
closed = (time.monotonic() - t0) * 1000
check("the server's bytes, then its close, 80 ms later", got == b"hello" and 70 <= closed < 500,
      "%r, closed after %.0f ms" % (got, closed))
# Both sides close at once: both ends held by a stall come due together;
# the first passed on closes the connection, and the relay goes on.
for _ in range(5):
    r.tell("stall 100")
    s = connect(r.port)
    s.sendall(b"bye")
    s.shutdown(socket.SHUT_WR)
    while s.recv(100):
        pass
    s.close()
s = connect(r.port)
got = s.recv(100)
s.close()
code, out, _ = r.stop()
check("both sides closing at once, five times: the relay goes on, and stops cleanly",
      got == b"hello" and code == 0 and "connections=7 open=0" in out, out.strip())

# Stalls: every read lost once holds it the retransmission timeout more.
r = Relay(echo_port, "--delay-ms", "50", "--stall-prob", "1", "--stall-ms", "200")
s = connect(r.port)
x = rtt(s)
check("with every segment lost, a round trip is 2 x (50 + 200) ms", 490 <= x < 800, "%.0f ms" % x)
s.close()
code, out, _ = r.stop()
stalls = int(re.search(r"stalls=(\d+)", out).group(1))
check("the stalls are counted", stalls >= 2, "stalls=%d" % stalls)

# --control changes an open connection's link; a bad command changes nothing.
r = Relay(echo_port, control=True)
s = connect(r.port)
fast = rtt(s)
reply = r.tell("delay-ms=150 jitter-ms=0")
slow = rtt(s)
check("delay-ms=150 told to a running relay slows its open connection",
      reply.startswith("ok delay-ms=150") and fast < 100 and 300 <= slow < 500,
      "%s; %.0f ms, then %.0f ms" % (reply, fast, slow))
bad = r.tell("delay-ms=5 jitter-ms=9")
bad2 = r.tell("stall-prob=2")
check("a bad command is refused and changes nothing",
      bad.startswith("error:") and bad2.startswith("error: stall-prob") and
      r.tell("delay-ms=0").startswith("ok delay-ms=0 jitter-ms=0"), bad + "; " + bad2)
hold = r.tell("stall 400")
x = rtt(s)
check("stall 400 holds every byte 400 ms", hold.startswith("ok") and 390 <= x < 700, "%.0f ms" % x)
s.close()
r.stop()

# Backpressure: a receiver that never reads; the relay stops reading
# from the sender instead of holding more than --buffer (+ one read).
sink_port, _ = server("sink")
r = Relay(sink_port, "--buffer", "16384", control=True)
s = connect(r.port)
s.setblocking(False)
sent, idle_since = 0, time.monotonic()
while time.monotonic() - idle_since < 1 and sent < (256 << 20):
    try:
        sent += s.send(b"\0" * 65536)
        idle_since = time.monotonic()
    except BlockingIOError:
        time.sleep(0.01)
stats = r.tell("stats")
held = int(re.search(r"max-held=(\d+)", stats).group(1))
paused = int(re.search(r"paused=(\d+)", stats).group(1))
check("a receiver that does not read: the relay holds at most its buffer and one read",
      sent < (256 << 20) and held <= 16384 + 65536 and paused >= 1,
      "the sender got %d bytes out before it blocked; relay: %s" % (sent, stats))
s.close()
r.stop()

# --for-ms ends it by itself.
t0 = time.monotonic()
p = subprocess.run([relay_bin, "--listen", "127.0.0.1:0", "--to", "127.0.0.1:%d" % echo_port,
                    "--for-ms", "300"], capture_output=True, text=True, timeout=10)
took = (time.monotonic() - t0) * 1000
check("--for-ms 300 ends it after 300 ms, exit 0", p.returncode == 0 and 290 <= took < 2000 and
      "relay: connections=0" in p.stdout, "%.0f ms, exit %d" % (took, p.returncode))
sys.exit(1 if failed else 0)
EOF
[ $? -eq 0 ] || fail=1
exit $fail
