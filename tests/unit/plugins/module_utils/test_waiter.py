# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The processing waiter: the per-group predicate and the polling loop, without HTTP."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.licensing import GroupFacts
from ansible_collections.entraops.licensing.plugins.module_utils.waiter import (
    CONFIRM_WAIT,
    SAMPLE_SIZE,
    ProcessingWaiter,
    group_progress,
    member_status,
    processing_state_done,
)

GROUP = "11111111-1111-1111-1111-111111111111"
OTHER_GROUP = "22222222-2222-2222-2222-222222222222"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"


def entry(sku, group=GROUP, state="Active", error="None"):
    return {"skuId": sku, "assignedByGroup": group, "disabledPlans": [], "state": state, "error": error}


def user(number, *entries):
    return {"id": "00000000-0000-0000-0000-%012d" % number, "userPrincipalName": "u%d@contoso.com" % number, "licenseAssignmentStates": list(entries)}


def facts(state="ProcessingComplete", skus=(E3, EMS)):
    return GroupFacts(GROUP.upper(), "LIC", [{"skuId": sku, "disabledPlans": []} for sku in skus], processing_state=state)


@pytest.mark.parametrize(
    "state, done",
    [
        ("ProcessingComplete", True),
        (None, True),
        ("QueuedForProcessing", False),
        ("ProcessingInProgress", False),
        ("ProcessingFailed", False),
        ("SomethingNew", False),
    ],
)
def test_processing_state_done(state, done):
    assert processing_state_done(state) is done


@pytest.mark.parametrize(
    "entries, expected",
    [
        ([entry(E3), entry(EMS)], "applied"),
        ([entry(E3), entry(EMS), entry(E3, group=None)], "applied"),
        ([entry(E3)], "pending"),
        ([], "pending"),
        ([entry(E3, group=OTHER_GROUP), entry(EMS, group=OTHER_GROUP)], "pending"),
        ([entry(E3, state="Error", error="CountViolation"), entry(EMS, state="Error", error="CountViolation")], "error"),
        ([entry(E3, state="Error", error="CountViolation")], "error"),
        ([entry(E3), entry(EMS, state="ActiveWithError", error="DependencyViolation")], "error"),
        ([entry(E3), entry(EMS, state="Error", error=None)], "error"),
    ],
)
def test_member_status(entries, expected):
    assert member_status(user(1, *entries), GROUP, [E3, EMS]) == expected


def test_group_progress_counts_and_codes():
    members = [
        user(1, entry(E3), entry(EMS)),
        user(2, entry(E3, state="Error", error="CountViolation"), entry(EMS, state="Error", error="CountViolation")),
        user(3, entry(E3, state="Error", error="MutuallyExclusiveViolation"), entry(EMS, state="Error", error="MutuallyExclusiveViolation")),
        user(4, entry(E3, state="Error", error="CountViolation"), entry(EMS, state="Error", error="CountViolation")),
        user(5),
    ]
    progress = group_progress(facts(), members, nested_groups=2)
    assert progress["id"] == GROUP
    assert (progress["members"], progress["members_applied"], progress["members_in_error"], progress["members_pending"]) == (5, 1, 3, 1)
    assert progress["errors_by_code"] == {"CountViolation": 2, "MutuallyExclusiveViolation": 1}
    assert progress["nested_groups"] == 2
    assert progress["done"] is False  # user 5 has nothing from the group yet
    assert progress["members_pending_sample"] == [members[4]["id"]]
    assert [item["errors"] for item in progress["members_in_error_sample"]] == [["CountViolation"], ["MutuallyExclusiveViolation"], ["CountViolation"]]


def test_group_progress_done_needs_complete_state_and_every_member():
    members = [user(1, entry(E3), entry(EMS)), user(2, entry(E3, state="Error", error="CountViolation"), entry(EMS, state="Error", error="CountViolation"))]
    assert group_progress(facts(), members)["done"] is True
    assert group_progress(facts(state=None), members)["done"] is True
    assert group_progress(facts(state="ProcessingInProgress"), members)["done"] is False
    assert group_progress(facts(state="ProcessingFailed"), members)["done"] is False


