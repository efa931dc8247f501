#!/bin/sh
# weft_test() runs ${CMAKE_CURRENT_SOURCE_DIR}/sanitize.sh under
# WEFT_SANITIZE, which for these suites is this directory: the one script
# is tests/sanitize.sh.
exec "$(dirname "$0")/../sanitize.sh" "$@"
