#!/bin/sh
# tsan.sh SUITE [ARGS...]: runs a suite built with ThreadSanitizer (on the
# runner of tests/tsan/, which fails a test whose child printed a report).
# Reports go to log files, one per process, so that those of the programs a
# test starts (weft-node, poetry-server) count too: any report fails the
# run. tsan.supp names what is suppressed, third-party code only.
set -u
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-tsan.XXXXXX")
export TSAN_OPTIONS="log_path=$dir/tsan:suppressions=$here/tsan.supp:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
# TSan's shadow memory needs the address space laid out as it expects;
# kernels with more mmap randomisation bits than gcc 12's TSan knows break
# that ("unexpected memory mapping"). Without randomisation it always fits.
if setarch "$(uname -m)" -R true 2>/dev/null; then
    setarch "$(uname -m)" -R "$@"
else
    "$@"
fi
rc=$?
if [ -n "$(ls "$dir")" ]; then
    echo "ThreadSanitizer reports from $(ls "$dir" | wc -l) process(es):"
    cat "$dir"/*
    rc=1
fi
rm -rf "$dir"
exit $rc
