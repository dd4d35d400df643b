"""Server-driven paging: ``$top``, ``$skiptoken`` bound to the query it pages, ``@odata.nextLink``.

Skip tokens (``odata.SkipTokens``) are keyed per ``Pager``, that is per running emulator, and bound to the
path and query they page.
"""

import secrets
from urllib.parse import parse_qsl, quote, urlencode

from . import odata
from .calls import Outcome


class Pager:
    """Cuts a collection into pages; ``list_response`` is the whole answer of a list route."""

    def __init__(self, strict=None):
        self.skip_tokens = odata.SkipTokens(secrets.token_bytes(32))
        self.strict = strict  # StrictSettings: short_pages, empty_pages (graph-api.md 5: pages may be short or empty)

    def next_link(self, call, start):
        query = [(k, v) for k, v in parse_qsl(call.raw_query, keep_blank_values=True) if k.lower() != "$skiptoken"]
        query.append(("$skiptoken", self.skip_tokens.encode(self.paging_scope(call), start)))
        return f"{call.base_url}{call.path}?{urlencode(query, quote_via=quote, safe='$(),:/')}"

    @staticmethod
    def paging_scope(call):
        query = sorted((k.lower(), v) for k, v in parse_qsl(call.raw_query, keep_blank_values=True) if k.lower() != "$skiptoken")
        return call.path.lower() + "?" + urlencode(query)

    def start_index(self, call):
        token = call.query.get("$skiptoken")
        if token is None:
            return 0
        return self.skip_tokens.decode(self.paging_scope(call), token)

    def page_iterable(self, call, iterator, predicate, top, count):
        """Collect one page from ``iterator`` of (index, entity); returns (items, next index or None, count)."""
        page, next_start = [], None
        for index, entity in iterator:
            if predicate is not None and not predicate(entity):
                continue
            if len(page) == top:
                next_start = index
                break
            page.append(entity)
        return page, next_start

    def list_response(self, call, context, iterator_factory, predicate, select, kind, with_type=False, count_total=None, shape=None):
        top = odata.parse_top(call.query.get("$top"))
        start = self.start_index(call)
        if self.strict is not None and self.strict.empty_page():
            # an empty page that still carries a nextLink, when there is something left to page to
            page, next_start = self.page_iterable(call, iterator_factory(start), predicate, 0, None)
        else:
            size = self.strict.page_size(top) if self.strict is not None else top
            page, next_start = self.page_iterable(call, iterator_factory(start), predicate, size, None)
        body = {"@odata.context": context}
        if count_total is not None and start == 0:
            body["@odata.count"] = count_total()
        if next_start is not None:
            body["@odata.nextLink"] = self.next_link(call, next_start)
        if shape is not None:  # the iterator's entities only need finishing (list_users with $select)
            body["value"] = [shape(entity) for entity in page]
        else:
            body["value"] = [odata.project(entity, select, kind_of(entity, kind), with_type) for entity in page]
        return Outcome(200, body)


def kind_of(entity, default):
    marker = entity.get("@odata.type", "")
    if marker.endswith(".group"):
        return "group"
    if marker.endswith(".user"):
        return "user"
    return default
