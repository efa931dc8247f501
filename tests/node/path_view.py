"""path_view.py DOM TRACE: the multi-host tour's HTML path view of the MISS
(weft-view --html, its DOM as headless Chromium left it after the page's
scripts ran), judged by tests/node/demo_hosts.sh: a lane per actor under
its host's node, and the request's arrows from lane to lane across the
hosts front, cache and fetch, with the upstream host's poem in the
fetcher's reply (that host runs no node). Prints what it found; exit 1 if
anything is missing."""
import sys
from html.parser import HTMLParser


class Dom(HTMLParser):
    """The lanes (actor@node: the x of its lifeline), the nodes, the arrows
    (kind, trace, x where they start and end, label, tooltip)."""

    def __init__(self):
        super().__init__()
        self.lanes, self.nodes, self.arrows = {}, set(), []
        self.lane = self.arrow = self.field = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "g" and cls.startswith("lane"):
            self.lane = a["data-lane"]
        elif tag == "line" and cls == "lifeline" and self.lane:
            self.lanes[self.lane] = float(a["x1"])
            self.lane = None
        elif tag == "g" and cls == "node":
            self.nodes.add(a["data-node"])
        elif tag == "g" and cls.startswith("arrow "):
            self.arrow = {"kind": cls[6:], "trace": a.get("data-trace"), "text": "", "title": ""}
            self.arrows.append(self.arrow)
        elif tag == "path" and cls == "shaft" and self.arrow is not None:
            # "Mx1,y1 Lx2,y2" between lanes; a curve (C) is a message to itself.
            d = a["d"]
            if d.startswith("M") and " L" in d:
                start, end = d[1:].split(" L")
                self.arrow["from"] = float(start.split(",")[0])
                self.arrow["to"] = float(end.split(",")[0])
        elif tag in ("text", "title") and self.arrow is not None:
            self.field = tag

    def handle_endtag(self, tag):
        if tag in ("text", "title"):
            self.field = None
        elif tag == "g":
            self.arrow = None

    def handle_data(self, data):
        if self.arrow is not None and self.field:
            self.arrow[self.field] += data


dom = Dom()
with open(sys.argv[1], encoding="utf-8") as f:
    dom.feed(f.read())
trace = sys.argv[2]


def lane_at(x):
    """The lane whose lifeline is nearest x (an arrow stops a little short)."""
    name, lx = min(dom.lanes.items(), key=lambda kv: abs(kv[1] - x))
    return name if abs(lx - x) <= 12 else "?"


ok = True


def say(good, what):
    global ok
    print("   %s %s" % ("found:" if good else "MISSING:", what))
    ok = ok and bool(good)


want_lanes = {"outside", "listener@front", "renderer@front", "cache@cache", "fetcher@fetch"}
say(want_lanes <= set(dom.lanes), "lanes " + " ".join(sorted(dom.lanes)))
say({"front", "cache", "fetch"} <= dom.nodes, "nodes " + " ".join(sorted(dom.nodes)))
say(dom.arrows and all(a["trace"] == trace for a in dom.arrows),
    "%d arrows, all of trace %s" % (len(dom.arrows), trace))
drawn = [(a["kind"], lane_at(a["from"]), lane_at(a["to"]), a["text"], a["title"])
         for a in dom.arrows if "from" in a]
path = [  # kind, from, to, how its label starts
    ("in", "outside", "listener@front", "GET /poems/ozymandias"),
    ("ask", "listener@front", "cache@cache", "ask cache.get"),
    ("ask", "cache@cache", "fetcher@fetch", "ask fetch.get"),
    ("reply", "fetcher@fetch", "cache@cache", "reply ask fetch.get"),
    ("reply", "cache@cache", "listener@front", "reply ask cache.get"),
    ("out", "listener@front", "outside", "200"),
]
for kind, src, dst, label in path:
    hit = [d for d in drawn if d[:3] == (kind, src, dst) and d[3].startswith(label)]
    say(len(hit) == 1, "%s %s -> %s: %s" % (kind, src, dst, hit[0][3] if hit else "none"))
poem = [d for d in drawn if d[:3] == ("reply", "fetcher@fetch", "cache@cache")]
lines = poem[0][4].split("\n") if poem else []
say(len(lines) > 1 and "Ozymandias" in lines[1],
    "the upstream host's poem in the fetcher's reply: %r" % (lines[1] if len(lines) > 1 else ""))
sys.exit(0 if ok else 1)
