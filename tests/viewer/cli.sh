#!/bin/sh
# cli.sh WEFT_VIEW FIXTURES OUTDIR: weft-view as a user runs it: options,
# exit statuses, messages about bad input, filters, every mode's output.
set -u
view=$1 fixtures=$2 out=$3
mkdir -p "$out"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run EXPECTED_STATUS ARGS...: runs weft-view, output in $out/stdout, $out/stderr.
run() {
    want=$1
    shift
    "$view" "$@" >"$out/stdout" 2>"$out/stderr"
    got=$?
    [ "$got" -eq "$want" ] || fail "weft-view $* exited $got, expected $want: $(head -c 400 "$out/stderr")"
    [ "$got" -lt 128 ] || fail "weft-view $* crashed (status $got)"
}
has() { grep -q -- "$2" "$out/$1" || fail "no '$2' in $1 of the last run: $(head -c 300 "$out/$1")"; }
lacks() { ! grep -q -- "$2" "$out/$1" || fail "'$2' in $1 of the last run"; }

# Usage.
run 0 --help
has stdout "usage: weft-view"
run 2
has stderr "no trace files given"
run 2 --bogus "$fixtures/proxy"
has stderr "unknown option --bogus"
run 2 --width 10 "$fixtures/proxy"
run 2 --trace
has stderr "--trace needs a value"
run 2 --follow "$fixtures/proxy"
has stderr "works with --live"

# What cannot be read.
run 1 "$out/no-such-file.jsonl"
has stderr "cannot read $out/no-such-file.jsonl"
has stderr "no trace file could be read"
run 0 --summary "$out/no-such-file.jsonl" "$fixtures/proxy/front.jsonl"
has stderr "cannot read"
has stdout "events: 33"
: >"$out/empty.jsonl"
run 0 "$out/empty.jsonl"
has stderr "no events in the input"

# Malformed lines: named, counted, the rest shown.
run 0 --summary "$fixtures/bad.jsonl"
has stderr "bad.jsonl:2: skipped: truncated object"
has stderr "bad.jsonl:8: skipped: not a JSON object"
has stderr "13 malformed lines skipped (of 19)"
has stdout "skipped lines: 13"
has stdout "events: 6"
head -c 200000 /dev/urandom >"$out/garbage.jsonl"
run 0 --summary "$out/garbage.jsonl"
has stdout "events: 0"
run 0 --chrome "$out/garbage.json" --html "$out/garbage.html" "$out/garbage.jsonl"

# The chart of a directory: every lane, both traces, the latencies.
run 0 --no-color --width 140 "$fixtures/proxy"
for lane in "(outside)" listener cache renderer fetcher front back; do has stdout "$lane"; done
has stdout "trace 4bf92f35 · GET /poem/ode · 32.900 ms"
has stdout "fired ask fetch.get ⟲ 30.650 ms"
has stdout "┆   raised at actors/fetcher/fetcher.c:214"
lacks stdout "$(printf '\033')"
[ "$(LC_ALL=C.UTF-8 wc -L <"$out/stdout")" -le 140 ] || fail "wider than 140 columns"

# Filters.
run 0 --no-color --trace last "$fixtures/proxy"
has stdout "GET /poem/missing"
lacks stdout "GET /poem/ode"
run 0 --no-color --trace slowest "$fixtures/proxy"
has stdout "GET /poem/ode"
lacks stdout "GET /poem/missing"
run 1 --trace 123abc "$fixtures/proxy"
has stderr "no trace matches --trace 123abc"
run 0 --summary --failed "$fixtures/proxy"
has stdout "traces: 1 (1 failed)"
run 0 --no-color --actor fetcher "$fixtures/proxy"
has stdout "fetcher"
has stdout "cache"
lacks stdout "renderer"
run 0 --summary --from 31 --to 34 "$fixtures/proxy"
has stdout "events: 10"

# Standard input, and output to standard output.
"$view" --summary - <"$fixtures/proxy/back.jsonl" >"$out/stdout" 2>"$out/stderr" || fail "stdin"
has stdout "events: 12"
run 0 --html - "$fixtures/proxy"
has stdout "<!DOCTYPE html>"
has stdout '"label":"GET /poem/ode"'
run 1 --html "$out/no/such/dir/x.html" "$fixtures/proxy"
has stderr "cannot write"

# All modes at once.
run 0 --chart --summary --no-color --html "$out/p.html" --chrome "$out/p.json" "$fixtures/proxy"
has stdout "━━ trace"
has stdout "events: 45"
[ -s "$out/p.html" ] && [ -s "$out/p.json" ] || fail "--html and --chrome files"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "ok"
