# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The single Microsoft Graph client of the collection.

It is the only place that speaks HTTP: authentication (msal), one pooled
requests session, retries that honour Retry-After, paging, JSON batching and
client-side write pacing. It knows nothing about licensing.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import contextlib
import logging
import re
import threading
import time
import traceback
import uuid

from concurrent.futures import ThreadPoolExecutor

try:
    from urllib.parse import urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported, keeps the import sanity test quiet
    from urllib import urlencode  # type: ignore

try:
    # Every library the client needs, checked in one place (graph_auth and graph_paging import what they use).
    import msal  # pylint: disable=unused-import
    import requests
    import requests.adapters
    import requests.utils
    import urllib3.connection  # pylint: disable=unused-import
    import urllib3.connectionpool  # pylint: disable=unused-import
    HAS_GRAPH_DEPS = True
    GRAPH_DEPS_IMPORT_ERROR = None
except ImportError:
    requests = None
    HAS_GRAPH_DEPS = False
    GRAPH_DEPS_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.entraops.licensing.plugins.module_utils.graph_auth import (  # pylint: disable=unused-import
    CLOUDS,
    is_loopback_host,
    load_certificate_credential,
    resolve_endpoints,
    token_claims,
    token_provider,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import (
    GraphAuthError,
    GraphConfigError,
    GraphError,
    GraphOutcomeUnknown,
    GraphRetryBudgetExceeded,
    _error_fields,
    _header,
    _path_only,
    _path_root,
    _short,
    outcome_unknown_message,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import WritePacer
from ansible_collections.entraops.licensing.plugins.module_utils.graph_paging import _GraphAdapter, _PageFetcher, _wire_event
from ansible_collections.entraops.licensing.plugins.module_utils.graph_retry import (
    READ_METHODS,
    _never_sent,
    backoff,
    is_outcome_unknown,
    may_resend,
    parse_retry_after,
    retry_time_exceeded,
)

GRAPH_DEPS = "msal and requests"

API_VERSION = "v1.0"
BATCH_LIMIT = 20  # Graph refuses $batch bodies with more than 20 requests
USER_AGENT = "entraops.licensing (Ansible collection)"

# Independent collection chains (each a chain of pages that must follow one another, such as the
# member lists of different groups) that a caller may read side by side (GraphClient.read_chains).
READ_CHAINS = 8
_LOGGER = logging.getLogger("ansible_collections.entraops.licensing.graph")


class GraphResponse:
    """Status, headers (case-insensitive) and parsed JSON body of one Graph reply."""

    def __init__(self, status, headers, body, request_id=None, client_request_id=None, content=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.content = content    # the unparsed body, for request(raw_body=True) only
        self.request_id = request_id
        self.client_request_id = client_request_id

    @property
    def ok(self):
        return 200 <= self.status < 300


class BatchResult:
    """The final answer for one $batch sub-request, in the caller's input order.

    ``outcome_unknown`` is True for a write that got 500/502/503/504 (or whose
    whole batch was lost in transit): it may or may not have been applied and was
    not re-sent; re-read the state before acting on it.
    """

    def __init__(self, index, request_id, method, url, status, headers=None, body=None, outcome_unknown=False, attempts=1, error=None):
        self.index = index
        self.id = request_id
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.outcome_unknown = outcome_unknown
        self.attempts = attempts
        self._error = error

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300 and not self.outcome_unknown

    def error(self):
        """A GraphError describing a failed item (None when the item succeeded)."""
        if self.ok:
            return None
        if self._error is not None:
            return self._error
        code, message, request_id, client_request_id = _error_fields(self.body)
        request_id = request_id or _header(self.headers, "request-id")
        cls = GraphOutcomeUnknown if self.outcome_unknown else GraphError
        if self.outcome_unknown and self.status is not None:
            message = outcome_unknown_message(message or "server error")
        return cls(message or "no error message", status=self.status, code=code, request_id=request_id,
                   client_request_id=client_request_id, method=self.method, path=_path_only(self.url))

    def to_dict(self):
        return {"id": self.id, "method": self.method, "url": _path_only(self.url), "status": self.status,
                "headers": dict(self.headers), "body": self.body, "outcome_unknown": self.outcome_unknown,
                "attempts": self.attempts}


class GraphStats:
    """Counters for one client; thread safe. Read with ``as_dict()``."""

    FIELDS = ("requests", "batch_requests", "batch_items", "writes", "retries", "throttled",
              "seconds_waited", "seconds_paced", "outcome_unknown", "token_acquisitions")

    def __init__(self):
        self._lock = threading.Lock()
        self._values = dict((name, 0) for name in self.FIELDS)

    def add(self, name, amount=1):
        with self._lock:
            self._values[name] += amount

    def as_dict(self):
        with self._lock:
            values = dict(self._values)
        values["seconds_waited"] = round(values["seconds_waited"], 3)
        values["seconds_paced"] = round(values["seconds_paced"], 3)
        return values


if HAS_GRAPH_DEPS:
    _SessionBase = requests.Session
else:  # keeps this file importable for sanity tests without the libraries
    _SessionBase = object


class _GraphSession(_SessionBase):
    """requests session that ignores REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE and .netrc but keeps proxy variables.

    requests lets those variables silently override an explicit ``verify``
    (also for msal's token requests), so trust_env is off and only the proxy
    settings of the environment (HTTPS_PROXY, NO_PROXY, ...) are applied.
    """

    def __init__(self, verify, pool_size, timeout):
        super(_GraphSession, self).__init__()
        self.trust_env = False
        self.verify = verify
        self.default_timeout = timeout
        self.headers["User-Agent"] = USER_AGENT
        adapter = _GraphAdapter(pool_connections=4, pool_maxsize=max(4, pool_size), max_retries=0)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        proxies = dict(proxies or {})
        for scheme, proxy in requests.utils.get_environ_proxies(url, no_proxy=proxies.get("no_proxy")).items():
            proxies.setdefault(scheme, proxy)
        return super(_GraphSession, self).merge_environment_settings(url, proxies, stream, verify, cert)

    def request(self, method, url, *args, **kwargs):  # pylint: disable=arguments-differ
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super(_GraphSession, self).request(method, url, *args, **kwargs)


class GraphClient:
    """Microsoft Graph v1.0 client: auth, retries, paging, batching.

    Exactly one of ``client_secret``, ``client_certificate_path`` or
    ``access_token`` authenticates; the first two need ``tenant_id`` and
    ``client_id``. Paths are relative to the version root (``/users``).
    """

    def __init__(self, tenant_id=None, client_id=None, client_secret=None, client_certificate_path=None,
                 client_certificate_password=None, access_token=None, cloud="public", graph_url=None,
                 authority_url=None, ca_bundle=None, timeout=30, max_retry_time=300, write_rate=None,
                 max_concurrency=4, backoff_base=1.0, backoff_cap=60.0, clock=None, sleep=None):
        if not HAS_GRAPH_DEPS:
            raise GraphConfigError("The Graph client needs the Python libraries %s" % GRAPH_DEPS)
        self.graph_root, self.authority_root = resolve_endpoints(cloud, graph_url, authority_url)
        self.api_root = "%s/%s" % (self.graph_root, API_VERSION)
        self.scope = "%s/.default" % self.graph_root
        self.timeout = timeout
        self.max_retry_time = float(max_retry_time)
        self.max_concurrency = max(1, int(max_concurrency))
        # Reads only: chains of pages are latency-bound, and Graph's budgets count resource units, not connections.
        self.read_chains = max(self.max_concurrency, READ_CHAINS)
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self.stats_counter = GraphStats()
        self.pacer = WritePacer(write_rate, clock=self._clock, sleep=self._sleep)
        # One connection per chain, plus a prefetching chain and a single read beside them.
        self.session = _GraphSession(ca_bundle or True, self.read_chains + 2, (timeout, timeout))
        self._graph_origin = _path_root(self.graph_root).lower()
        self._token_provider = token_provider(self, tenant_id, client_id, client_secret, client_certificate_path,
                                              client_certificate_password, access_token, instance_discovery=authority_url is None)

    @property
    def stats(self):
        return self.stats_counter

    def statistics(self):
        """A copy of the counters: requests, retries, throttled, seconds_waited, ..."""
        return self.stats_counter.as_dict()

    def close(self):
        self.session.close()

    def granted_permissions(self):
        """The application permissions the access token carries (its ``roles`` claim), sorted; None when it does not say.

        Read from the token's payload without checking its signature: the list only informs a
        preflight, Graph itself enforces the permissions. None for a token that is not a JWT or has
        no ``roles`` claim (a delegated token, or an app with no application permission).
        The token itself is never returned or logged.
        """
        claims = token_claims(self._token_provider.get_token())
        roles = claims.get("roles") if claims else None
        if not isinstance(roles, list):
            return None
        return sorted(set(str(role) for role in roles if isinstance(role, str) and role))

    # ------------------------------------------------------------------ URLs

    def url_for(self, path):
        """Absolute URL for a path under the version root, or a nextLink that points at the same Graph host."""
        if path.startswith("https://") or path.startswith("http://"):
            if _path_root(path).lower() != self._graph_origin:
                raise GraphConfigError("Refusing to send the access token to %s: it is not the configured Graph host %s"
                                       % (_path_root(path), self._graph_origin))
            return path
        if not path.startswith("/"):
            path = "/" + path
        return self.api_root + path

    # -------------------------------------------------------------- requests

    def get(self, path, params=None, headers=None):
        """GET and return the parsed JSON body."""
        return self.request("GET", path, params=params, headers=headers).body

    def post(self, path, body=None, headers=None, idempotent=False):
        return self.request("POST", path, body=body, headers=headers, idempotent=idempotent)

    def patch(self, path, body=None, headers=None, idempotent=False):
        return self.request("PATCH", path, body=body, headers=headers, idempotent=idempotent)

    def delete(self, path, headers=None, idempotent=False):
        return self.request("DELETE", path, headers=headers, idempotent=idempotent)

    def request(self, method, path, params=None, body=None, headers=None, idempotent=None, paced=True, raw_body=False):
        """Send one request with retries; return a GraphResponse for 2xx or raise GraphError.

        ``raw_body``: a 2xx answer keeps its body unparsed, as bytes in ``content`` (``body`` is
        None); the paging thread uses it to send the next request before the page is parsed.

        Reads (and writes marked ``idempotent``) are repeated on 429/502/503/504,
        timeouts and dropped connections. Other writes are repeated only on 429
        and on 503 with Retry-After (Graph applied nothing); any other failure
        whose outcome is unknown raises GraphOutcomeUnknown and is never re-sent.
        ``paced=False`` (the $batch envelope) leaves counting writes and unknown
        outcomes to the caller, which counts them per item.
        """
        method = method.upper()
        is_write = method not in READ_METHODS
        if idempotent is None:
            idempotent = not is_write
        url = self.url_for(path)
        if params:
            url = "%s%s%s" % (url, "&" if "?" in url else "?", urlencode(params, safe="$,'/:()"))
        if is_write and paced:
            self._pace(1)
        started = self._clock()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self._token_provider.get_token()
            client_request_id = str(uuid.uuid4())
            send_headers = {"Authorization": "Bearer %s" % token, "client-request-id": client_request_id,
                            "Accept": "application/json"}
            if headers:
                send_headers.update(headers)
            self.stats_counter.add("requests")
            if is_write and paced:
                self.stats_counter.add("writes")
            try:
                reply = self.session.request(method, url, json=body, headers=send_headers)
            except requests.exceptions.RequestException as exc:
                self._after_transport_error(exc, method, url, idempotent, started, attempt, client_request_id, count_unknown=paced)
                continue
            received = self._clock()
            response = self._to_response(reply, client_request_id, raw_body=raw_body)
            _LOGGER.debug("%s %s -> %s (request-id %s)", method, _path_only(url), response.status, response.request_id)
            if response.ok:
                return response
            if response.status == 401 and self._token_provider.can_refresh and not refreshed:
                # The cached token may have expired or been revoked early: get a fresh one once.
                refreshed = True
                self._token_provider.get_token(force_refresh=True)
                self.stats_counter.add("retries")
                continue
            error = self._error_from(response, method, url)
            if response.status == 401:
                raise self._unauthorized(error, refreshed)
            retry_after = parse_retry_after(_header(response.headers, "Retry-After"))
            if response.status == 429:
                self.stats_counter.add("throttled")
            if self._may_resend(response.status, retry_after, is_write, idempotent):
                wait = retry_after if retry_after is not None else self._backoff(attempt)
                self._wait_before_retry(wait, started, received, error, attempt)
                continue
            if is_outcome_unknown(response.status, is_write, idempotent):
                if paced:
                    self.stats_counter.add("outcome_unknown")
                raise GraphOutcomeUnknown(
                    outcome_unknown_message(error.message or "server error"),
                    status=error.status, code=error.code, request_id=error.request_id,
                    client_request_id=error.client_request_id, method=method, path=error.path)
            raise error

    _may_resend = staticmethod(may_resend)

    def _unauthorized(self, error, refreshed):
        if not self._token_provider.can_refresh:
            error.message = ("%s; the access_token given was rejected (expired or invalid) and cannot be refreshed: "
                             "give a fresh token or client credentials" % (error.message or "Unauthorized"))
        elif refreshed:
            error.message = "%s; a freshly acquired token was rejected as well" % (error.message or "Unauthorized")
        return GraphAuthError(error.message, status=error.status, code=error.code, request_id=error.request_id,
                              client_request_id=error.client_request_id, method=error.method, path=error.path)

    def _after_transport_error(self, exc, method, url, idempotent, started, attempt, client_request_id, count_unknown=True):
        """Decide what a transport failure means; returns to retry, raises otherwise."""
        path = _path_only(url)
        if isinstance(exc, requests.exceptions.SSLError):
            raise GraphError("TLS verification failed for %s: %s; set ca_bundle to the CA that signs it"
                             % (_path_root(url), _short(exc)), method=method, path=path, client_request_id=client_request_id)
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, requests.exceptions.MissingSchema)):
            raise GraphConfigError("Invalid request to %s: %s" % (path, _short(exc)), method=method, path=path)
        not_sent = _never_sent(exc)
        if not (idempotent or not_sent):
            if count_unknown:
                self.stats_counter.add("outcome_unknown")
            raise GraphOutcomeUnknown(
                outcome_unknown_message(_transport_text(exc, url)),
                method=method, path=path, client_request_id=client_request_id)
        error = GraphError(_transport_text(exc, url), method=method, path=path, client_request_id=client_request_id)
        self._wait_before_retry(self._backoff(attempt), started, self._clock(), error, attempt)

    def _wait_before_retry(self, wait, started, received, error, attempt):
        """Sleep ``wait`` seconds counted from ``received`` unless that breaks the retry budget."""
        resume_at = received + wait
        gave_up = retry_time_exceeded(started, resume_at, wait, attempt, self.max_retry_time)
        if gave_up:
            raise GraphRetryBudgetExceeded(
                "%s; %s" % (error.message or "request failed", gave_up), status=error.status, code=error.code, request_id=error.request_id,
                client_request_id=error.client_request_id, method=error.method, path=error.path)
        self.stats_counter.add("retries")
        _LOGGER.info("retrying %s %s after %.2fs (%s)", error.method, error.path, wait, error.status or "transport error")
        self._sleep_until(resume_at)

    def _sleep_until(self, resume_at):
        began = self._clock()
        if resume_at > began:
            _wire_event("waiting")
            self._sleep(resume_at - began)
            # sleep() may wake marginally early on some platforms; never resume before the deadline.
            while self._clock() < resume_at:
                self._sleep(max(resume_at - self._clock(), 0.001))
            self.stats_counter.add("seconds_waited", self._clock() - began)

    def _backoff(self, attempt):
        return backoff(attempt, self.backoff_base, self.backoff_cap)

    def _pace(self, count):
        waited = self.pacer.acquire(count)
        if waited:
            self.stats_counter.add("seconds_paced", waited)

    def _to_response(self, reply, client_request_id, raw_body=False):
        body = None
        if raw_body and 200 <= reply.status_code < 300:
            return GraphResponse(reply.status_code, reply.headers, None, request_id=reply.headers.get("request-id"),
                                 client_request_id=reply.headers.get("client-request-id") or client_request_id, content=reply.content)
        if reply.content:
            try:
                body = reply.json()
            except ValueError:
                body = None
        request_id = reply.headers.get("request-id")
        if not request_id:
            request_id = _error_fields(body)[2]
        return GraphResponse(reply.status_code, reply.headers, body, request_id=request_id,
                             client_request_id=reply.headers.get("client-request-id") or client_request_id)

    def _error_from(self, response, method, url):
        code, message, request_id, client_request_id = _error_fields(response.body)
        return GraphError(message or "no error message", status=response.status, code=code,
                          request_id=response.request_id or request_id,
                          client_request_id=response.client_request_id or client_request_id,
                          method=method, path=_path_only(url))

    # ---------------------------------------------------------------- paging

    def iter_pages(self, path, params=None, headers=None, prefetch=False):
        """Yield each page (the JSON body) of a collection, following @odata.nextLink verbatim.

        ``headers`` (for example ConsistencyLevel) are sent with every page. With ``prefetch``
        the next page is requested while the caller works on the current one: pages must follow
        one another, so this is the only overlap paging allows. ``prefetch`` is True (one page
        ahead) or the number of pages the chain may run ahead of the caller (a caller that cannot
        consume yet, for example because it still reads what it needs to classify the items, lets
        the chain go on meanwhile). At most that many pages, plus the one the caller holds, are
        in memory; a caller faster than the chain holds one or two.
        """
        if not prefetch:
            next_url, next_params = path, params
            while next_url:
                page = self.request("GET", next_url, params=next_params, headers=headers).body or {}
                yield page
                next_url, next_params = page.get("@odata.nextLink"), None
            return
        with self._page_fetcher(path, params, headers, prefetch) as fetcher:
            yield from fetcher

    def get_all(self, path, params=None, headers=None, prefetch=False):
        """Yield every item of a collection across pages, holding one page (two with ``prefetch``) in memory at a time."""
        if not prefetch:
            for page in self.iter_pages(path, params=params, headers=headers):
                yield from page.get("value") or []
            return
        with self._page_fetcher(path, params, headers, prefetch) as fetcher:
            for page in fetcher:
                for item in page.get("value") or []:
                    fetcher.yield_to_wire()
                    yield item

    @contextlib.contextmanager
    def _page_fetcher(self, path, params, headers, prefetch):
        fetcher = _PageFetcher(self, path, params, headers, max(1, int(prefetch)))
        try:
            yield fetcher
        finally:
            # A caller that stops early leaves at most one request in flight; its page is dropped.
            fetcher.stop()

    # ---------------------------------------------------------------- $batch

    def batch(self, requests_list, max_concurrency=None):
        """Send any number of sub-requests through $batch; return BatchResult objects in input order.

        Each sub-request is a dict: ``method``, ``url`` (relative to the version
        root, like ``/users/{id}/assignLicense``), optional ``body``,
        ``headers``, ``id`` and ``idempotent``. Throttled items (429, 503 with
        Retry-After; reads also 502/503/504) are re-sent after their own
        Retry-After; writes that get 500/502/503/504 come back with
        ``outcome_unknown`` and are never re-sent.
        """
        items = self._prepare_batch_items(requests_list)
        results = [None] * len(items)
        if not items:
            return results
        concurrency = max(1, int(max_concurrency or self.max_concurrency))
        started = self._clock()
        not_before = dict((item["index"], started) for item in items)
        attempts = dict((item["index"], 0) for item in items)
        by_index = dict((item["index"], item) for item in items)
        with ThreadPoolExecutor(max_workers=concurrency) as executor:
            while not_before:
                now = self._clock()
                ready = sorted(index for index, moment in not_before.items() if moment <= now)
                if not ready:
                    self._sleep_until(min(not_before.values()))
                    continue
                for index in ready:
                    del not_before[index]
                    attempts[index] += 1
                chunks = [ready[offset:offset + BATCH_LIMIT] for offset in range(0, len(ready), BATCH_LIMIT)]
                outcomes = list(executor.map(lambda chunk: self._send_batch_chunk([by_index[i] for i in chunk]), chunks))
                for outcome in outcomes:
                    for index, verdict in outcome:
                        self._settle_batch_item(by_index[index], verdict, attempts[index], started, not_before, results)
        return results

    def _prepare_batch_items(self, requests_list):
        items = []
        seen = set()
        for index, sub in enumerate(requests_list):
            method = str(sub.get("method", "GET")).upper()
            url = sub.get("url") or ""
            if not url.startswith("/") or url.startswith("/v1.0/") or url.startswith("/beta/"):
                raise GraphConfigError("$batch item %d: url must be relative to the version root (like /users/{id}), got %r"
                                       % (index, _path_only(url)))
            item_id = str(sub.get("id") if sub.get("id") is not None else index + 1)
            if item_id.lower() in seen:
                raise GraphConfigError("$batch item ids must be unique (case-insensitive); %r is repeated" % item_id)
            seen.add(item_id.lower())
            headers = dict(sub.get("headers") or {})
            if sub.get("body") is not None and not _header(headers, "Content-Type"):
                headers["Content-Type"] = "application/json"
            is_write = method not in READ_METHODS
            items.append({"index": index, "id": item_id, "method": method, "url": url, "body": sub.get("body"),
                          "headers": headers, "is_write": is_write,
                          "idempotent": bool(sub.get("idempotent")) or not is_write})
        return items

    def _send_batch_chunk(self, chunk):
        """POST one $batch; returns [(index, verdict)] where verdict is a dict describing the item's reply."""
        writes = sum(1 for item in chunk if item["is_write"])
        unsafe_writes = any(item["is_write"] and not item["idempotent"] for item in chunk)
        payload = {"requests": []}
        for item in chunk:
            sub = {"id": item["id"], "method": item["method"], "url": item["url"]}
            if item["headers"]:
                sub["headers"] = item["headers"]
            if item["body"] is not None:
                sub["body"] = item["body"]
            payload["requests"].append(sub)
        self._pace(writes)
        self.stats_counter.add("batch_requests")
        self.stats_counter.add("batch_items", len(chunk))
        self.stats_counter.add("writes", writes)
        try:
            # The outer POST carries no write itself: a 429 on it means nothing was applied.
            response = self.request("POST", "/$batch", body=payload, idempotent=not unsafe_writes, paced=False)
        except GraphOutcomeUnknown as exc:
            return [(item["index"], {"lost": exc}) for item in chunk]
        except GraphError as exc:
            return [(item["index"], {"failed": exc}) for item in chunk]
        received = self._clock()
        replies = {}
        for reply in (response.body or {}).get("responses") or []:
            replies[str(reply.get("id")).lower()] = reply
        outcome = []
        for item in chunk:
            reply = replies.get(item["id"].lower())
            if reply is None:
                missing = GraphError("$batch reply has no response for item %s" % item["id"], method=item["method"], path=item["url"])
                outcome.append((item["index"], {"lost": missing}))
            else:
                outcome.append((item["index"], {"reply": reply, "received": received}))
        return outcome

    def _settle_batch_item(self, item, verdict, attempts, started, not_before, results):
        index = item["index"]
        if "failed" in verdict:
            exc = verdict["failed"]
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], exc.status, attempts=attempts, error=exc)
            return
        if "lost" in verdict:
            exc = verdict["lost"]
            if item["idempotent"]:
                self._schedule_item_retry(item, self._backoff(attempts), self._clock(), attempts, started, not_before, results,
                                          status=None, error=exc)
                return
            self.stats_counter.add("outcome_unknown")
            unknown = GraphOutcomeUnknown(outcome_unknown_message(exc.message), status=exc.status, code=exc.code, request_id=exc.request_id,
                                          client_request_id=exc.client_request_id, method=item["method"], path=item["url"])
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], exc.status,
                                         outcome_unknown=True, attempts=attempts, error=unknown)
            return
        reply = verdict["reply"]
        status = int(reply.get("status") or 0)
        headers = reply.get("headers") or {}
        body = reply.get("body")
        if 200 <= status < 300:
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], status, headers, body, attempts=attempts)
            return
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        if status == 429:
            self.stats_counter.add("throttled")
        resend = self._may_resend(status, retry_after, item["is_write"], item["idempotent"])
        if resend:
            wait = retry_after if retry_after is not None else self._backoff(attempts)
            self._schedule_item_retry(item, wait, verdict["received"], attempts, started, not_before, results,
                                      status=status, headers=headers, body=body)
            return
        unknown = is_outcome_unknown(status, item["is_write"], item["idempotent"])
        if unknown:
            self.stats_counter.add("outcome_unknown")
        results[index] = BatchResult(index, item["id"], item["method"], item["url"], status, headers, body,
                                     outcome_unknown=unknown, attempts=attempts)

    def _schedule_item_retry(self, item, wait, received, attempts, started, not_before, results, status=None, headers=None, body=None, error=None):
        resume_at = received + wait
        gave_up = retry_time_exceeded(started, resume_at, wait, attempts, self.max_retry_time)
        if gave_up:
            index = item["index"]
            budget_error = GraphRetryBudgetExceeded("$batch item %s: %s" % (item["id"], gave_up),
                                                    status=status, method=item["method"], path=item["url"])
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], status, headers, body,
                                         attempts=attempts, error=budget_error)
            return
        self.stats_counter.add("retries")
        not_before[item["index"]] = resume_at


def _transport_text(exc, url):
    if isinstance(exc, requests.exceptions.Timeout):
        return "no reply from %s within the timeout" % _path_root(url)
    # urllib3 quotes the whole URL; keep its path only (queries are not logged).
    text = re.sub(r"url: (\S+)", lambda match: "url: %s" % _path_only(match.group(1)), _short(exc))
    return "connection to %s failed: %s" % (_path_root(url), text)
