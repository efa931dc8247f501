#!/bin/sh
# Builds the CAF peer of `tools/weft bench actors`.
#
# usage: tools/bench/actors/build_caf.sh OUT
#
# Needs Debian's libcaf-dev (CAF 0.17.6 on bookworm: headers in
# /usr/include/caf, libcaf_core.so in /usr/lib/x86_64-linux-gnu; it ships no
# CMake or pkg-config files, so the flags are spelled out here).
# CXX overrides the compiler (default g++).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -f /usr/include/caf/all.hpp ]; then
    echo "$0: CAF headers not found (apt-get install -y libcaf-dev)" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
exec "${CXX:-g++}" -std=c++17 -O2 -DNDEBUG -o "$out" "$here/peer_caf.cpp" \
    -lcaf_core -pthread
