# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting for a licensing group's membership before its licenses can be processed.

* A dynamic group: Entra evaluates the rule asynchronously. Three sources, the first available decides:
  ``processing_status`` (beta ``membershipRuleProcessingStatus``: ``Succeeded`` is done, twice in a row
  when the rule was just created or changed (``confirm``);
  ``Failed`` stops the wait), ``rule_evaluation`` (the rule, when ``membership_rules`` can parse it, evaluated
  against the directory: done when the direct members equal its result) and ``stable_count`` (the same
  members over ``STABLE_POLLS`` polls). A group whose processing is ``Paused`` is not evaluated at all:
  it counts as settled as it stands (``source`` ``paused``).
* A synced group: done when every expected user (those who can join an on-premises group) is a direct member,
  which happens after an Entra Connect sync cycle (``source`` ``expected_members``).
* A cloud group: nothing to wait for (its members were written through Graph).

``settle`` is the pure decision for one poll; ``MembershipWaiter`` polls through a reader (``GraphMembershipReader``
in modules, any object with the same methods in tests).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.entraops.licensing.plugins.module_utils.directory import PAGE_SIZE, iter_direct_user_members
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import CLOUD, DYNAMIC, SYNCED
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.membership_rules import MembershipRuleError, graph_properties, matching_ids, parse

STABLE_POLLS = 3
SAMPLE_SIZE = 20
BETA_UNAVAILABLE = (400, 403, 404, 405, 501)


class MembershipFailed(Exception):
    """Entra reports that it could not evaluate a dynamic group's rule."""


def parse_or_none(rule):
    """The parsed rule, or None when it is outside the client-side subset (or not a rule)."""
    try:
        return parse(rule) if rule else None
    except MembershipRuleError:
        return None


def settle(kind, observation, history):
    """``(done, source)`` of one poll of one group.

    ``observation``: ``members`` (set of ids), ``status`` (the beta processing status dict or None),
    ``rule_result`` (set of ids, or None when the rule cannot be evaluated here), ``expected`` (set of ids
    for a synced group, or None), ``paused`` (bool). ``history``: the earlier observations of this group
    (the caller appends this one after the call). Raises MembershipFailed when Entra says the evaluation failed.
    """
    if kind == DYNAMIC:
        if observation.get("paused"):
            return True, "paused"
        status = observation.get("status")
        if status is not None:
            state = status.get("status")
            if state == "Failed":
                raise MembershipFailed(status.get("errorMessage") or "membershipRuleProcessingStatus is Failed")
            if not observation.get("confirm"):
                return state == "Succeeded", "processing_status"
            # Just created or changed: a replica may still show the status from before the change; a second read confirms.
            previous = history[-1].get("status") if history else None
            return state == "Succeeded" and (previous or {}).get("status") == "Succeeded", "processing_status"
        if observation.get("rule_result") is not None:
            return observation["members"] == observation["rule_result"], "rule_evaluation"
        seen = [item["members"] for item in history[-(STABLE_POLLS - 1) :]] + [observation["members"]]
        return len(seen) >= STABLE_POLLS and all(members == observation["members"] for members in seen), "stable_count"
    if kind == SYNCED and observation.get("expected") is not None:
        return not (observation["expected"] - observation["members"]), "expected_members"
    return True, "none"


class GraphMembershipReader:
    """Reads for the waiter through a GraphClient. The beta endpoint is asked once; when it answers with an
    error or without the property, the reader stops asking (``beta_available`` False)."""

    def __init__(self, client, use_beta=True):
        self.client = client
        self.beta_available = bool(use_beta)

    def processing_status(self, group_id):
        if not self.beta_available:
            return None
        url = "%s/beta/groups/%s" % (self.client.graph_root, normalize_guid(group_id, "group id", error=LicensingInputError))
        try:
            body = self.client.get(url, params={"$select": "membershipRuleProcessingStatus"})
        except GraphError as exc:
            if exc.status in BETA_UNAVAILABLE:
                self.beta_available = False
                return None
            raise
        status = (body or {}).get("membershipRuleProcessingStatus")
        if not isinstance(status, dict) or not status.get("status"):
            self.beta_available = False
            return None
        return status

    def member_ids(self, group_id):
        return set(user["id"].lower() for user in iter_direct_user_members(self.client, group_id, select=("id",)))

    def rule_result(self, tree):
        users = self.client.get_all("/users", params={"$select": ",".join(graph_properties(tree)), "$top": PAGE_SIZE})
        return matching_ids(tree, users)


