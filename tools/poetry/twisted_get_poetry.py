#!/usr/bin/python3
"""A Twisted poetry client in the style of Dave Peticolas' tutorial
("Twisted Introduction", the get-poetry clients): a Protocol that
accumulates the poem and, when the server closes, hands it to its factory,
which fires a Deferred.

    /usr/bin/python3 twisted_get_poetry.py [--name NAME] HOST:PORT [HOST:PORT ...]

It is the reference peer for poetry-server, poetry-client and the caching
poetry proxy: a client nobody here wrote in C. Exits 0 when every server
sent a poem, 1 otherwise (refused, reset, timed out, or empty, which is how
poetry-server answers an unknown name).
"""
import argparse
import sys
import time

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol


class PoetryProtocol(Protocol):
    poem = b""

    def connectionMade(self):
        if self.factory.name is not None:
            self.transport.write(self.factory.name.encode() + b"\n")

    def dataReceived(self, data):
        self.poem += data

    def connectionLost(self, reason):
        # A clean close ends the poem; anything else (a reset) loses it.
        if reason.check(ConnectionDone):
            self.factory.poem_finished(self.poem)
        else:
            self.factory.poem_failed(reason)


class PoetryClientFactory(ClientFactory):
    protocol = PoetryProtocol

    def __init__(self, name):
        self.deferred = None
        self.name = name

    def _fire(self):
        # Each Deferred fires once, whichever of the callbacks comes first.
        d, self.deferred = self.deferred, None
        return d

    def poem_finished(self, poem):
        if self.deferred is not None:
            self._fire().callback(poem)

    def poem_failed(self, reason):
        if self.deferred is not None:
            self._fire().errback(reason)

    def clientConnectionFailed(self, connector, reason):
        self.poem_failed(reason)


def get_poetry(host, port, name, timeout):
    factory = PoetryClientFactory(name)
    connector = reactor.connectTCP(host, port, factory, timeout=timeout)

    def cancel(d):
        # Cancelling (addTimeout does) fires d itself, so the factory must
        # not fire it again when the connection it hangs up is lost.
        factory.deferred = None
        connector.disconnect()

    factory.deferred = defer.Deferred(cancel)
    return factory.deferred


def parse_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("not HOST:PORT: %s" % text)
    return host.strip("[]"), int(port)


def main():
    parser = argparse.ArgumentParser(description="Fetch poems over the poetry protocol.")
    parser.add_argument("--name", help='ask for NAME.txt by writing "NAME\\n"')
    parser.add_argument("--show", action="store_true", help="print the poems too")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for everything")
    parser.add_argument("servers", nargs="+", type=parse_address, metavar="HOST:PORT")
    args = parser.parse_args()

    start = time.time()
    results = []

    def got_poem(poem, i, addr):
        if not poem:
            return failed("empty poem (unknown name?)", i, addr)
        print("Task %d: got %d bytes of poetry from %s:%d" % (i, len(poem), addr[0], addr[1]))
        results.append(poem)

    def failed(why, i, addr):
        if not isinstance(why, str):
            if why.check(defer.TimeoutError):
                why = "timed out after %g s" % args.timeout
            else:
                why = why.getErrorMessage()
        print("Task %d: failed to get poetry from %s:%d: %s" % (i, addr[0], addr[1], why))
        results.append(None)

    deferreds = []
    for i, addr in enumerate(args.servers, 1):
        d = get_poetry(addr[0], addr[1], args.name, args.timeout)
        d.addTimeout(args.timeout, reactor)
        d.addCallbacks(got_poem, failed, callbackArgs=(i, addr), errbackArgs=(i, addr))
        deferreds.append(d)

    def all_done(_):
        good = [p for p in results if p is not None]
        if args.show:
            for poem in good:
                print(poem.decode("utf-8", "replace"))
        print("Got %d of %d poems in %.3f s" % (len(good), len(results), time.time() - start))
        reactor.stop()

    defer.DeferredList(deferreds).addCallback(all_done)
    reactor.run()
    return 0 if results and all(p is not None for p in results) else 1


if __name__ == "__main__":
    sys.exit(main())
