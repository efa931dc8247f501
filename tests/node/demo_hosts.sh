#!/usr/bin/env bash
# The multi-host tour as a test: tools/cluster/demo-hosts --faults on the
# build's binaries, four network namespaces, and what it printed judged.
# Needs root and network namespaces; without them it says why and is
# skipped (exit 77), never green.
#
# usage: demo_hosts.sh BUILD_DIR
set -uo pipefail
build=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/weft-demo-hosts.XXXXXX")
trap 'rm -rf "$out"' EXIT

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED: the multi-host tour needs root (network namespaces); run as root"
    exit 77
fi
# In a chroot (a fresh Debian root, say) / is no mount point: ip netns
# would mount /run/netns inside it and could not enter what it made (it
# makes / a slave mount first): not even try.
if ! awk '$5 == "/" {f = 1} END {exit !f}' /proc/self/mountinfo; then
    echo "SKIPPED: this is a chroot; network namespaces need the machine's own root"
    exit 77
fi
if ! command -v ip >/dev/null || ! ip netns add wf-probe 2>"$out/probe"; then
    echo "SKIPPED: cannot make a network namespace here: $(cat "$out/probe" 2>/dev/null)"
    exit 77
fi
# A container may make one and not enter it.
if ! ip netns exec wf-probe true 2>"$out/probe"; then
    ip netns del wf-probe
    echo "SKIPPED: cannot run a program in a network namespace here: $(cat "$out/probe")"
    exit 77
fi
ip netns del wf-probe

log=$out/tour.log
timeout 180 "$root/tools/cluster/demo-hosts" "$build" "$out/hosts" --faults >"$log" 2>&1
rc=$?
cat "$log"
fail=0
check() { # check WHAT COMMAND...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}
check "the tour ran to its end (exit $rc)" [ $rc -eq 0 ]
check "a MISS, then coalesced requests: one upstream fetch" \
    grep -q 'upstream fetches of the_tyger: 1$' "$log"
check "every one of the 50 concurrent requests answered 200" \
    bash -c "! sed -n '/^3\./,/^4\./p' '$log' | grep -E '^ +[0-9]+ [^2]'"
check "the failure's trace crosses the hosts" grep -q 'reply from node fetch \[node cache\]' "$log"
answers=$(sed -n 's/^   answers: //p' "$log")
check "under a cache node kill every request got a complete answer ($answers)" \
    bash -c "[ -n '$answers' ] && ! grep -q '000' <<<'$answers'"
slowest=$(sed -n 's/.*(slowest \([0-9.]*\)s).*/\1/p' "$log")
check "within its deadline (slowest ${slowest}s < 6s)" \
    awk -v s="${slowest:-99}" 'BEGIN { exit !(s < 6) }'
heard=$(sed -n 's/^   the front heard the cache node was down \([0-9]*\) ms after the kill$/\1/p' "$log")
check "node down reached the front ${heard:-never} ms after the kill (under 1 s)" \
    bash -c "[ -n '$heard' ] && [ '$heard' -lt 1000 ]"
check "the restarted cache node is used again, nothing else restarted" \
    grep -q 'after the restart: 200' "$log"
down=$(sed -n 's/^   front took cache down after \([0-9]*\) ms: peer cache sent nothing.*/\1/p' "$log")
check "a cut link taken down by the heartbeat (${down:-never} ms, peer-timeout 1500)" \
    bash -c "[ -n '$down' ] && [ '$down' -lt 3000 ]"
check "served again once the link is back" grep -q 'link restored: served again' "$log"

# The slow and lossy link (fault 8): weft-relay between front and cache.
part() { sed -n "s/^   $1 //p" "$log"; } # the line of step 8's part $1
# between V LO HI: LO <= V < HI (decimals)
between() { awk -v v="${1:-x}" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "x" && v + 0 >= lo && v + 0 < hi) }'; }
field() { sed -n "s/$1/\1/p" <<<"$2"; } # field REGEX-WITH-ONE-GROUP TEXT
complete() { ! grep -q INCOMPLETE <<<"$1"; }
check "the front-cache link put through the relay, no node restarted" \
    grep -qE '^   cache dials the front through the relay: up again after [0-9]+ ms' "$log"
a=$(part a.)
added=$(field '.*+\([0-9.]*\) s a round trip.*' "$a")
all_200() { grep -qE " HITs: 200 x$2, [0-9.]+-" <<<"$1" && complete "$1"; } # all_200 LINE N
check "a delay of 100 +- 20 ms each way: every request a complete 200" all_200 "$a" 20
check "  ${added:-?} s more a round trip: the link's 2 x 80-120 ms, measured" between "$added" 0.16 0.5
b=$(part b.)
first=$(field '.* HITs: 504 x10, \([0-9.]*\)-.*' "$b")
last=$(field '.* HITs: 504 x10, [0-9.]*-\([0-9.]*\) s.*' "$b")
all_504() { grep -qE " HITs: 504 x10, [0-9.]+-" <<<"$b" && complete "$b"; }
at_deadline() { between "$first" 5.95 6.5 && between "$last" 5.95 6.5; }
check "a round trip past the 6 s deadline: every request a complete 504" all_504
check "  at its deadline, not before nor later (${first:-?}-${last:-?} s)" at_deadline
check "  the cache node stays up (the delay rose in steps under peer-timeout)" \
    grep -q 'peer cache stayed up$' <<<"$b"
