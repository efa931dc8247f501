#!/bin/sh
# chromium.sh WEFT_VIEW FIXTURES OUTDIR: the HTML view of the proxy fixture
# in headless Chromium. After its scripts ran, the page must hold a lane per
# actor, an arrow per message, answer and outside request (counted from the
# fixture files here, not by the viewer), the failures, and the trace list;
# a link to a trace shows only its arrows, one to a failure opens its text.
# A screenshot goes to OUTDIR/viewer.png. Without Chromium the test is
# skipped, except in CI (CI=true), where it must run. CHROMIUM=PATH picks
# the browser.
set -eu
view=$1 fixtures=$2 out=$3
# $CHROMIUM, if set, is the only browser tried.
chromium=
for c in ${CHROMIUM:-/usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome}; do
    if [ -x "$c" ]; then chromium=$c; break; fi
done
if [ -z "$chromium" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "FAIL: Chromium is not installed (apt-get install chromium), and CI=true"
        exit 1
    fi
    echo "SKIP: Chromium is not installed (apt-get install chromium); set CI=true to make this fail"
    exit 77
fi
mkdir -p "$out"
profile=$(mktemp -d "${TMPDIR:-/tmp}/weft-view-chromium.XXXXXX")
trap 'rm -rf "$profile"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

browse() { # browse URL [ARGS...]: Chromium's output on stdout
    url=$1
    shift
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$profile" "$@" "$url" 2>"$out/chromium.log"
}
count() { grep -o -- "$1" "$2" | wc -l; }
in_fixture() { cat "$fixtures"/proxy/*.jsonl | grep -c -- "$1" || true; }

"$view" --html "$out/proxy.html" "$fixtures/proxy"
page="file://$out/proxy.html"

browse "$page" --dump-dom >"$out/dom.html" || fail "Chromium failed: $(tail -5 "$out/chromium.log")"
grep -q 'id="trace-list"' "$out/dom.html" || fail "no trace list in the DOM"
# The scripts ran: the lanes are built by them.
grep -q '<g class="lane' "$out/dom.html" || fail "no lanes: did the script run? $(tail -5 "$out/chromium.log")"

# A lane per actor spawned in the fixture, under its node.
actors=0
for a in $(cat "$fixtures"/proxy/*.jsonl | grep '"ev":"actor"' |
           sed 's/.*"node":"\([^"]*\)".*"actor":"\([^"]*\)".*/\2@\1/'); do
    grep -q "<g class=\"lane\" data-lane=\"$a\"" "$out/dom.html" || fail "no lane for $a"
    actors=$((actors + 1))
done
[ "$actors" -eq 4 ] || fail "expected 4 actors in the fixture, read $actors"
lanes=$(count '<g class="lane' "$out/dom.html")
[ "$lanes" -eq 5 ] || fail "$lanes lanes, expected the 4 actors and the outside world"

# An arrow per send, reply, failure and request from outside.
sends=$(in_fixture '"ev":"send"')
answers=$(in_fixture '"ev":"reply"\|"ev":"fail"')
requests=$(in_fixture '"ev":"recv".*"from":""')
want=$((sends + answers + requests))
arrows=$(count '<g class="arrow ' "$out/dom.html")
[ "$arrows" -eq "$want" ] || fail "$arrows arrows, expected $want ($sends sends, $answers answers, $requests requests)"
[ "$(count '<g class="arrow fail' "$out/dom.html")" -eq "$(in_fixture '"ev":"fail"')" ] ||
    fail "failure arrows"

# The failures are there, clickable; the list has both traces.
failures=$(count 'class="failure"' "$out/dom.html")
[ "$failures" -ge 1 ] && [ "$failures" -eq "$(in_fixture '"ev":"fail"')" ] || fail "$failures failure marks"
[ "$(count 'class="trace-item' "$out/dom.html")" -eq 3 ] || fail "trace list: all + 2 traces"
grep -q '2 traces (1 failed)' "$out/dom.html" || fail "the header's figures"
grep -q 'GET /poem/missing' "$out/dom.html" || fail "a trace's label"

# Linked to the failed trace: only its arrows; its first failure's text open.
browse "$page#trace=0af7&failure=0" --dump-dom >"$out/dom-failure.html" || fail "Chromium failed"
tarrows=$(count '<g class="arrow ' "$out/dom-failure.html")
[ "$tarrows" -eq 8 ] || fail "$tarrows arrows for the failed trace, expected 8"
grep -q '<div id="failure-panel" class="panel">' "$out/dom-failure.html" ||
    fail "the failure panel did not open"
grep -q 'raised at actors/fetcher/fetcher.c:214 in on_response \[fetcher@back\]' \
    "$out/dom-failure.html" || fail "the failure text is not shown"
# Recorded markup is shown as text, never parsed.
grep -q '&lt;/script&gt;&lt;h1&gt;Not Found&lt;/h1&gt;' "$out/dom-failure.html" ||
    fail "the failure text's markup was not kept as text"
grep -q '<h1>Not Found' "$out/dom-failure.html" && fail "recorded markup became an element"

# A screenshot, for people.
rm -f "$out/viewer.png"
browse "$page" --hide-scrollbars --screenshot="$out/viewer.png" --window-size=1400,900 >/dev/null ||
    fail "no screenshot: $(tail -5 "$out/chromium.log")"
[ -f "$out/viewer.png" ] || fail "no screenshot at $out/viewer.png"
size=$(wc -c <"$out/viewer.png")
[ "$size" -gt 20000 ] || fail "the screenshot is only $size bytes"
[ "$(head -c 4 "$out/viewer.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "not a PNG"
echo "ok: $lanes lanes, $arrows arrows, $failures failures; screenshot $out/viewer.png ($size bytes)"
