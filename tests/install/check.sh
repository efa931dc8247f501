#!/bin/sh
# check.sh BUILD_DIR SOURCE_DIR: installs weft into a temporary prefix, then
# builds and runs a consumer with find_package(weft) and with pkg-config.
set -eu
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libweft.so' | head -n 1)")

cmake -S "$src/tests/install/consumer" -B "$tmp/cmake" -G Ninja \
    -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
ninja -C "$tmp/cmake" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/cmake/consumer"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/pc-consumer" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs weft)
LD_LIBRARY_PATH=$libdir "$tmp/pc-consumer"

# The libraries export their public API and nothing else: every defined
# dynamic symbol is a wf_ name (not an internal wf__ one) that an installed
# header declares.
headers=$tmp/prefix/include/weft
bad=0
for lib in "$libdir"/libweft*.so; do
    for sym in $(nm -D --defined-only "$lib" | awk '{print $3}'); do
        case $sym in
        wf__*) echo "$(basename "$lib") exports the internal $sym" >&2; bad=1 ;;
        wf_*) grep -qw "$sym" "$headers"/*.h || { echo "$(basename "$lib") exports $sym, which no header declares" >&2; bad=1; } ;;
        *) echo "$(basename "$lib") exports $sym, which is not weft's" >&2; bad=1 ;;
        esac
    done
done
[ $bad = 0 ]
