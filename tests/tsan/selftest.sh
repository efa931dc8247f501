#!/bin/sh
# selftest.sh RUNNER-SELFTEST: the runner tells each outcome apart (see
# selftest.c). Its TSan report goes to a scratch log, not to tsan.sh's.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-tsan-self.XXXXXX")
TSAN_OPTIONS="log_path=$dir/tsan" "$1" >"$dir/out" 2>&1
rc=$?
fail=0
expect() {
    grep -qF -- "$1" "$dir/out" || { echo "missing: $1"; fail=1; }
}
expect "[PASS] self::passes"
expect "[FAIL] self::a_failed_assert_ends_the_test_and_fini_runs"
expect "one is not 2"
grep -qxF "fini ran, order 1" "$dir/out" || { echo "no fini after the failed assert"; fail=1; }
expect "[FAIL] self::a_failed_expect_goes_on"
expect "after the expectation"
expect "[FAIL] self::a_failed_assert_on_another_thread_fails"
expect "[FAIL] self::a_signal_is_a_crash: CRASH! (signal 9)"
expect "[FAIL] self::the_time_limit_is_a_crash: Timed out"
expect "[FAIL] self::a_tsan_report_fails: exit status 66"
expect "[SKIP] self::skipped"
expect "Synthesis: Tested: 7 | Passing: 1 | Failing: 4 | Crashing: 2"
if grep -qF "not reached" "$dir/out"; then echo "a failed assert went on"; fail=1; fi
[ "$rc" = 1 ] || { echo "exit status $rc, not 1"; fail=1; }
[ -n "$(ls "$dir" | grep tsan)" ] || { echo "no TSan report logged"; fail=1; }
# Shown on failure only, its summary renamed: tools/weft sums every
# "Synthesis: Tested:" line of the run, and these outcomes are meant.
[ $fail = 0 ] || sed 's/Synthesis:/Synthesis of the self-test:/' "$dir/out"
rm -rf "$dir"
exit $fail