c=$(part c.)
stalls=$(field '.*; \([0-9]*\) stalls;.*' "$c")
check "losses retransmitted under peer-timeout: every request a complete 200" all_200 "$c" 30
check "  ${stalls:-no} stalls on the way" between "${stalls:-0}" 1 100000
check "  the cache node stays up" grep -q 'peer cache stayed up$' <<<"$c"
d=$(part d.)
held=$(field '.*cache taken down by the front after \([0-9]*\) ms: peer cache sent nothing.*' "$d")
check "a stall past peer-timeout: the cache node taken down (${held:-never} ms, peer-timeout 1500)" \
    bash -c "[ -n '$held' ] && [ '$held' -lt 3000 ]"
meanwhile=$(sed -n 's/^      meanwhile //p' "$log")
fast_502() {
    grep -qE '^50[23] x3, [0-9.]+-0\.[0-4][0-9]* s, .*up again through the relay after [0-9]+ ms' \
        <<<"$meanwhile" && complete "$meanwhile"
}
check "  meanwhile complete 502s at once, then up again through the relay" fast_502
check "the direct link back: served again" \
    grep -qE '^   e\. the direct link back: up after [0-9]+ ms; then 200 in' "$log"
once=$(sed -n 's/^   answered once each: //p' "$log")
asked=$(field '^\([0-9]*\) requests, .*' "$once")
written=$(field '^[0-9]* requests, \([0-9]*\) answers written.*' "$once")
check "nothing answered twice: ${asked:-?} requests, ${written:-?} answers written by the front" \
    bash -c "[ -n '$asked' ] && [ '$asked' -gt 0 ] && [ '$asked' = '$written' ]"

# Fault 9: intruders, refused and logged with their address (and the name
# claimed, once one is), changing nothing.
check "a node with the cluster's certificate but the wrong secret is refused, with address and name" \
    grep -qE '^      node front: connection from 10\.77\.0\.4:[0-9]+, claiming to be node cache refused: ' "$log"
check "a node with the secret but no certificate is refused at TLS, with its address" \
    grep -qE '^      node front: TLS with the connection from 10\.77\.0\.4:[0-9]+ failed .*sent no certificate' "$log"
check "the intruders changed nothing (no peer down, the front still serves)" \
    bash -c "grep -qE '^   nothing changed: peer cache down 0 more times; front.s peers (cache fetch|fetch cache)\$' '$log' && grep -qE '^   then: 200 ' '$log'"
check "the fetch host killed: cached poems served" grep -q 'cached:   200' "$log"
check "the fetch host killed: misses fail at once" grep -qE 'uncached: 50[23] .* 0\.[0-4]' "$log"

# The MISS's path as the demo wrote it in HTML, in headless Chromium: a
# lane per actor under its host's node, and the request's arrows from lane
# to lane across front, cache and fetch (the upstream host runs no node: its
# poem is in the fetcher's reply). tools/weft test installs Chromium.
chromium=
for c in ${CHROMIUM:-/usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome}; do
    if [ -x "$c" ]; then chromium=$c; break; fi
done
trace=$(sed -n "s/^4\. The MISS's path, host by host (trace \([0-9a-f]*\))$/\1/p" "$log")
html=$out/hosts/request.html
if [ -z "$chromium" ]; then
    check "the HTML path view: no Chromium here (apt-get install chromium)" false
elif [ ! -s "$html" ] || [ -z "$trace" ]; then
    check "the demo wrote the MISS's path (trace ${trace:-none}) as HTML to $html" false
else
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$out/chromium" --dump-dom "file://$html" >"$out/request.dom" 2>"$out/chromium.log"
    check "Chromium ran the HTML path view's scripts ($(wc -c <"$out/request.dom") bytes of DOM)" \
        grep -q '<g class="lane' "$out/request.dom"
    check "it shows the MISS crossing the hosts' nodes" \
        python3 "$root/tests/node/path_view.py" "$out/request.dom" "$trace"
fi

# The hosts share one clock: nothing may be recorded as received before it
# was sent (a send stamped late made the viewer warn that the clocks
# disagree, and draw a reply before its cause).
check "no message between hosts recorded as received before it left" \
    python3 "$root/tests/node/causality.py" "$out/hosts/trace" "$build/tools/viewer/weft-view"
check "the path view did not have to bend the clocks" \
    bash -c "! grep -q 'clocks disagree' '$log'"
check "no namespace of the tour left" \
    bash -c "! ip netns list | grep -qE '^wf-(front|cache|fetch|upstream|lan|probe)( |$)'"
check "no link left" bash -c "! ip link show wf-root >/dev/null 2>&1"
check "no weft-node left" bash -c "! pgrep -f '[w]eft-node --config $out' >/dev/null"
check "no weft-relay left" bash -c "! pgrep -f '[w]eft-relay --listen 10.77.0.1:7100' >/dev/null"
exit $fail
