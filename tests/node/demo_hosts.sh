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
check "the restarted cache node is used again, nothing else restarted" \
    grep -q 'after the restart: 200' "$log"
down=$(sed -n 's/.*front took cache down after \([0-9]*\) ms: peer cache sent nothing.*/\1/p' "$log")
check "a cut link taken down by the heartbeat (${down:-never} ms, peer-timeout 1500)" \
    bash -c "[ -n '$down' ] && [ '$down' -lt 3000 ]"
check "served again once the link is back" grep -q 'link restored: served again' "$log"
check "the fetch host killed: cached poems served" grep -q 'cached:   200' "$log"
check "the fetch host killed: misses fail at once" grep -qE 'uncached: 50[23] .* 0\.[0-4]' "$log"
check "no namespace left" bash -c "! ip netns list | grep -q '^wf-'"
check "no link left" bash -c "! ip link show wf-root >/dev/null 2>&1"
check "no weft-node left" bash -c "! pgrep -f '[w]eft-node --config $out' >/dev/null"
exit $fail
