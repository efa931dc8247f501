#!/usr/bin/env python3
"""chrome_check.py FILE [--flows N] [--processes N] [--threads N] [--failures N]

Checks a Chrome Trace Event file as Perfetto and chrome://tracing read it:
- valid JSON, {"traceEvents": [...], "displayTimeUnit": "ms"};
- every process and thread that has events is named (ph M);
- on each thread, complete events (ph X) do not overlap unless nested;
- every flow start (ph s) has exactly one flow end (ph f) with the same id
  and cat, and the other way round; the end binds to its enclosing slice
  (bp e) and does not come before the start;
- each flow start and end lies inside a complete event on its own thread.
With the options, the counts must match exactly. Exits 1 with the reasons.
"""
import argparse
import json
import sys

EPS = 1e-6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--flows", type=int)
    ap.add_argument("--processes", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--failures", type=int)
    a = ap.parse_args()
    errors = []

    with open(a.file, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        sys.exit("not a {\"traceEvents\": [...]} object")
    if doc.get("displayTimeUnit") != "ms":
        errors.append("displayTimeUnit is not \"ms\"")
    events = doc["traceEvents"]

    pnames, tnames = {}, {}
    slices = {}  # (pid, tid) -> [(ts, end)]
    flows = {"s": {}, "f": {}}
    failures = 0
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph is None or "pid" not in e:
            errors.append(f"event {i} lacks ph or pid: {e}")
            continue
        key = (e["pid"], e.get("tid"))
        if ph == "M":
            if e.get("name") == "process_name":
                pnames[e["pid"]] = e["args"]["name"]
            elif e.get("name") == "thread_name":
                tnames[key] = e["args"]["name"]
            continue
        if not isinstance(e.get("ts"), (int, float)) or e["ts"] < 0:
            errors.append(f"event {i} has a bad ts: {e}")
            continue
        if ph == "X":
            dur = e.get("dur")
            if not isinstance(dur, (int, float)) or dur < 0 or not e.get("name"):
                errors.append(f"complete event {i} lacks name or a dur >= 0: {e}")
                continue
            slices.setdefault(key, []).append((e["ts"], e["ts"] + dur, e["name"]))
        elif ph in "sf":
            fk = (e.get("cat"), e.get("id"))
            if fk[0] is None or fk[1] is None:
                errors.append(f"flow event {i} lacks cat or id: {e}")
            if fk in flows[ph]:
                errors.append(f"two flow '{ph}' events with cat/id {fk}")
            flows[ph][fk] = e
            if ph == "f" and e.get("bp") != "e":
                errors.append(f"flow end {i} does not bind to its enclosing slice (bp e)")
        elif ph == "i":
            if e.get("s") not in ("t", "p", "g"):
                errors.append(f"instant {i} has a bad scope: {e}")
            if e.get("name", "").startswith("\u2717"):
                failures += 1
        else:
            errors.append(f"unexpected ph {ph!r} in event {i}")

    # Names for everything used.
    for key in slices:
        if key[0] not in pnames:
            errors.append(f"process {key[0]} has no process_name")
        if key not in tnames:
            errors.append(f"thread {key} has no thread_name")

    # Slices per thread: disjoint or nested.
    for key, ss in slices.items():
        ss.sort(key=lambda s: (s[0], -s[1]))
        stack = []
        for ts, end, name in ss:
            while stack and stack[-1][1] <= ts + EPS:
                stack.pop()
            if stack and end > stack[-1][1] + EPS:
                errors.append(f"thread {key}: {name} [{ts}, {end}] overlaps "
                              f"{stack[-1][2]} [{stack[-1][0]}, {stack[-1][1]}]")
            stack.append((ts, end, name))

    def inside(e):
        for ts, end, _ in slices.get((e["pid"], e.get("tid")), []):
            if ts - EPS <= e["ts"] <= end + EPS:
                return True
        return False

    for fk, s in flows["s"].items():
        f = flows["f"].get(fk)
        if f is None:
            errors.append(f"flow start {fk} has no end")
            continue
        if f["ts"] + EPS < s["ts"]:
            errors.append(f"flow {fk} ends at {f['ts']} before it starts at {s['ts']}")
        if not inside(s):
            errors.append(f"flow start {fk} at {s['ts']} is on no slice of {s['pid']}/{s['tid']}")
        if not inside(f):
            errors.append(f"flow end {fk} at {f['ts']} is on no slice of {f['pid']}/{f['tid']}")
    for fk in flows["f"]:
        if fk not in flows["s"]:
            errors.append(f"flow end {fk} has no start")

    def want(what, got, expected):
        if expected is not None and got != expected:
            errors.append(f"{what}: {got}, expected {expected}")

    want("flows", len(flows["s"]), a.flows)
    want("processes", len(pnames), a.processes)
    want("threads", len(tnames), a.threads)
    want("failure instants", failures, a.failures)

    if errors:
        print(f"{a.file}: {len(errors)} problem(s)")
        for e in errors[:50]:
            print("  " + e)
        sys.exit(1)
    print(f"{a.file}: ok ({len(events)} events, {len(flows['s'])} flows, "
          f"{sum(len(s) for s in slices.values())} slices on {len(slices)} threads)")


if __name__ == "__main__":
    main()
