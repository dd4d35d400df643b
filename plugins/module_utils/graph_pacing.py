# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client-side pacing of requests to Microsoft Graph, adapted to what Graph answers.

Graph counts every request against token buckets per application and tenant (reference
graph-api.md 7.2): 3,000 writes per 150 s (20 per second), resource units for reads, and 5
requests per 10 s for the audit logs (7.3). Usage keeps accruing while a client is throttled
(7.1): a refused request is charged like an admitted one, so a client that sends a wave of
retries after the first Retry-After digs the hole deeper.

The client holds one ``AdaptivePacer`` per budget (``GraphClient.pacer`` for writes,
``read_pacer`` for resource units, ``audit_pacer`` for the audit logs) and asks it before each
request it sends, a single one or the items of one $batch envelope: ``acquire(count)`` returns
once ``count`` requests may go and gives the seconds it waited. The pacer then hears how Graph
answered:

- ``throttled(retry_after)`` for every 429. Every request of that budget waits until the latest
  Retry-After heard (not only the refused one: anything sent before then is refused and charged
  too), slots handed out before the 429 are void, and the pacer starts again from an empty bucket
  at the resume, so the retries go out at the paced rate instead of in one wave. The first 429 of
  an episode (the pause, and at least ``EPISODE_S``) cuts the rate by ``DECREASE``; the rate climbs back to the ceiling over
  ``RECOVERY_S`` seconds of answers without a 429 (additive increase, multiplicative decrease).
