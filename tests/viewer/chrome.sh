#!/bin/sh
# chrome.sh WEFT_VIEW FIXTURES OUTDIR: the Chrome Trace Event export of the
# proxy fixture (whole, and filtered) and of malformed input passes
# chrome_check.py: names, nesting, and every flow from a slice to a slice.
set -eu
view=$1 fixtures=$2 out=$3
py=/usr/bin/python3
here=$(dirname "$0")
if [ ! -x "$py" ]; then
    echo "SKIP: $py is not installed"
    exit 77
fi
mkdir -p "$out"

"$view" --chrome "$out/proxy.json" "$fixtures/proxy"
# 6 messages and 6 answers; front and back; listener, cache, renderer and
# its pool thread, fetcher; one instant per failure.
"$py" "$here/chrome_check.py" "$out/proxy.json" --flows 12 --processes 2 --threads 5 --failures 2

"$view" --chrome "$out/last.json" --trace last "$fixtures/proxy"
"$py" "$here/chrome_check.py" "$out/last.json" --flows 6 --failures 2

"$view" --chrome "$out/fetcher.json" --actor fetcher "$fixtures/proxy"
"$py" "$here/chrome_check.py" "$out/fetcher.json" --flows 4 --processes 2

# Whatever the reader let through must still make a valid file.
"$view" --chrome "$out/bad.json" "$fixtures/bad.jsonl" 2>/dev/null
"$py" "$here/chrome_check.py" "$out/bad.json"
