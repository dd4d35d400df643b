# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Paging of the Microsoft Graph client: a collection's nextLink chain, followed ahead of its reader.

``_PageFetcher`` follows the chain in a thread of its own (``GraphClient.iter_pages`` and
``get_all`` with ``prefetch``); the connections of the client's session (``_GraphAdapter``) tell
that thread when its request is on the wire and when the answer is back, so that the reader
holds back while the next request is being prepared.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import threading

try:
    import requests.adapters
    import urllib3.connection
    import urllib3.connectionpool

    HAS_REQUESTS = True
except ImportError:  # the client refuses to start without them (graph.HAS_GRAPH_DEPS)
    HAS_REQUESTS = False

from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import GraphError


# Longest a consumer of a prefetched collection holds back for the paging thread (_PageFetcher.yield_to_wire).
WIRE_WAIT_LIMIT = 0.05

# The paging thread of a _PageFetcher, while it runs, keeps itself here (thread-local) so that the
# connection it sends through can tell it when its request is on the wire and when the answer is back.
_PAGING_THREAD = threading.local()


def _wire_event(name):
    """Tell this thread's _PageFetcher, if it has one, that its request is ``waiting`` or ``answered``."""
    fetcher = getattr(_PAGING_THREAD, "fetcher", None)
    if fetcher is not None:
        getattr(fetcher, name)()


class _WireEvents(object):
    """http.client's getresponse() is called once the request is sent: that is when the paging thread
    starts waiting for Graph, and it returns once the answer's headers are in."""

    def getresponse(self, *args, **kwargs):
        _wire_event("waiting")
        response = super(_WireEvents, self).getresponse(*args, **kwargs)
        _wire_event("answered")
        return response


if HAS_REQUESTS:

    class _HTTPSConnection(_WireEvents, urllib3.connection.HTTPSConnection):
        pass

    class _HTTPConnection(_WireEvents, urllib3.connection.HTTPConnection):
        pass

    class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class _GraphAdapter(requests.adapters.HTTPAdapter):
        """requests' adapter, with connections that report to a paging thread (see _PageFetcher)."""

        def init_poolmanager(self, *args, **kwargs):
            super(_GraphAdapter, self).init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}
else:  # keeps this file importable for sanity tests without the libraries
    _GraphAdapter = None


class _PageFetcher:
    """Follows a collection's nextLink chain in a thread, up to ``ahead`` pages before the consumer.

    The chain is the read path's critical path: a page's request can only leave once the page
    before it is in. Between the moment an answer arrives and the moment the next request is on
    the wire the paging thread needs the interpreter (reading the body, preparing the request),
    and a consumer busy parsing or classifying would make it wait (Python runs one thread at a
    time; a json.loads of a page of 999 users holds it for ~8 ms). The connections tell this
    thread's fetcher when that window opens (``answered``) and closes (``waiting``); the consumer
    calls ``yield_to_wire`` before each page and item and holds back while it is open. At 50,000
    users that took the chain from ~116 to ~108 ms per page.
    """

    def __init__(self, client, path, params, headers, ahead):
        self._client = client
        self._headers = headers
        self._ahead = ahead
        self._ready = []  # pages fetched and not yet taken, then (None, error) or the end marker
        self._done = False
        self._stopped = False
        self._changed = threading.Condition()
        self._wire_free = threading.Event()  # clear while the paging thread has an answer and no request out
        self._wire_free.set()
        self._signalled = False  # a connection reported to this fetcher: its signals can be relied on
        self._held_back = False  # the paging thread waits for the consumer to take a page (``ahead`` reached)
        self._thread = threading.Thread(target=self._run, args=(path, params), name="graph-page-fetcher")
        self._thread.daemon = True
        self._thread.start()

    # Called in the paging thread only (_WireEvents, GraphClient._sleep_until).
    def waiting(self):
        self._signalled = True
        self._wire_free.set()

    def answered(self):
        self._wire_free.clear()

    def yield_to_wire(self):
        """Hold the calling (consuming) thread while the paging thread has an answer in hand and no request out."""
        if not self._wire_free.is_set() and not self._wire_free.wait(WIRE_WAIT_LIMIT):
            # A page's turnaround takes a few ms. A signal that did not come (a transport that does not
            # report, such as a proxy's) must not slow the consumer: stop holding back for this chain.
            self._signalled = False
            self._wire_free.set()

    def _run(self, url, params):
        _PAGING_THREAD.fetcher = self
        try:
            while url:
                with self._changed:
                    if len(self._ready) >= self._ahead:
                        self._wire_free.set()  # about to wait for the consumer: let it run
                    while not self._stopped and len(self._ready) >= self._ahead:
                        self._held_back = True
                        self._changed.wait()
                    self._held_back = False
                    if self._stopped:
                        return
                # The next request goes out as soon as this page has arrived; the consumer parses it.
                content = self._client.request("GET", url, params=params, headers=self._headers, raw_body=True).content
                url, params = _next_link(content), None
                with self._changed:
                    self._ready.append(((content, url), None))
                    self._changed.notify_all()
        # handed to the consumer, raised there
        except BaseException as exc:  # pylint: disable=broad-except
            with self._changed:
                self._ready.append((None, exc))
                self._changed.notify_all()
        finally:
            _PAGING_THREAD.fetcher = None
            self._wire_free.set()
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def __iter__(self):
        while True:
            with self._changed:
                while not self._ready and not self._done:
                    self._changed.wait()
                if not self._ready:
                    return
                item, error = self._ready.pop(0)
                if self._held_back and self._signalled:
                    # This releases the paging thread: let it send its next request before working on the page.
                    self._wire_free.clear()
                self._changed.notify_all()
            if error is not None:
                raise error
            content, followed = item
            self.yield_to_wire()
            page = _parse_page(content)
            if page.get("@odata.nextLink") != followed:
                # Cannot happen with JSON as Graph writes it; never page on from a link the page does not hold
                # (iter_pages stops the thread as the error leaves it).
                raise GraphError(
                    "paging stopped: the @odata.nextLink found in the raw page (%r) is not the page's own (%r)" % (followed, page.get("@odata.nextLink"))
                )
            yield page

    def stop(self):
        with self._changed:
            self._stopped = True
            self._ready = []
            self._changed.notify_all()
        self._thread.join()


# The top-level "@odata.nextLink" member of a page, found in its raw JSON. In JSON text a quote inside a
# string is always escaped, so this cannot match inside a value; _PageFetcher still checks it against
# the parsed page.
_NEXT_LINK = re.compile(rb'"@odata\.nextLink"\s*:\s*("(?:[^"\\]|\\.)*")')


def _next_link(content):
    """The page's @odata.nextLink, read from its raw JSON without parsing the page (None at the end)."""
    match = _NEXT_LINK.search(content or b"")
    if match is None:
        return None
    try:
        return json.loads(match.group(1).decode("utf-8"))
    except ValueError:
        return None


def _parse_page(content):
    """A page's JSON body as a dict ({} for an empty or unreadable body, as request() gives)."""
    if not content:
        return {}
    try:
        page = json.loads(content)
    except ValueError:
        return {}
    return page if isinstance(page, dict) else {}
