#!/bin/sh
# recorded.sh WEFT_VIEW POETRY_PROXY POETRY_SERVER POEMS OUTDIR: records a
# real trace of the caching poetry proxy (a slow upstream, a MISS through
# listener, cache, fetcher and renderer, then a request that fails in the
# renderer), renders it with weft-view, and loads the page in headless
# Chromium: after its scripts ran there must be a lane for each of the four
# actors and the outside world, an arrow for every message the trace file
# records for the MISS, and the failure. The screenshot goes to
# OUTDIR/recorded.png. Without Chromium: skipped, except with CI=true.
set -eu
view=$1 proxy=$2 server=$3 poems=$4 out=$5
chromium=
for c in ${CHROMIUM:-/usr/bin/chromium /usr/bin/chromium-browser}; do
    if [ -x "$c" ]; then chromium=$c; break; fi
done
if [ -z "$chromium" ]; then
    [ "${CI:-}" = "true" ] && { echo "FAIL: Chromium is not installed, and CI=true"; exit 1; }
    echo "SKIP: Chromium is not installed (apt-get install chromium)"
    exit 77
fi
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-recorded.XXXXXX")
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_for() { # wait_for FILE PATTERN: up to 10 s
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 200 ] || fail "no '$2' in $1: $(cat "$1" "$tmp"/*.err 2>/dev/null | tail -5)"
        sleep 0.05
    done
}

"$server" --port 0 --poems "$poems" --slow --delay-ms 20 --chunk 256 >"$tmp/up.out" 2>"$tmp/up.err" &
pids="$pids $!"
wait_for "$tmp/up.out" "listening on"
up=$(sed -n 's/^listening on \(.*\)$/\1/p' "$tmp/up.out")
# Port 0 would do for the listener, but then nobody could tell which it got:
# try a few free-looking ports.
port=$((20000 + $$ % 20000))
"$proxy" --send-name --upstream "poetry://$up" --http "127.0.0.1:$port" --poetry 127.0.0.1:0 --faults \
    --trace "file=$tmp/proxy.wftr;ring=$tmp/ring;sample=1" >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
proxy_pid=$!
pids="$pids $proxy_pid"
wait_for "$tmp/proxy.out" "poetry proxy:"

http() { # http PATH: the status and the traceparent header
    /usr/bin/python3 - "$port" "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=20)
    print(r.status, r.headers.get("traceparent", ""))
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("traceparent", ""))
EOF
}
i=0
until http /healthz >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 200 ] || fail "the proxy did not answer: $(tail -5 "$tmp/proxy.err")"
    sleep 0.05
done
set -- $(http /poems/ozymandias)
[ "$1" = 200 ] || fail "the MISS answered $1"
miss=$(echo "$2" | cut -d- -f2)
[ ${#miss} -eq 32 ] || fail "no traceparent on the answer: '$2'"
set -- $(http "/poems/the_raven?fault=render_before")
[ "$1" = 500 ] || fail "the injected renderer fault answered $1"
failed=$(echo "$2" | cut -d- -f2)
# The 500 reached a client: the flight recorder keeps a dump named by its
# trace id, without being asked.
i=0
until dump=$(ls -d "$tmp"/ring/dumps/*-"$failed"-proxy 2>/dev/null) && [ -n "$dump" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "no dump for the failed request in $tmp/ring/dumps: $(ls "$tmp/ring/dumps")"
    sleep 0.05
done
kill "$proxy_pid"
wait "$proxy_pid" 2>/dev/null || true
# The dump holds the failed request's whole path, as the viewer shows it.
"$view" --trace "$failed" --summary "$dump" >"$tmp/dump.txt" 2>"$tmp/dump.err" ||
    fail "weft-view cannot read the dump: $(cat "$tmp/dump.err")"
for a in listener cache renderer; do
    grep -q "^  $a  *proxy" "$tmp/dump.txt" || fail "the dump has no $a in the failed request: $(cat "$tmp/dump.txt")"
done
"$view" --jsonl "$tmp/proxy.jsonl" "$tmp/proxy.wftr" || fail "weft-view --jsonl failed"

# What the recording holds for the MISS: the viewer must draw all of it.
grep -q "\"trace\":\"$miss\"" "$tmp/proxy.jsonl" || fail "the MISS is not in the trace file"
for a in listener cache fetcher renderer; do
    grep "\"trace\":\"$miss\"" "$tmp/proxy.jsonl" | grep -q "\"ev\":\"start\".*\"actor\":\"$a\"\|\"ev\":\"offload_start\".*\"actor\":\"$a\"\|\"ev\":\"recv\".*\"actor\":\"$a\"" ||
        fail "the recording has no run of $a in the MISS"
done
sends=$(grep "\"trace\":\"$miss\"" "$tmp/proxy.jsonl" | grep -c '"ev":"send"')
answers=$(grep "\"trace\":\"$miss\"" "$tmp/proxy.jsonl" | grep -c '"ev":"reply"\|"ev":"fail"')

"$view" --html "$out/recorded.html" "$tmp/proxy.wftr" || fail "weft-view failed"
profile="$tmp/profile"
browse() {
    url=$1
    shift
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$profile" "$@" "$url" 2>>"$tmp/chromium.log"
}
browse "file://$out/recorded.html#trace=$miss" --dump-dom >"$out/recorded-dom.html" ||
    fail "Chromium failed: $(tail -5 "$tmp/chromium.log")"
for a in listener cache fetcher renderer; do
    grep -q "<g class=\"lane\" data-lane=\"$a@proxy\"" "$out/recorded-dom.html" || fail "no lane for $a"
done
lanes=$(grep -o '<g class="lane' "$out/recorded-dom.html" | wc -l)
[ "$lanes" -eq 5 ] || fail "$lanes lanes, expected the four actors and the outside world"
arrows=$(grep -o '<g class="arrow ' "$out/recorded-dom.html" | wc -l)
# Each send and each answer is an arrow, plus the request in and the 200 out.
want=$((sends + answers + 1))
[ "$arrows" -eq "$want" ] || fail "$arrows arrows for the MISS, expected $want ($sends sends, $answers answers)"

browse "file://$out/recorded.html#trace=$failed&failure=0" --dump-dom >"$out/recorded-fail.html" ||
    fail "Chromium failed"
grep -q 'class="failure"' "$out/recorded-fail.html" || fail "the renderer's failure is not marked"
grep -q 'injected' "$out/recorded-fail.html" || fail "the failure's text is not shown"

rm -f "$out/recorded.png"
browse "file://$out/recorded.html#trace=$miss" --screenshot="$out/recorded.png" \
    --window-size=1400,900 >/dev/null || fail "Chromium's screenshot failed"
size=$(wc -c <"$out/recorded.png")
[ "$size" -gt 20000 ] || fail "the screenshot is $size bytes"
echo "ok: $lanes lanes, $arrows arrows, the failure shown; screenshot $out/recorded.png"
