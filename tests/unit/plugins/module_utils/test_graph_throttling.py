# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The client against Graph's throttling as documented: refused requests are charged (the emulator's default).

Real HTTPS and msal against the emulator. The budgets are scaled down and the emulated clock sped up
so that a write budget of 3,000 per 150 s becomes 10 writes per wall second, and the client is given
the documented rate at that scale (what ``write_rate``'s default is at scale 1).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

NOOP = {"addLicenses": [], "removeLicenses": []}
BUDGET_SCALE = 0.01  # 30 writes per 150 emulated s
TIME_SCALE = 50.0  # ... per 3 wall s: 10 writes per wall second
RATE = 3000 / 150.0 * BUDGET_SCALE * TIME_SCALE


def user_ids(emulator, count):
    return [user["id"] for dummy, user in emulator.directory.iter_users(0)][:count]


def item_writes(emulator):
    """(seconds since the first, status) of every write the emulator received, in arrival order."""
    entries = [entry for entry in emulator.request_log() if entry["write"]]
    moments = [datetime.datetime.fromisoformat(entry["time"]) for entry in entries]
    return [((moment - moments[0]).total_seconds(), entry["status"]) for moment, entry in zip(moments, entries)]


def test_writes_against_a_spent_budget_pause_once_then_pass(emulator, make_client):
    emulator.configure(throttling=True, budget_scale=BUDGET_SCALE, time_scale=TIME_SCALE, write_budget_left=0.0)
    emulator.clear_request_log()
    client = make_client(write_rate=RATE, max_retry_time=60)
    results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user, "body": NOOP} for user in user_ids(emulator, 60)])
    assert [result.status for result in results] == [200] * 60
    writes = item_writes(emulator)
    refused = [moment for moment, status in writes if status == 429]
    stats = emulator.stats()
    # Nothing sent inside a Retry-After window, and no second wave of refusals: the 429s all came in the
    # first envelope against the spent budget, and the pause that followed held every write.
    assert stats["early_retries"] == 0
    assert 0 < len(refused) <= 20
    assert max(refused) - min(refused) < 0.5
    assert client.pacer.episodes == 1
    # The retries were spread at the paced rate, not sent in one wave at the first Retry-After.
    after = [moment for moment, status in writes if status != 429 and moment > max(refused)]
    assert len(after) == 60
    assert after[-1] - after[0] >= (60 - 20) / RATE * 0.9


def test_without_pacing_a_spent_budget_costs_many_refusals(emulator, make_client):
    """The same writes with pacing off: the pauses alone keep the client honest, at the price of more 429s."""
    emulator.configure(throttling=True, budget_scale=BUDGET_SCALE, time_scale=TIME_SCALE, write_budget_left=0.0)
    emulator.clear_request_log()
    client = make_client(write_rate=0, max_retry_time=60)
    results = client.batch([{"method": "POST", "url": "/users/%s/assignLicense" % user, "body": NOOP} for user in user_ids(emulator, 60)])
    assert [result.status for result in results] == [200] * 60
    assert emulator.stats()["early_retries"] == 0
    assert client.pacer.episodes >= 1


def test_a_throttled_read_pauses_reads_until_retry_after(emulator, make_client):
    # 30 users: a small tenant, 3,500 RU per 10 s scaled to 35 per 10 emulated s; GET /users with $select costs 1.
    emulator.configure(throttling=True, budget_scale=BUDGET_SCALE)
    emulator.clear_request_log()
    client = make_client(max_retry_time=60)
    requests = [{"method": "GET", "url": "/users?$select=id&$top=1"} for dummy in range(60)]
    results = client.batch(requests)
    assert all(result.status == 200 for result in results)
    assert client.read_pacer.episodes >= 1
    assert emulator.stats()["early_retries"] == 0
