#!/bin/sh
# tsan.sh SUITE [ARGS...]: runs a suite built with ThreadSanitizer (on the
# runner of tests/tsan/, which fails a test whose child printed a report).
# Reports go to log files, one per process, so that those of the programs a
# test starts (weft-node, poetry-server) count too: any report fails the
# run. tsan.supp names what is suppressed, third-party code only.
set -u
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-tsan.XXXXXX")
# nng and libuv are Debian's, not instrumented: TSan sees their mutexes
# (intercepted) but not their atomics, so it misses orderings they make
# with atomics alone. nng frees a dialer on its reaper thread after the last
# of its streams drops an atomic reference; TSan then reports the freeing
# thread's pthread_mutex_destroy as racing with the lock that another thread
# took before. ignore_noninstrumented_modules (the default on macOS, for the
# same reason) stops checking the memory that intercepted calls made from
# such libraries touch; weft's own code, callbacks from nng and libuv
# included, is checked in full, and the happens-before their mutexes give is
# kept.
export TSAN_OPTIONS="log_path=$dir/tsan:suppressions=$here/tsan.supp:ignore_noninstrumented_modules=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
# Tests that check a figure only valid at full speed skip it (blocking.c),
# as under valgrind.
export WEFT_UNDER_TSAN=1
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
