#!/usr/bin/python3
"""causality.py TRACE_DIR WEFT_VIEW: every message between nodes in the traces there
arrives after it left. The multi-host tour's hosts are network namespaces
of one machine, so their nodes share one monotonic clock (t_ns): a receipt
stamped before its send is a recording fault, not clock skew, and the
viewer would have to bend the clocks to hide it.

Pairs: a send and the receipt of the same span on another node; a reply
or failure and the fired event of the same span on another node. Prints
the number of pairs and each one out of order; exit 1 if any, or if there
are none to judge. The traces are binary (*.wftr): WEFT_VIEW --jsonl
reads them."""
import glob
import json
import os
import subprocess
import sys
from collections import defaultdict


def main(trace_dir, view):
    spans = defaultdict(list)
    for path in glob.glob(os.path.join(trace_dir, "*.wftr")):
        # A node killed mid-write leaves a chunk cut short: the viewer
        # reports and skips it, and reads the rest.
        out = subprocess.run([view, "--jsonl", "-", path], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, check=False).stdout
        for line in out.splitlines():
            e = json.loads(line)
            if "span" in e and "t_ns" in e:
                spans[e["span"]].append(e)
    pairs, bad = 0, []
    for es in spans.values():
        for first, then in (("send", ("recv",)), ("reply", ("fired",)), ("fail", ("fired",))):
            for a in (e for e in es if e["ev"] == first):
                for b in (e for e in es if e["ev"] in then and e["node"] != a["node"]):
                    pairs += 1
                    if b["t_ns"] < a["t_ns"]:
                        bad.append(f'{first} on {a["node"]} (seq {a["seq"]}) received on '
                                   f'{b["node"]} (seq {b["seq"]}) {(a["t_ns"] - b["t_ns"]) / 1e3:.1f}'
                                   f' us before it left')
    print(f"{pairs} messages between nodes, {len(bad)} received before they left")
    for line in bad:
        print("  " + line)
    return 1 if bad or pairs == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