def test_group_without_licenses_or_members_is_done_when_complete():
    assert group_progress(facts(skus=()), [user(1)])["done"] is True
    assert group_progress(facts(), [])["done"] is True


def test_error_sample_is_bounded():
    members = [user(n, entry(E3, state="Error", error="CountViolation"), entry(EMS, state="Error", error="CountViolation")) for n in range(SAMPLE_SIZE + 30)]
    progress = group_progress(facts(), members)
    assert progress["members_in_error"] == SAMPLE_SIZE + 30
    assert len(progress["members_in_error_sample"]) == SAMPLE_SIZE
    assert len(progress["member_ids_in_error"]) == SAMPLE_SIZE + 30


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def test_waiter_confirms_groups_done_on_the_first_read_once_then_returns():
    # a read older than a license change just made shows the group as done: one more read after CONFIRM_WAIT
    fake = FakeTime()
    reads = []
    waiter = ProcessingWaiter(lambda gid: reads.append(gid) or {"done": True}, timeout=60, clock=fake.clock, sleep=fake.sleep)
    progress, timed_out = waiter.wait(["a", "b"])
    assert timed_out is False and reads == ["a", "b", "a", "b"] and fake.sleeps == [CONFIRM_WAIT] and set(progress) == {"a", "b"}
    assert waiter.polls == 2


def test_a_group_done_on_a_stale_first_read_is_waited_for():
    fake = FakeTime()
    answers = {"a": [{"done": True}, {"done": False}, {"done": True}]}
    waiter = ProcessingWaiter(lambda gid: answers[gid].pop(0), timeout=60, poll_interval=5, clock=fake.clock, sleep=fake.sleep)
    progress, timed_out = waiter.wait(["a"])
    assert timed_out is False and progress["a"]["done"] and answers["a"] == []
    assert fake.sleeps == [CONFIRM_WAIT, 5]


def test_no_confirming_read_without_time_left():
    fake = FakeTime()
    reads = []
    waiter = ProcessingWaiter(lambda gid: reads.append(gid) or {"done": True}, timeout=0, clock=fake.clock, sleep=fake.sleep)
    progress, timed_out = waiter.wait(["a"])
    assert timed_out is False and reads == ["a"] and fake.sleeps == []


def test_waiter_backs_off_up_to_the_cap_and_stops_reading_done_groups():
    fake = FakeTime()
    reads = []

    def read(gid):
        reads.append(gid)
        # group "a" finishes on its 2nd read, "b" after 20 seconds
        return {"done": gid == "a" and reads.count("a") >= 2 or gid == "b" and fake.now >= 20}

    waiter = ProcessingWaiter(read, timeout=100, poll_interval=2, max_interval=5, backoff=2, clock=fake.clock, sleep=fake.sleep)
    progress, timed_out = waiter.wait(["a", "b"])
    assert timed_out is False
    assert fake.sleeps[:4] == [2, 4, 5, 5]
    assert reads.count("a") == 2
    assert progress["b"]["done"] is True
    assert waiter.polls == len(fake.sleeps) + 1


def test_waiter_times_out_without_sleeping_past_the_deadline():
    fake = FakeTime()
    waiter = ProcessingWaiter(lambda gid: {"done": False}, timeout=7, poll_interval=3, backoff=1, clock=fake.clock, sleep=fake.sleep)
    progress, timed_out = waiter.wait(["a"])
    assert timed_out is True and progress["a"]["done"] is False
    assert fake.sleeps == [3, 3, 1]
    assert fake.now == 7


def test_waiter_timeout_zero_reads_once():
    fake = FakeTime()
    reads = []
    waiter = ProcessingWaiter(lambda gid: reads.append(gid) or {"done": False}, timeout=0, clock=fake.clock, sleep=fake.sleep)
    dummy, timed_out = waiter.wait(["a"])
    assert timed_out is True and reads == ["a"] and fake.sleeps == []
