# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The single Microsoft Graph client of the collection.

It is the only place that speaks HTTP: authentication (msal), one pooled
requests session, retries that honour Retry-After, paging, JSON batching and
client-side write pacing. It knows nothing about licensing.

GraphClient, here, wires the client's concerns, each in a file of its own: graph_errors
(GraphError and its kinds), graph_auth (endpoints and token sources), graph_retry (the retry
policy), graph_pacing (AdaptivePacer: writes, resource units, audit logs), graph_paging (nextLink chains followed ahead of the reader)
and graph_batch ($batch). The names other files import from graph.py stay importable here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import logging
import re
import threading
import time
import traceback
import uuid

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

from ansible_collections.entraops.licensing.plugins.module_utils.graph_auth import resolve_endpoints, token_claims, token_provider
from ansible_collections.entraops.licensing.plugins.module_utils.graph_batch import GraphBatchMixin
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
from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import (
    AUDIT_BURST,
    AUDIT_RATE,
    DEFAULT_WRITE_RATE,
    AdaptivePacer,
    limit_percentage,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import WritePacer  # noqa: F401 pylint: disable=unused-import
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

# Imported from graph.py by other files (modules, module_utils, tests); they live beside it now.
from ansible_collections.entraops.licensing.plugins.module_utils.graph_auth import (  # pylint: disable=unused-import
    CLOUDS,
    is_loopback_host,
    load_certificate_credential,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph_batch import BatchResult  # pylint: disable=unused-import

GRAPH_DEPS = "msal and requests"

API_VERSION = "v1.0"
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
        self.content = content  # the unparsed body, for request(raw_body=True) only
        self.request_id = request_id
        self.client_request_id = client_request_id

    @property
    def ok(self):
        return 200 <= self.status < 300


class GraphStats:
    """Counters for one client; thread safe. Read with ``as_dict()``."""

    FIELDS = (
        "requests",
        "batch_requests",
        "batch_items",
        "writes",
        "retries",
        "throttled",
        "seconds_waited",
        "seconds_paced",
        "outcome_unknown",
        "token_acquisitions",
    )

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


class GraphClient(GraphBatchMixin):
    """Microsoft Graph v1.0 client: auth, retries, paging, batching.

    Exactly one of ``client_secret``, ``client_certificate_path`` or
    ``access_token`` authenticates; the first two need ``tenant_id`` and
    ``client_id``. Paths are relative to the version root (``/users``).
    """

    def __init__(
        self,
        tenant_id=None,
        client_id=None,
        client_secret=None,
        client_certificate_path=None,
        client_certificate_password=None,
        access_token=None,
        cloud="public",
        graph_url=None,
        authority_url=None,
        ca_bundle=None,
        timeout=30,
        max_retry_time=300,
        write_rate=None,
        max_concurrency=4,
        backoff_base=1.0,
        backoff_cap=60.0,
        clock=None,
        sleep=None,
    ):
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
        # Writes paced at Graph's documented budget unless told otherwise (0: only Retry-After pauses);
        # reads paced only once Graph throttles them; the audit logs at their own documented limit.
        self.pacer = AdaptivePacer(DEFAULT_WRITE_RATE if write_rate is None else write_rate, clock=self._clock, sleep=self._sleep)
        self.read_pacer = AdaptivePacer(0, clock=self._clock, sleep=self._sleep)
        self.audit_pacer = AdaptivePacer(AUDIT_RATE, burst=AUDIT_BURST, clock=self._clock, sleep=self._sleep)
        # One connection per chain, plus a prefetching chain and a single read beside them.
        self.session = _GraphSession(ca_bundle or True, self.read_chains + 2, (timeout, timeout))
        self._graph_origin = _path_root(self.graph_root).lower()
        self._token_provider = token_provider(
            self,
            tenant_id,
            client_id,
            client_secret,
            client_certificate_path,
            client_certificate_password,
            access_token,
            instance_discovery=authority_url is None,
        )

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
                raise GraphConfigError(
                    "Refusing to send the access token to %s: it is not the configured Graph host %s" % (_path_root(path), self._graph_origin)
                )
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

    def request(self, method, path, params=None, body=None, headers=None, idempotent=None, paced=True, raw_body=False, pacing=None):
        """Send one request with retries; return a GraphResponse for 2xx or raise GraphError.

        ``raw_body``: a 2xx answer keeps its body unparsed, as bytes in ``content`` (``body`` is
        None); the paging thread uses it to send the next request before the page is parsed.

        Reads (and writes marked ``idempotent``) are repeated on 429/502/503/504,
        timeouts and dropped connections. Other writes are repeated only on 429
        and on 503 with Retry-After (Graph applied nothing); any other failure
        whose outcome is unknown raises GraphOutcomeUnknown and is never re-sent.
        ``paced=False`` (the $batch envelope) leaves counting writes and unknown
        outcomes to the caller, which counts them per item.

        Every attempt first waits for its pacer (writes, reads or the audit logs; ``pacing``:
        the caller's list of (pacer, count), for an envelope), and tells it how Graph answered:
        a 429 pauses that budget until Retry-After, any other answer reports how near its limit
        Graph says it is.
        """
        method = method.upper()
        is_write = method not in READ_METHODS
        if idempotent is None:
            idempotent = not is_write
        url = self.url_for(path)
        if params:
            url = "%s%s%s" % (url, "&" if "?" in url else "?", urlencode(params, safe="$,'/:()"))
        if pacing is None:
            pacing = [(self._pacer_for(is_write, url), 1)] if (paced or not is_write) else []
        started = self._clock()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self._token_provider.get_token()
            client_request_id = str(uuid.uuid4())
            send_headers = {"Authorization": "Bearer %s" % token, "client-request-id": client_request_id, "Accept": "application/json"}
            if headers:
                send_headers.update(headers)
            for pacer, count in pacing:
                self._pace(count, pacer)
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
                if paced:  # an envelope's items tell their own budgets how near the limit they are
                    percentage = limit_percentage(response.headers)
                    for pacer, dummy in pacing:
                        pacer.answered(percentage)
                return response
            if response.status == 401 and self._token_provider.can_refresh and not refreshed:
                # The cached token may have expired or been revoked early: get a fresh one once.
                refreshed = True
                self._token_provider.get_token(force_refresh=True)
                self.stats_counter.add("retries")
                continue
            # Returns when the request may be sent again (after waiting), raises otherwise.
            self._after_failed_answer(response, method, url, (is_write, idempotent, paced), pacing, (started, received, attempt), refreshed)

    def _after_failed_answer(self, response, method, url, kind, pacing, timing, refreshed):
        is_write, idempotent, paced = kind
        started, received, attempt = timing
        error = self._error_from(response, method, url)
        if response.status == 401:
            raise self._unauthorized(error, refreshed)
        retry_after = parse_retry_after(_header(response.headers, "Retry-After"))
        if response.status == 429:
            self.stats_counter.add("throttled")
        if self._may_resend(response.status, retry_after, is_write, idempotent):
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            if response.status == 429 or retry_after is not None:
                for pacer, dummy in pacing:
                    pacer.throttled(wait, received)
            self._wait_before_retry(wait, started, received, error, attempt)
            return
        if is_outcome_unknown(response.status, is_write, idempotent):
            if paced:
                self.stats_counter.add("outcome_unknown")
            raise GraphOutcomeUnknown(
                outcome_unknown_message(error.message or "server error"),
                status=error.status,
                code=error.code,
                request_id=error.request_id,
                client_request_id=error.client_request_id,
                method=method,
                path=error.path,
            )
        raise error

    _may_resend = staticmethod(may_resend)

    def _unauthorized(self, error, refreshed):
        if not self._token_provider.can_refresh:
            error.message = "%s; the access_token given was rejected (expired or invalid) and cannot be refreshed: give a fresh token or client credentials" % (
                error.message or "Unauthorized"
            )
        elif refreshed:
            error.message = "%s; a freshly acquired token was rejected as well" % (error.message or "Unauthorized")
        return GraphAuthError(
            error.message,
            status=error.status,
            code=error.code,
            request_id=error.request_id,
            client_request_id=error.client_request_id,
            method=error.method,
            path=error.path,
        )

    def _after_transport_error(self, exc, method, url, idempotent, started, attempt, client_request_id, count_unknown=True):
        """Decide what a transport failure means; returns to retry, raises otherwise."""
        path = _path_only(url)
        if isinstance(exc, requests.exceptions.SSLError):
            raise GraphError(
                "TLS verification failed for %s: %s; set ca_bundle to the CA that signs it" % (_path_root(url), _short(exc)),
                method=method,
                path=path,
                client_request_id=client_request_id,
            )
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, requests.exceptions.MissingSchema)):
            raise GraphConfigError("Invalid request to %s: %s" % (path, _short(exc)), method=method, path=path)
        not_sent = _never_sent(exc)
        if not (idempotent or not_sent):
            if count_unknown:
                self.stats_counter.add("outcome_unknown")
            raise GraphOutcomeUnknown(outcome_unknown_message(_transport_text(exc, url)), method=method, path=path, client_request_id=client_request_id)
        error = GraphError(_transport_text(exc, url), method=method, path=path, client_request_id=client_request_id)
        self._wait_before_retry(self._backoff(attempt), started, self._clock(), error, attempt)

    def _wait_before_retry(self, wait, started, received, error, attempt):
        """Sleep ``wait`` seconds counted from ``received`` unless that breaks the retry budget."""
        resume_at = received + wait
        gave_up = retry_time_exceeded(started, resume_at, wait, attempt, self.max_retry_time)
        if gave_up:
            raise GraphRetryBudgetExceeded(
                "%s; %s" % (error.message or "request failed", gave_up),
                status=error.status,
                code=error.code,
                request_id=error.request_id,
                client_request_id=error.client_request_id,
                method=error.method,
                path=error.path,
            )
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

    def _pace(self, count, pacer=None):
        waited = (pacer or self.pacer).acquire(count)
        if waited:
            self.stats_counter.add("seconds_paced", waited)

    def _pacer_for(self, is_write, url):
        """The budget a request counts against: writes, the audit logs' own, or resource units."""
        if is_write:
            return self.pacer
        if "/auditlogs/" in _path_only(url).lower():
            return self.audit_pacer
        return self.read_pacer

    def _to_response(self, reply, client_request_id, raw_body=False):
        body = None
        if raw_body and 200 <= reply.status_code < 300:
            return GraphResponse(
                reply.status_code,
                reply.headers,
                None,
                request_id=reply.headers.get("request-id"),
                client_request_id=reply.headers.get("client-request-id") or client_request_id,
                content=reply.content,
            )
        if reply.content:
            try:
                body = reply.json()
            except ValueError:
                body = None
        request_id = reply.headers.get("request-id")
        if not request_id:
            request_id = _error_fields(body)[2]
        return GraphResponse(
            reply.status_code, reply.headers, body, request_id=request_id, client_request_id=reply.headers.get("client-request-id") or client_request_id
        )

    def _error_from(self, response, method, url):
        code, message, request_id, client_request_id = _error_fields(response.body)
        return GraphError(
            message or "no error message",
            status=response.status,
            code=code,
            request_id=response.request_id or request_id,
            client_request_id=response.client_request_id or client_request_id,
            method=method,
            path=_path_only(url),
        )

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


def _transport_text(exc, url):
    if isinstance(exc, requests.exceptions.Timeout):
        return "no reply from %s within the timeout" % _path_root(url)
    # urllib3 quotes the whole URL; keep its path only (queries are not logged).
    text = re.sub(r"url: (\S+)", lambda match: "url: %s" % _path_only(match.group(1)), _short(exc))
    return "connection to %s failed: %s" % (_path_root(url), text)
