# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client-side pacing of writes to Microsoft Graph.

The client holds one pacer (``GraphClient.pacer``) and asks it before each write it sends, a
single request or the writes of one $batch envelope: ``acquire(count)`` returns once ``count``
writes may go and gives the seconds it waited (counted as ``seconds_paced``). Callers that know
their write pattern may read ``rate`` and call ``ensure_burst``. A pacer of another policy
(adaptive pacing) keeps that interface.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.entraops.licensing.plugins.module_utils.graph_errors import GraphConfigError


class WritePacer:
    """Token bucket that spaces writes out to ``rate`` per second (bursts up to one second's worth)."""

    def __init__(self, rate, clock=None, sleep=None):
        if rate is not None and rate < 0:
            raise GraphConfigError("write_rate must be positive or 0 (off), got %r" % (rate,))
        self.rate = float(rate) if rate else 0.0
        self.capacity = max(1.0, self.rate)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._tokens = self.capacity
        self._updated = self._clock()
        self._lock = threading.Lock()

    def ensure_burst(self, count):
        """Let up to ``count`` writes accrue while the caller is busy reading (Graph's own bucket holds 3,000).

        A caller that alternates reads and writes (read a chunk, write it, re-read it) would
        otherwise lose the refill of every read phase longer than one second, and fall below
        ``rate`` (benchmarks/README.md). The average rate stays ``rate``.
        """
        with self._lock:
            self.capacity = max(self.capacity, float(count))

    def reserve(self, count=1):
        """Take ``count`` write slots and return how long the caller must wait before sending."""
        if not self.rate or count <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= count
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self, count=1):
        wait = self.reserve(count)
        if wait > 0:
            self._sleep(wait)
        return wait