def observe(reader, spec):
    """One observation of the group described by ``spec`` (see MembershipWaiter)."""
    observation = {
        "members": reader.member_ids(spec["id"]),
        "paused": spec.get("paused", False),
        "expected": spec.get("expected"),
        "confirm": spec.get("confirm", False),
    }
    if spec["kind"] == DYNAMIC and not observation["paused"]:
        observation["status"] = reader.processing_status(spec["id"])
        if observation["status"] is None and spec.get("tree") is not None:
            observation["rule_result"] = reader.rule_result(spec["tree"])
    return observation


def report(spec, observation, done, source, labels=None):
    """The public per-group result."""
    labels = labels or {}
    result = {
        "id": spec["id"],
        "display_name": spec.get("display_name"),
        "kind": spec["kind"],
        "done": done,
        "source": source,
        "members": len(observation["members"]),
        "status": (observation.get("status") or {}).get("status"),
    }
    if observation.get("rule_result") is not None:
        result["rule_result"] = len(observation["rule_result"])
    if observation.get("expected") is not None:
        missing = sorted(observation["expected"] - observation["members"])
        result["expected"] = len(observation["expected"])
        result["missing"] = len(missing)
        result["missing_sample"] = [labels.get(user_id) or user_id for user_id in missing[:SAMPLE_SIZE]]
    return result


class MembershipWaiter:
    """Poll until every group's membership is settled or ``timeout`` seconds pass.

    ``specs``: ``[{'id', 'display_name', 'kind', 'tree' (parsed rule or None), 'paused', 'expected' (set or None)}]``.
    ``wait()`` returns ``(results, timed_out)``; cloud groups are settled without a read.
    """

    def __init__(self, reader, timeout, poll_interval=5.0, max_interval=60.0, clock=None, sleep=None, labels=None):
        self.reader = reader
        self.timeout = float(timeout)
        self.poll_interval = max(float(poll_interval), 0.01)
        self.max_interval = max(float(max_interval), self.poll_interval)
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.labels = labels or {}
        self.polls = 0

    def wait(self, specs):
        deadline = self.clock() + self.timeout
        results, history = {}, {}
        waiting = []
        for spec in specs:
            if spec["kind"] == CLOUD or (spec["kind"] == SYNCED and spec.get("expected") is None):
                results[spec["id"]] = {"id": spec["id"], "display_name": spec.get("display_name"), "kind": spec["kind"], "done": True, "source": "none"}
            else:
                waiting.append(spec)
                history[spec["id"]] = []
        interval = self.poll_interval
        while True:
            self.polls += 1
            still = []
            for spec in waiting:
                observation = observe(self.reader, spec)
                done, source = settle(spec["kind"], observation, history[spec["id"]])
                history[spec["id"]].append(observation)
                results[spec["id"]] = report(spec, observation, done, source, self.labels)
                if not done:
                    still.append(spec)
            waiting = still
            if not waiting:
                return [results[spec["id"]] for spec in specs], False
            remaining = deadline - self.clock()
            if remaining <= 0:
                return [results[spec["id"]] for spec in specs], True
            self.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.max_interval)


def describe_unsettled(results):
    """A sentence per group not settled, naming the users still missing (synced) or the source that decided (dynamic)."""
    parts = []
    for item in results:
        if item["done"]:
            continue
        if item["kind"] == SYNCED:
            parts.append(
                "%s (synced): %d of %d expected member(s) not yet synced from on-premises AD: %s%s"
                % (
                    item["display_name"],
                    item["missing"],
                    item["expected"],
                    ", ".join(item["missing_sample"]),
                    ", ..." if item["missing"] > len(item["missing_sample"]) else "",
                )
            )
        else:
            detail = {
                "processing_status": "membershipRuleProcessingStatus is %s" % item.get("status"),
                "rule_evaluation": "%d member(s), the rule evaluated against the directory gives %d" % (item["members"], item.get("rule_result", 0)),
                "stable_count": "the members (%d) are still changing" % item["members"],
            }.get(item["source"], item["source"])
            parts.append("%s (dynamic): membership not evaluated yet (%s)" % (item["display_name"], detail))
    return "; ".join(parts)
