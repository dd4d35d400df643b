# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The paging thread's turnaround (_PageFetcher's wire signals), against the emulator over HTTPS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import graph_paging

PARAMS = {"$select": "id", "$top": 7}


@pytest.fixture
def events(monkeypatch):
    """What the paging thread reported and when the consumer parsed, in one ordered list."""
    seen = []
    lock = threading.Lock()

    def record(name, original):
        def wrapper(*args):
            with lock:
                seen.append(name)
            return original(*args)

        return wrapper

    monkeypatch.setattr(graph_paging._PageFetcher, "waiting", record("sent", graph_paging._PageFetcher.waiting))
    monkeypatch.setattr(graph_paging._PageFetcher, "answered", record("answered", graph_paging._PageFetcher.answered))
    monkeypatch.setattr(graph_paging, "_parse_page", record("parse", graph_paging._parse_page))
    # a loaded test machine must not turn a late signal into a skipped hold-back
    monkeypatch.setattr(graph_paging, "WIRE_WAIT_LIMIT", 10.0)
    return seen


def ids(pages):
    return [user["id"] for page in pages for user in page["value"]]


def test_the_consumer_parses_a_page_only_once_the_next_request_is_on_the_wire(emulator, client, events):
    emulator.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    plain = [user["id"] for user in client.get_all("/users", params=PARAMS)]
    del events[:]
    pages = -(-len(plain) // 7)
    assert pages > 3
    assert [user["id"] for user in client.get_all("/users", params=PARAMS, prefetch=True)] == plain
    parses = [position for position, name in enumerate(events) if name == "parse"]
    assert len(parses) == pages
    for number, position in enumerate(parses[:-1]):
        # page `number` (from 0) is parsed after request number+1 (from 0) was sent: number + 2 sends so far
        assert events[:position].count("sent") >= number + 2, events
    assert events.count("answered") == pages


def test_with_a_chain_held_at_its_depth_the_consumer_still_lets_the_next_request_go_first(client, events):
    plain = ids(client.iter_pages("/users", params=PARAMS))
    del events[:]
    assert ids(client.iter_pages("/users", params=PARAMS, prefetch=2)) == plain
    parses = [position for position, name in enumerate(events) if name == "parse"]
    for number, position in enumerate(parses[:-1]):
        assert events[:position].count("sent") >= number + 2, events


def test_a_transport_that_does_not_report_pages_as_before(client, monkeypatch):
    plain = ids(client.iter_pages("/users", params=PARAMS))
    monkeypatch.setattr(graph_paging, "_wire_event", lambda name: None)
    assert ids(client.iter_pages("/users", params=PARAMS, prefetch=True)) == plain
    assert [user["id"] for user in client.get_all("/users", params=PARAMS, prefetch=3)] == plain


def test_a_missed_signal_costs_at_most_one_wait_limit(emulator, client, monkeypatch):
    """An answer reported but its next request never: the consumer stops holding back instead of stalling per item."""
    emulator.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    plain = [user["id"] for user in client.get_all("/users", params=PARAMS)]
    # pages trickle in, so the consumer works while answers arrive
    emulator.configure(answer_time_ms=40)
    waits = []
    original_wait = threading.Event.wait

    def counted_wait(self, timeout=None):
        if timeout == 0.01:
            waits.append(timeout)
        return original_wait(self, timeout)

    monkeypatch.setattr(graph_paging, "WIRE_WAIT_LIMIT", 0.01)
    monkeypatch.setattr(graph_paging._PageFetcher, "waiting", lambda self: None)
    monkeypatch.setattr(threading.Event, "wait", counted_wait)
    try:
        # deep enough that the paging thread never waits for the consumer (which would also open the gate)
        assert [user["id"] for user in client.get_all("/users", params=PARAMS, prefetch=100)] == plain
    finally:
        emulator.configure(answer_time_ms=0)
    # each answer closes the gate again, so a wait per page at most, never one per item
    assert len(waits) <= -(-len(plain) // 7)
