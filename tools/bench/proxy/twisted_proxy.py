#!/usr/bin/python3
"""A caching poetry proxy in Twisted, the peer of weft's poetry_proxy in the
proxy benchmark, written the way Dave Peticolas' Twisted tutorial writes its
poetry clients and proxies: a Protocol that gathers a poem until the
connection closes, a ClientFactory that fires a Deferred with it, and a
service that keeps the poems it fetched.

    /usr/bin/python3 twisted_proxy.py --upstream 127.0.0.1:PORT [--port 0]

GET /poems/NAME answers a small HTML page with the poem (escaped) and an
X-Cache header with the same meaning as weft's:

    HIT        the poem was in the cache
    MISS       this request fetched it from the upstream
    COALESCED  another request was fetching it already; this one waited for
               that fetch (a dict of lists of waiting Deferreds) instead of
               starting its own

The upstream speaks the raw poetry protocol: connect, send "NAME\\n", read
until the server closes. An empty poem means an unknown name (404); a failed
fetch is a 502, to every waiter. Cached poems do not expire (the benchmark's
TTL is two hours, longer than any run).

Prints "listening on 127.0.0.1:PORT" once ready; stops on SIGINT/SIGTERM.
"""

import argparse
import html
import sys

from twisted.internet import defer, protocol, reactor
from twisted.web import resource, server

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font: 18px/1.5 Georgia, serif; max-width: 40em; margin: 3em auto; padding: 0 1em; color: #222; }}
  pre {{ font: inherit; white-space: pre-wrap; }}
  footer {{ margin-top: 3em; font: 14px sans-serif; color: #777; }}
</style>
</head>
<body>
<article>
<pre>{poem}</pre>
</article>
<footer>
<p>Served by Twisted: {cache} from the cache.</p>
</footer>
</body>
</html>
"""


# ---- the client side: fetching one poem, as in the tutorial ----

class PoetryProtocol(protocol.Protocol):
    poem = b""

    def connectionMade(self):
        self.transport.write(self.factory.name.encode("utf-8") + b"\n")

    def dataReceived(self, data):
        self.poem += data

    def connectionLost(self, reason):
        self.factory.poem_finished(self.poem)


class PoetryClientFactory(protocol.ClientFactory):
    protocol = PoetryProtocol

    def __init__(self, name, deferred):
        self.name = name
        self.deferred = deferred

    def poem_finished(self, poem):
        if self.deferred is not None:
            d, self.deferred = self.deferred, None
            d.callback(poem)

    def clientConnectionFailed(self, connector, reason):
        if self.deferred is not None:
            d, self.deferred = self.deferred, None
            d.errback(reason)


def get_poem(host, port, name):
    """A Deferred that fires with the poem's bytes (empty if unknown)."""
    d = defer.Deferred()
    reactor.connectTCP(host, port, PoetryClientFactory(name, d), timeout=30)
    return d


# ---- the cache: one fetch per poem, however many ask at once ----

class PoetryCache:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.poems = {}    # name -> poem text
        self.waiting = {}  # name -> [Deferred], while a fetch is under way
        self.fetches = 0

    def get(self, name):
        """A Deferred firing with (poem, outcome)."""
        if name in self.poems:
            return defer.succeed((self.poems[name], "HIT"))
        if name in self.waiting:
            d = defer.Deferred()
            self.waiting[name].append(d)
            return d
        self.waiting[name] = []
        self.fetches += 1
        d = get_poem(self.host, self.port, name)
        d.addCallbacks(self._fetched, self._failed, callbackArgs=(name,),
                       errbackArgs=(name,))
        return d

    def _fetched(self, poem, name):
        text = poem.decode("utf-8", "replace")
        if text:
            self.poems[name] = text
        for w in self.waiting.pop(name, []):
            w.callback((text, "COALESCED"))
        return text, "MISS"

    def _failed(self, err, name):
        for w in self.waiting.pop(name, []):
            w.errback(err)
        return err


# ---- the server side: twisted.web ----

def render_page(poem, outcome):
    title = poem.split("\n", 1)[0][:100]
    return PAGE.format(title=html.escape(title), poem=html.escape(poem),
                       cache=outcome.lower()).encode("utf-8")


class PoemPage(resource.Resource):
    isLeaf = True

    def __init__(self, cache, name):
        super().__init__()
        self.cache, self.name = cache, name

    def render_GET(self, request):
        d = self.cache.get(self.name)
        d.addCallbacks(self._answer, self._fail, callbackArgs=(request,),
                       errbackArgs=(request,))
        return server.NOT_DONE_YET

    def _answer(self, result, request):
        poem, outcome = result
        if request._disconnected:
            return
        if not poem:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"no such poem\n")
        else:
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"x-cache", outcome.encode("ascii"))
            page = render_page(poem, outcome)
            request.setHeader(b"content-length", b"%d" % len(page))
            request.write(page)
        request.finish()

    def _fail(self, err, request):
        if request._disconnected:
            return
        request.setResponseCode(502)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(f"upstream failed: {err.getErrorMessage()}\n".encode("utf-8"))
        request.finish()


class Poems(resource.Resource):
    def __init__(self, cache):
        super().__init__()
        self.cache = cache

    def getChild(self, name, request):
        name = name.decode("utf-8", "replace")
        if not name or "/" in name or len(name) > 200:
            return resource.NoResource()
        return PoemPage(self.cache, name)


class QuietSite(server.Site):
    def log(self, request):
        pass  # no access log: the benchmark would measure the log


def main():
    ap = argparse.ArgumentParser(description="a caching poetry proxy in Twisted")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of a raw poetry server")
    ap.add_argument("--port", type=int, default=0, help="HTTP port on 127.0.0.1 (0: any)")
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    cache = PoetryCache(host or "127.0.0.1", int(port))
    root = resource.Resource()
    root.putChild(b"poems", Poems(cache))
    listening = reactor.listenTCP(args.port, QuietSite(root), backlog=511,
                                  interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{listening.getHost().port}", flush=True)
    reactor.run()
    print(f"twisted_proxy: {cache.fetches} upstream fetch(es)", file=sys.stderr)


if __name__ == "__main__":
    main()
