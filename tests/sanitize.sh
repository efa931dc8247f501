#!/bin/sh
# sanitize.sh SUITE [ARGS...]: runs a Criterion suite built with ASan+UBSan.
# Errors abort the worker (Criterion counts a crash), but LeakSanitizer only
# reports at a worker's exit, whose status Criterion does not pass on. So
# every sanitizer report goes to a log file, and any report fails the run.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-san.XXXXXX")
export ASAN_OPTIONS="log_path=$dir/asan:detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$dir/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
"$@"
rc=$?
if [ -n "$(ls "$dir")" ]; then
    echo "sanitizer reports from $(ls "$dir" | wc -l) process(es):"
    cat "$dir"/*
    rc=1
fi
rm -rf "$dir"
exit $rc
