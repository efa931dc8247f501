#!/bin/sh
# valgrind.sh SUITE [ARGS...]: runs a Criterion suite under memcheck.
# Criterion runs each test in a worker process and does not pass a worker's
# exit status on, so valgrind's --error-exitcode alone would miss a leak in a
# test. Each process logs to its own file instead, and any error fails the run.
# Child processes are traced too (poetry-server, weft-node), but not the
# interpreters and shells a test runs (a Twisted client's Python has leaks of
# its own that are not ours to fix).
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-vg.XXXXXX")
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --trace-children=yes --num-callers=30 \
    --trace-children-skip='*python*,*/sh,*/bash,*/rm,*openssl*' \
    --log-file="$dir/vg.%p.log" "$@"
rc=$?
bad=$(grep -l 'ERROR SUMMARY: [1-9]' "$dir"/vg.*.log 2>/dev/null)
if [ -n "$bad" ]; then
    echo "valgrind found errors in $(echo "$bad" | wc -l) process(es):"
    for f in $bad; do grep -v '^==[0-9]*== *$' "$f"; done
    rc=1
fi
logs=$(ls "$dir" | wc -l)
rm -rf "$dir"
[ "$logs" -ge 2 ] || { echo "valgrind.sh: expected logs from the suite and its workers, got $logs"; exit 1; }
exit $rc
