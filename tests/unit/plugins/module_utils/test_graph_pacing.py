# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The adaptive pacer (graph_pacing.AdaptivePacer) over a fake clock: pauses, slow-down, recovery, no waves."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import (
    AT_LIMIT_SHARE,
    DECREASE,
    DEFAULT_WRITE_RATE,
    RECOVERY_S,
    AdaptivePacer,
    limit_percentage,
)

from .test_graph_logic import FakeClock


def pacer_at(rate, **kwargs):
    clock = FakeClock()
    return AdaptivePacer(rate, clock=clock, sleep=clock.sleep, **kwargs), clock


def send_times(pacer, clock, requests, count=1):
    """Wall time at which each of ``requests`` acquisitions may go."""
    times = []
    for dummy in range(requests):
        pacer.acquire(count)
        times.append(clock())
    return times


def test_default_is_graphs_documented_write_budget():
    assert DEFAULT_WRITE_RATE == 3000 / 150.0


def test_a_429_pauses_every_request_until_the_latest_retry_after():
    pacer, clock = pacer_at(20)
    started = clock()
    pacer.throttled(3.0, received=started)
    pacer.throttled(7.0, received=started)  # a later item of the same wave was told to wait longer
    pacer.throttled(2.0, received=started)
    pacer.acquire()
    assert clock() - started >= 7.0


def test_after_a_pause_retries_go_out_at_the_paced_rate_not_in_a_wave():
    pacer, clock = pacer_at(20)
    pacer.ensure_burst(50)
    resume = clock() + 2.0
    pacer.throttled(2.0)
    times = send_times(pacer, clock, 40)
    assert min(times) >= resume
    # No burst at the resume: the first second after it holds at most one second's worth at the reduced rate,
    # and no second after it more than the ceiling's worth, while the rate climbs back.
    assert len([moment for moment in times if moment < resume + 1.0]) <= 20 * DECREASE + 1
    for start in times:
        assert len([moment for moment in times if start <= moment < start + 1.0]) <= 20


def test_the_first_429_of_an_episode_cuts_the_rate_later_ones_do_not():
    pacer, clock = pacer_at(20)
    for dummy in range(30):
        pacer.throttled(1.0)
    assert pacer.rate == pytest.approx(20 * DECREASE)
    assert pacer.episodes == 1 and pacer.throttled_answers == 30
    clock.now += 1.5  # the pause is over; a new 429 is a new episode
    pacer.throttled(1.0)
    assert pacer.rate == pytest.approx(20 * DECREASE * DECREASE)
    assert pacer.episodes == 2


def test_clean_seconds_bring_the_rate_back_to_the_ceiling():
    pacer, clock = pacer_at(20)
    pacer.throttled(1.0)
    clock.now += 1.0
    assert pacer.concurrency(4) == 1  # slowed down: one envelope at a time
    send_times(pacer, clock, 10)
    assert pacer.rate < 20
    clock.now += RECOVERY_S
    pacer.acquire()
    assert pacer.rate == pytest.approx(20)
    assert pacer.concurrency(4) == 4


def test_slots_taken_before_a_429_are_void():
    """A thread that reserved a slot and sleeps towards it must not send before the pause ends."""
    pacer, clock = pacer_at(1)
    pacer.acquire()  # the bucket is empty now: the next slot is 1 s away
    woke = []

    def sleep_then_429(seconds):
        # while the first acquisition sleeps towards its slot, Graph throttles another request
        if not woke:
            pacer.throttled(10.0, received=clock())
        woke.append(seconds)
        clock.now += seconds

    pacer._sleep = sleep_then_429
    started = clock()
    pacer.acquire()
    assert clock() - started >= 10.0


def test_near_the_limit_no_burst_and_about_empty_below_the_ceiling():
    pacer, clock = pacer_at(20)
    pacer.ensure_burst(50)
    clock.now += 10
    pacer.answered(0.85)
    assert pacer.concurrency(4) == 1
    assert pacer.acquire(20) == 0  # one second's worth may still go at once
    assert pacer.acquire(20) == pytest.approx(1.0)  # not the 50 banked
    pacer.answered(1.0)
    clock.now += 5
    pacer.acquire(1)
    assert pacer.rate == pytest.approx(20 * AT_LIMIT_SHARE)
    pacer.answered(None)  # Graph sends no percentage below 0.8 of the budget
    assert pacer.concurrency(4) == 1  # still below the ceiling...
    clock.now += RECOVERY_S
    pacer.acquire(1)
    assert pacer.rate == pytest.approx(20) and pacer.concurrency(4) == 4


def test_an_unpaced_pacer_paces_only_after_a_429_then_lifts_the_limit():
    pacer, clock = pacer_at(0)
    assert send_times(pacer, clock, 100) == [100.0] * 100 and clock.sleeps == []
    pacer.throttled(2.0)
    assert pacer.rate == pytest.approx(100 * DECREASE)  # it was sending 100 per second
    times = send_times(pacer, clock, 20)
    assert times[0] >= 102.0 and times[-1] > times[0]
    clock.now += RECOVERY_S
    pacer.acquire()
    assert pacer.rate == 0  # no limit again
    assert send_times(pacer, clock, 10) == [clock()] * 10


def test_audit_budget_allows_five_then_one_every_two_seconds():
    pacer, clock = pacer_at(0.5, burst=5)
    times = send_times(pacer, clock, 7)
    assert times[:5] == [100.0] * 5
    assert times[5] == pytest.approx(102.0) and times[6] == pytest.approx(104.0)


def test_threads_share_one_pause():
    pacer, clock = pacer_at(0)
    lock = threading.Lock()
    pacer.throttled(5.0)
    results = []

    def worker():
        waited = pacer.acquire()
        with lock:
            results.append(waited)

    workers = [threading.Thread(target=worker) for dummy in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert len(results) == 4 and clock() >= 105.0


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"x-ms-throttle-limit-percentage": "1.2"}, 1.2),
        ({"X-MS-Throttle-Limit-Percentage": "0.8"}, 0.8),
        ({}, None),
        ({"x-ms-throttle-limit-percentage": "n/a"}, None),
    ],
)
def test_limit_percentage_header(headers, expected):
    assert limit_percentage(headers) == expected
