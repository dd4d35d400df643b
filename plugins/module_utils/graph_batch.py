# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""JSON batching of the Microsoft Graph client: any number of sub-requests through ``$batch``.

The sub-requests go in envelopes of at most BATCH_LIMIT, several side by side; each item is
settled on its own (BatchResult): a throttled item is re-sent after its own Retry-After, within
the client's max_retry_time, and a write whose outcome is unknown is never re-sent. The client
(graph.GraphClient) has these methods through GraphBatchMixin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import (
    GraphConfigError,
    GraphError,
    GraphOutcomeUnknown,
    GraphRetryBudgetExceeded,
    _error_fields,
    _header,
    _path_only,
    outcome_unknown_message,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import limit_percentage
from ansible_collections.entraops.licensing.plugins.module_utils.graph_retry import (
    READ_METHODS,
    is_outcome_unknown,
    may_resend,
    parse_retry_after,
    retry_time_exceeded,
)


BATCH_LIMIT = 20  # Graph refuses $batch bodies with more than 20 requests


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
        return cls(
            message or "no error message",
            status=self.status,
            code=code,
            request_id=request_id,
            client_request_id=client_request_id,
            method=self.method,
            path=_path_only(self.url),
        )

    def to_dict(self):
        return {
            "id": self.id,
            "method": self.method,
            "url": _path_only(self.url),
            "status": self.status,
            "headers": dict(self.headers),
            "body": self.body,
            "outcome_unknown": self.outcome_unknown,
            "attempts": self.attempts,
        }


class GraphBatchMixin:
    """The $batch methods of GraphClient.

    They send through the client's ``request``, which waits for the pacers of the envelope's
    items (``_pacer_for``: writes, resource units, audit logs) before each attempt; each item's
    answer goes back to its pacer (a 429 pauses that budget, see graph_pacing). While a pacer is
    slowed down one envelope is in flight at a time. They use the client's ``_clock``,
    ``_sleep_until``, ``_backoff``, ``stats_counter``, ``max_concurrency`` and ``max_retry_time``.
    """

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
                chunks = [ready[offset : offset + BATCH_LIMIT] for offset in range(0, len(ready), BATCH_LIMIT)]
                # Slowed down by a 429 or near the limit: one envelope at a time; the others stay ready.
                chunks = chunks[: self._wave_width([by_index[index] for index in ready], concurrency)]
                for chunk in chunks:
                    for index in chunk:
                        del not_before[index]
                        attempts[index] += 1
                outcomes = list(executor.map(lambda chunk: self._send_batch_chunk([by_index[i] for i in chunk]), chunks))
                for outcome in outcomes:
                    for index, verdict in outcome:
                        self._settle_batch_item(by_index[index], verdict, attempts[index], started, not_before, results)
        return results

    def _wave_width(self, items, concurrency):
        """Envelopes sent side by side: ``concurrency``, or fewer while a pacer the items count against is slowed down."""
        pacers = set(item["pacer"] for item in items)
        return min(pacer.concurrency(concurrency) for pacer in pacers) if pacers else concurrency

    def _prepare_batch_items(self, requests_list):
        items = []
        seen = set()
        for index, sub in enumerate(requests_list):
            method = str(sub.get("method", "GET")).upper()
            url = sub.get("url") or ""
            if not url.startswith("/") or url.startswith("/v1.0/") or url.startswith("/beta/"):
                raise GraphConfigError("$batch item %d: url must be relative to the version root (like /users/{id}), got %r" % (index, _path_only(url)))
            item_id = str(sub.get("id") if sub.get("id") is not None else index + 1)
            if item_id.lower() in seen:
                raise GraphConfigError("$batch item ids must be unique (case-insensitive); %r is repeated" % item_id)
            seen.add(item_id.lower())
            headers = dict(sub.get("headers") or {})
            if sub.get("body") is not None and not _header(headers, "Content-Type"):
                headers["Content-Type"] = "application/json"
            is_write = method not in READ_METHODS
            pacer = self._pacer_for(is_write, url)
            items.append(
                {
                    "index": index,
                    "id": item_id,
                    "method": method,
                    "url": url,
                    "body": sub.get("body"),
                    "headers": headers,
                    "is_write": is_write,
                    "idempotent": bool(sub.get("idempotent")) or not is_write,
                    "pacer": pacer,
                }
            )
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
        pacing = {}
        for item in chunk:
            pacing[item["pacer"]] = pacing.get(item["pacer"], 0) + 1
        self.stats_counter.add("batch_requests")
        self.stats_counter.add("batch_items", len(chunk))
        self.stats_counter.add("writes", writes)
        try:
            # The outer POST carries no write itself: a 429 on it means nothing was applied.
            response = self.request("POST", "/$batch", body=payload, idempotent=not unsafe_writes, paced=False, pacing=list(pacing.items()))
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
                self._tell_pacer(item, reply, received)
                outcome.append((item["index"], {"reply": reply, "received": received}))
        return outcome

    def _tell_pacer(self, item, reply, received):
        """Tell the item's budget how Graph answered, as soon as the envelope is back.

        Not after the whole wave of envelopes: the others may still be waiting for their slot,
        and a 429 here must void it (graph_pacing).
        """
        status = int(reply.get("status") or 0)
        headers = reply.get("headers") or {}
        if 200 <= status < 300:
            item["pacer"].answered(limit_percentage(headers))
            return
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        if status == 429 or (retry_after is not None and may_resend(status, retry_after, item["is_write"], item["idempotent"])):
            item["pacer"].throttled(retry_after if retry_after is not None else self._backoff(1), received)

    def _settle_batch_item(self, item, verdict, attempts, started, not_before, results):
        index = item["index"]
        if "failed" in verdict:
            exc = verdict["failed"]
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], exc.status, attempts=attempts, error=exc)
            return
        if "lost" in verdict:
            exc = verdict["lost"]
            if item["idempotent"]:
                self._schedule_item_retry(item, self._backoff(attempts), self._clock(), attempts, started, not_before, results, status=None, error=exc)
                return
            self.stats_counter.add("outcome_unknown")
            unknown = GraphOutcomeUnknown(
                outcome_unknown_message(exc.message),
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                client_request_id=exc.client_request_id,
                method=item["method"],
                path=item["url"],
            )
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], exc.status, outcome_unknown=True, attempts=attempts, error=unknown)
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
        resend = may_resend(status, retry_after, item["is_write"], item["idempotent"])
        if resend:
            wait = retry_after if retry_after is not None else self._backoff(attempts)
            self._schedule_item_retry(item, wait, verdict["received"], attempts, started, not_before, results, status=status, headers=headers, body=body)
            return
        unknown = is_outcome_unknown(status, item["is_write"], item["idempotent"])
        if unknown:
            self.stats_counter.add("outcome_unknown")
        results[index] = BatchResult(index, item["id"], item["method"], item["url"], status, headers, body, outcome_unknown=unknown, attempts=attempts)

    def _schedule_item_retry(self, item, wait, received, attempts, started, not_before, results, status=None, headers=None, body=None, error=None):
        resume_at = received + wait
        gave_up = retry_time_exceeded(started, resume_at, wait, attempts, self.max_retry_time)
        if gave_up:
            index = item["index"]
            budget_error = GraphRetryBudgetExceeded("$batch item %s: %s" % (item["id"], gave_up), status=status, method=item["method"], path=item["url"])
            results[index] = BatchResult(index, item["id"], item["method"], item["url"], status, headers, body, attempts=attempts, error=budget_error)
            return
        self.stats_counter.add("retries")
        not_before[item["index"]] = resume_at
