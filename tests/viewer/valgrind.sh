#!/bin/sh
# weft_test() runs ${CMAKE_CURRENT_SOURCE_DIR}/valgrind.sh, which for these
# suites is this directory: the one script is tests/valgrind.sh.
exec "$(dirname "$0")/../valgrind.sh" "$@"
