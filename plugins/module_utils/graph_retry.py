# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The retry policy of the Microsoft Graph client: what may be sent again, when, and for how long.

Reads (and writes their caller marks idempotent) are repeated on 429/502/503/504, timeouts and
dropped connections; other writes only when Graph certainly applied nothing (429, 503 with
Retry-After, a connection that never opened). The wait is Retry-After when Graph gives one, else
exponential backoff with full jitter. The client (graph.py) and $batch (graph_batch.py) apply
this policy; the waiting itself is the client's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import math
import random

try:
    import requests
except ImportError:  # the client refuses to start without it (graph.HAS_GRAPH_DEPS)
    requests = None


READ_METHODS = frozenset(["GET", "HEAD"])
# Statuses on which repeating a read is safe and useful.
RETRYABLE_READ_STATUSES = frozenset([429, 502, 503, 504])
# Statuses after which a write may or may not have been applied by Graph.
UNKNOWN_OUTCOME_STATUSES = frozenset([500, 502, 503, 504])


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (moment - now).total_seconds())


def may_resend(status, retry_after, is_write, idempotent):
    """True when a request that got ``status`` may be sent again."""
    if not is_write or idempotent:
        return status in RETRYABLE_READ_STATUSES
    # Graph applied nothing on 429, nor on a 503 that tells when to come back.
    return status == 429 or (status == 503 and retry_after is not None)


def is_outcome_unknown(status, is_write, idempotent):
    """True when a write that got ``status`` (and is not re-sent) may or may not have been applied."""
    return is_write and not idempotent and status in UNKNOWN_OUTCOME_STATUSES


def _never_sent(exc):
    """True when the request certainly did not leave this host (connect failed), so re-sending is safe."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.ReadTimeout):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        name = reason.__class__.__name__ if reason is not None else ""
        return name in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
    return False


def backoff(attempt, base, cap):
    """Exponential backoff with full jitter."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(0, ceiling)  # nosec - jitter, not cryptography


def retry_time_exceeded(started, resume_at, wait, attempts, max_retry_time):
    """Why resending at ``resume_at`` would break ``max_retry_time`` (counted from ``started``), for a message; None when it would not."""
    if resume_at - started > max_retry_time:
        return "gave up after %d attempt(s): waiting %.1fs more would exceed max_retry_time of %ss" % (attempts, wait, _seconds(max_retry_time))
    return None


def _seconds(value):
    return int(value) if float(value).is_integer() else value
