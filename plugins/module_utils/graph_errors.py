# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Errors of the Microsoft Graph client, and what of a request or reply may go into their messages.

Every failure is a GraphError (or one of its kinds below) carrying the HTTP status, Graph's error
code and the request ids; messages keep a URL's path only (queries may hold data that must not be
logged) and one line of an exception's text (never a request body).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported, keeps the import sanity test quiet
    from urlparse import urlsplit  # type: ignore


class GraphError(Exception):
    """Any failure talking to Microsoft Graph or the identity platform.

    ``status`` is None for failures that never produced an HTTP response
    (bad configuration, unreachable host, unknown outcome of a send).
    """

    def __init__(self, message, status=None, code=None, request_id=None, client_request_id=None, method=None, path=None):
        super(GraphError, self).__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.method = method
        self.path = path

    def __str__(self):
        if self.status is not None:
            text = "Graph returned %s%s" % (self.status, " %s" % self.code if self.code else "")
            if self.method and self.path:
                text += " for %s %s" % (self.method, self.path)
            text += ": %s" % (self.message or "no error message")
        else:
            text = self.message
            if self.method and self.path and (" %s" % self.path) not in text:
                text = "%s %s: %s" % (self.method, self.path, text)
        ids = []
        if self.request_id:
            ids.append("request-id %s" % self.request_id)
        if self.client_request_id:
            ids.append("client-request-id %s" % self.client_request_id)
        if ids:
            text += " (%s)" % ", ".join(ids)
        return text

    def to_dict(self):
        """Plain fields for module results; never contains credentials."""
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "method": self.method,
            "path": self.path,
        }


# The note every write of unknown outcome carries, after what happened to it.
OUTCOME_UNKNOWN_NOTE = "outcome unknown: the write may or may not have been applied; it was not re-sent"


def outcome_unknown_message(text):
    """``text`` (what happened to the write) followed by the outcome-unknown note."""
    return "%s (%s)" % (text, OUTCOME_UNKNOWN_NOTE)


class GraphOutcomeUnknown(GraphError):
    """A write was sent and we cannot know whether Graph applied it.

    Raised for timeouts, connections dropped after sending, and 500/502/503/504
    on writes. The caller must re-read the state before deciding to send again.
    """


class GraphConfigError(GraphError):
    """Invalid client configuration, detected before anything is sent."""


class GraphAuthError(GraphError):
    """The identity platform refused to issue a token, or Graph refused the token."""


class GraphRetryBudgetExceeded(GraphError):
    """Retrying would exceed max_retry_time."""


def _header(headers, name):
    if not headers:
        return None
    if hasattr(headers, "get") and not isinstance(headers, dict):
        return headers.get(name)  # requests' CaseInsensitiveDict
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _path_only(url):
    """The path of a URL without the query string (queries may hold data that must not be logged)."""
    if not url:
        return url
    return urlsplit(url).path or url.split("?", 1)[0]


def _path_root(url):
    parts = urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


def _short(exc):
    """One line of an exception's text, for messages; never contains request bodies."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else exc.__class__.__name__


def _error_fields(body):
    """(code, message, request-id, client-request-id) from a Graph or identity error body."""
    if not isinstance(body, dict):
        return None, None, None, None
    error = body.get("error")
    if isinstance(error, dict):
        inner = error.get("innerError") or error.get("innererror") or {}
        if not isinstance(inner, dict):
            inner = {}
        return error.get("code"), error.get("message"), inner.get("request-id"), inner.get("client-request-id")
    if isinstance(error, str):  # identity platform: {"error": "invalid_client", "error_description": "AADSTS..."}
        description = (body.get("error_description") or "").strip().splitlines()
        # The trace and correlation ids are reported separately; keep the human sentence only.
        message = re.split(r"\s+Trace ID:", description[0])[0] if description else None
        return error, message, body.get("trace_id"), body.get("correlation_id")
    return None, None, None, None