- ``answered(percentage)`` for every other answer, with Graph's ``x-ms-throttle-limit-percentage``
  (None when absent). At ``NEAR_LIMIT`` or more the pacer stops bursting (one second's worth at
  most) and sends one envelope at a time; at ``AT_LIMIT`` or more (Graph: "1.0 = throttling
  starts") it runs at ``AT_LIMIT_SHARE`` of its ceiling so the budget can build a margin again.
  The share is small on purpose: a client at the ceiling keeps a budget that starts nearly spent
  at the limit for the whole run, and every point below the ceiling is lost throughput
  (benchmarks/README.md: 0.9 cost 15 % at 1,000 users, 0.95 costs 5 %).

While the rate is below its ceiling, or the budget is near its limit, ``concurrency(maximum)``
gives 1: one envelope at a time, so no wave is in flight when the next 429 comes.

A pacer without a ceiling (``rate`` 0 or None) does not pace until Graph throttles: then it runs at
``DECREASE`` of the rate it was sending at (never below ``DEFAULT_WRITE_RATE``) and lifts the
limit after ``RECOVERY_S`` clean seconds.
Pauses for Retry-After apply to every pacer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import threading
import time

from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import GraphConfigError, _header

# Graph's documented budgets (reference graph-api.md 7.2 and 7.3).
DEFAULT_WRITE_RATE = 20.0  # 3,000 writes per 150 s per application and tenant
AUDIT_RATE = 0.5  # 5 requests per 10 s per application and tenant
AUDIT_BURST = 5.0

DECREASE = 0.7  # the rate after the first 429 of an episode, as a share of the rate before it
FLOOR_SHARE = 0.05  # the rate never falls below this share of the ceiling
RECOVERY_S = 10.0  # seconds without a 429 to climb from DECREASE x ceiling back to the ceiling
NEAR_LIMIT = 0.8  # x-ms-throttle-limit-percentage from which Graph says the budget is nearly used
AT_LIMIT = 1.0  # ... and from which it is used up (Graph: 1.0 = throttling starts)
AT_LIMIT_SHARE = 0.95  # the share of the ceiling used while the budget is about empty
EPISODE_S = 1.0  # 429s within this long of an episode's first (or before its resume) belong to it
OBSERVE_S = 1.0  # the window over which an unpaced pacer measures the rate it sends at


class AdaptivePacer:
    """Token bucket at ``rate`` per second that pauses on 429s, slows down and speeds back up.

    ``rate``: the ceiling (requests, or resource units, per second); 0 or None paces only after a
    429. ``burst``: requests that may go at once on a fresh bucket (default one second's worth).
    """

    def __init__(self, rate, burst=None, clock=None, sleep=None):
        if rate is not None and rate < 0:
            raise GraphConfigError("write_rate must be positive or 0 (off), got %r" % (rate,))
        self.ceiling = float(rate) if rate else 0.0
        self.rate = self.ceiling
        self.capacity = max(1.0, float(burst) if burst else self.ceiling)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._updated = self._clock()
        self._resume_at = self._updated
        self._episode_until = self._updated
        self._generation = 0
        self._near_limit = False
        self._at_limit = False
        self._limited_since = None  # an unpaced pacer's limit after a 429: when the last episode began
        self._sent = collections.deque()  # (time, count) over the last OBSERVE_S, for an unpaced pacer
        self.episodes = 0
        self.throttled_answers = 0
        self.seconds_paused = 0.0

    # ------------------------------------------------------------ before sending

    def ensure_burst(self, count):
        """Let up to ``count`` requests accrue while the caller is busy elsewhere (Graph's own write bucket holds 3,000).

        A caller that alternates reads and writes (read a chunk, write it, re-read it) would
        otherwise lose the refill of every read phase longer than one second, and fall below
        ``rate`` (benchmarks/README.md). The average rate stays ``rate``; near Graph's limit, or
        after a 429, the burst is one second's worth again.
        """
        with self._lock:
            self.capacity = max(self.capacity, float(count))

    def acquire(self, count=1):
        """Wait until ``count`` requests may go; returns the seconds waited."""
        if count <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                generation = self._generation
                if now < self._resume_at:
                    wait, slot = self._resume_at - now, False
                else:
                    wait, slot = self._reserve(count, now), True
            if wait > 0:
                self._sleep(wait)
                waited += wait
            if slot:
                with self._lock:
                    if self._generation == generation:
                        self._observe(count)
                        return waited
                # A 429 came while this slot was waiting: the slot is void; wait for the resume and take a new one.

    def reserve(self, count=1):
        """Take ``count`` slots now and return how long the caller must wait before sending (no pause check)."""
        if count <= 0:
            return 0.0
        with self._lock:
            return self._reserve(count, self._clock())

    def concurrency(self, maximum):
        """How many envelopes may be in flight at once: ``maximum``, or 1 while slowed down or near the limit."""
        with self._lock:
            slowed = self._clock() < self._resume_at or self._near_limit or self._limited()
        return 1 if slowed else max(1, int(maximum))

    # ------------------------------------------------------------ after an answer

    def throttled(self, retry_after, received=None):
        """A 429 (or 503 with Retry-After) answered a request of this budget: pause, void slots, slow down."""
        with self._lock:
            now = self._clock()
            received = now if received is None else received
            # One cut per episode: the refusals of one wave (even with Retry-After 0) are one event.
            new_episode = received >= self._episode_until
            resume = max(self._resume_at, received + max(0.0, float(retry_after)))
            self._episode_until = max(self._episode_until if not new_episode else received, resume, received + EPISODE_S)
            if resume > now:
                self.seconds_paused += resume - max(now, self._resume_at)
            self._resume_at = resume
            self._generation += 1
            self.throttled_answers += 1
            if new_episode:
                self.episodes += 1
                self._slow_down(now)
            # Nothing accrues before the resume: the retries start from an empty bucket, at the rate.
            self._tokens = 0.0
            self._updated = max(self._updated, resume)

    def answered(self, percentage=None):
        """Any other answer, with its x-ms-throttle-limit-percentage (None when Graph sent none)."""
        with self._lock:
            self._near_limit = percentage is not None and percentage >= NEAR_LIMIT
            self._at_limit = percentage is not None and percentage >= AT_LIMIT

    def statistics(self):
        with self._lock:
            return {"rate": round(self.rate, 3), "episodes": self.episodes, "throttled": self.throttled_answers}

    # ------------------------------------------------------------ internals (under the lock)

    def _limited(self):
        return (self.ceiling and self.rate < self.ceiling) or (not self.ceiling and self.rate > 0)

    def _slow_down(self, now):
        if self.ceiling:
            self.rate = max(self.ceiling * FLOOR_SHARE, self._current_rate(now) * DECREASE)
            return
        observed = self._observed_rate(now)
        current = min(self.rate, observed) if self.rate else observed
        # Never below Graph's documented write budget: a handful of requests refused must not crawl.
        self.rate = max(DEFAULT_WRITE_RATE, current * DECREASE)
        self._limited_since = now

    def _current_rate(self, now):
        """The rate now: the ceiling (a share of it at Graph's limit), after a 429 climbing back linearly."""
        if not self.ceiling:
            if self.rate and self._limited_since is not None and now - max(self._limited_since, self._resume_at) >= RECOVERY_S:
                self.rate = 0.0
                self._limited_since = None
            return self.rate
        target = self.ceiling * AT_LIMIT_SHARE if self._at_limit else self.ceiling
        if self.rate < target:
            clean = max(0.0, now - max(self._updated, self._resume_at))
            self.rate = min(target, self.rate + self.ceiling * (1.0 - DECREASE) / RECOVERY_S * clean)
        elif self.rate > target:
            self.rate = target
        return self.rate

    def _reserve(self, count, now):
        rate = self._current_rate(now)
        if not rate:
            return 0.0
        capacity = max(1.0, rate) if (self._near_limit or self._limited()) else self.capacity
        if now > self._updated:
            self._tokens = min(capacity, self._tokens + (now - self._updated) * rate)
            self._updated = now
        self._tokens = min(self._tokens, capacity) - count
        return -self._tokens / rate if self._tokens < 0 else 0.0

    def _observe(self, count):
        if self.ceiling:
            return
        now = self._clock()
        self._sent.append((now, count))
        while self._sent and self._sent[0][0] < now - OBSERVE_S:
            self._sent.popleft()

    def _observed_rate(self, now):
        while self._sent and self._sent[0][0] < now - OBSERVE_S:
            self._sent.popleft()
        return sum(count for dummy, count in self._sent) / OBSERVE_S


def limit_percentage(headers):
    """Graph's x-ms-throttle-limit-percentage (1.0 = throttling starts) as a number; None when absent or unreadable."""
    value = _header(headers or {}, "x-ms-throttle-limit-percentage")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# The name of issue 14's seam: a pacer of this policy keeps that interface.
WritePacer = AdaptivePacer
