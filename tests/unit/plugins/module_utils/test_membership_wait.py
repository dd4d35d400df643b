# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The membership waiter's decisions for each group kind and source (pure: a scripted reader, a fake clock)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.membership_rules import parse
from ansible_collections.entraops.licensing.plugins.module_utils.membership_wait import (
    MembershipFailed,
    MembershipWaiter,
    describe_unsettled,
    settle,
)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class ScriptedReader:
    """Answers poll by poll from lists (the last answer repeats)."""

    def __init__(self, members, statuses=None, rule_results=None):
        self.members, self.statuses, self.rule_results = members, statuses, rule_results
        self.reads = {"members": 0, "status": 0, "rule": 0}

    def _next(self, answers, key):
        answer = answers[min(self.reads[key], len(answers) - 1)]
        self.reads[key] += 1
        return answer

    def member_ids(self, group_id):
        return set(self._next(self.members, "members"))

    def processing_status(self, group_id):
        return None if self.statuses is None else self._next(self.statuses, "status")

    def rule_result(self, tree):
        return set(self._next(self.rule_results, "rule"))


def waiter(reader, timeout=100):
    clock = Clock()
    return MembershipWaiter(reader, timeout, poll_interval=1, clock=clock, sleep=clock.sleep), clock


def dynamic(tree=None, **extra):
    return dict({"id": "g", "display_name": "All users", "kind": "dynamic", "tree": tree}, **extra)


def test_processing_status_decides_first():
    reader = ScriptedReader([["a"]], statuses=[{"status": "Running"}, {"status": "Running"}, {"status": "Succeeded"}])
    wait, dummy = waiter(reader)
    results, timed_out = wait.wait([dynamic(tree=parse("user.objectId -ne null"))])
    assert not timed_out and results[0]["source"] == "processing_status" and results[0]["status"] == "Succeeded"
    assert wait.polls == 3 and reader.reads["rule"] == 0


def test_a_change_just_made_needs_two_succeeded_reads():
    reader = ScriptedReader([["a"]], statuses=[{"status": "Succeeded"}, {"status": "Running"}, {"status": "Succeeded"}, {"status": "Succeeded"}])
    wait, dummy = waiter(reader)
    results, dummy = wait.wait([dynamic(confirm=True)])
    assert results[0]["done"] and wait.polls == 4


def test_failed_evaluation_stops_the_wait():
    reader = ScriptedReader([[]], statuses=[{"status": "Failed", "errorMessage": "rule too complex"}])
    with pytest.raises(MembershipFailed, match="rule too complex"):
        waiter(reader)[0].wait([dynamic()])


def test_without_beta_the_rule_evaluated_client_side_decides():
    reader = ScriptedReader([["a"], ["a", "b"]], rule_results=[["a", "b"]])
    wait, dummy = waiter(reader)
    results, timed_out = wait.wait([dynamic(tree=parse("user.objectId -ne null"))])
    assert not timed_out and results[0]["source"] == "rule_evaluation" and results[0]["members"] == 2 and wait.polls == 2


def test_without_beta_or_rule_a_stable_count_decides():
    reader = ScriptedReader([["a"], ["a", "b"], ["a", "b"], ["a", "b"]])
    wait, dummy = waiter(reader)
    results, dummy = wait.wait([dynamic()])
    assert results[0]["source"] == "stable_count" and wait.polls == 4


def test_a_paused_group_is_settled_as_it_stands():
    reader = ScriptedReader([["a"]], statuses=[{"status": "Running"}])
    results, dummy = waiter(reader)[0].wait([dynamic(paused=True)])
    assert results[0]["done"] and results[0]["source"] == "paused" and reader.reads["status"] == 0


def test_synced_group_waits_for_the_expected_members_and_names_the_missing_on_timeout():
    reader = ScriptedReader([["a"], ["a", "b"]])
    spec = {"id": "s", "display_name": "All users", "kind": "synced", "expected": {"a", "b", "c"}}
    wait, clock = waiter(reader, timeout=10)
    wait.labels = {"c": "carol@contoso.com"}
    results, timed_out = wait.wait([spec])
    assert timed_out and clock.now == 10
    assert results[0]["missing"] == 1 and results[0]["missing_sample"] == ["carol@contoso.com"]
    assert "1 of 3 expected member(s) not yet synced from on-premises AD: carol@contoso.com" in describe_unsettled(results)


def test_cloud_and_synced_without_expectation_are_not_read():
    reader = ScriptedReader([["a"]])
    results, timed_out = waiter(reader)[0].wait([{"id": "c", "kind": "cloud"}, {"id": "s", "kind": "synced"}])
    assert not timed_out and [item["done"] for item in results] == [True, True] and reader.reads["members"] == 0


@pytest.mark.parametrize(
    "observation, history, expected",
    [
        ({"members": {"a"}, "status": None, "rule_result": {"a"}}, [], (True, "rule_evaluation")),
        ({"members": {"a"}, "status": None, "rule_result": {"a", "b"}}, [], (False, "rule_evaluation")),
        ({"members": {"a"}, "status": None}, [{"members": {"b"}}, {"members": {"a"}}, {"members": {"a"}}], (True, "stable_count")),
        ({"members": {"a"}, "status": None}, [{"members": {"b"}}, {"members": {"a"}}], (False, "stable_count")),
        ({"members": {"a"}, "status": None}, [{"members": {"a"}}], (False, "stable_count")),
    ],
)
def test_settle(observation, history, expected):
    assert settle("dynamic", observation, history) == expected
