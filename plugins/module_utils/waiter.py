# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting for Entra to apply group-based licenses (kubernetes.core waiter style).

``group_progress`` is the pure predicate part: from one read of a group and its direct user
members it says how far processing is. ``ProcessingWaiter`` polls a reader until every group is
done or the timeout passes, with a growing interval. No HTTP here: the reader is a callable.

What "done" means for one group:

* ``licenseProcessingState.state`` is ``ProcessingComplete``, or null. Graph does not guarantee the
  property is set (reference 3.2: null is seen on groups that never carried licenses), so null is
  not evidence either way and the member check below decides alone. Any other value, including
  ``QueuedForProcessing``, ``ProcessingInProgress`` and values Graph does not document (such as
  ``ProcessingFailed``, which Microsoft's own scripts test for), means "not done yet";
* and every direct user member has an entry assigned by the group (``assignedByGroup`` = the
  group) for every SKU the group carries, whether that entry is healthy or in error: a member in
  error has been processed, and is reported as in error.

Members of nested groups are not members here: Entra does not license them (they are counted as
``nested_groups``, never as applied).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    PROCESSING_COMPLETE,
    LicensingInputError,
    entry_error_code,
    is_healthy_entry,
    user_assignment_states,
)

SAMPLE_SIZE = 50


def processing_state_done(state):
    """True for ProcessingComplete and for null (see the module docstring); False for anything else."""
    return state is None or state == PROCESSING_COMPLETE


def member_status(user, group_id, sku_ids):
    """``'applied'``, ``'error'`` or ``'pending'`` for one direct user member of the group.

    applied: a healthy entry from the group for every SKU; error: entries from the group for every
    SKU and at least one unhealthy (all-or-nothing: Entra records every SKU of the group in error);
    pending: some SKU of the group has no entry from the group yet.
    """
    entries = [entry for entry in user_assignment_states(user) if entry["group_id"] == group_id]
    by_sku = {}
    for entry in entries:
        by_sku.setdefault(entry["sku_id"], []).append(entry)
    if any(sku_id not in by_sku for sku_id in sku_ids):
        # An error may be recorded before every SKU has its entry: count it as error, it will not heal by waiting.
        if any(entry_error_code(entry) for entry in entries):
            return "error"
        return "pending"
    if all(any(is_healthy_entry(entry) for entry in by_sku[sku_id]) for sku_id in sku_ids):
        return "applied"
    return "error"


def member_error_codes(user, group_id):
    """Sorted error codes of the user's entries from the group (``'Error'``-state entries without a code count as ``Other``)."""
    codes = set()
    for entry in user_assignment_states(user):
        if entry["group_id"] != group_id or is_healthy_entry(entry):
            continue
        codes.add(entry_error_code(entry) or "Other")
    return sorted(codes)


def group_progress(facts, user_members, nested_groups=0):
    """Per-group progress (a plain dict) from GroupFacts and the direct user members read with licenseAssignmentStates.

    Keys: ``id``, ``display_name``, ``processing_state``, ``skus`` (ids the group carries),
    ``members``, ``members_applied``, ``members_in_error``, ``members_pending``, ``errors_by_code``
    ({code: members}), ``nested_groups``, ``members_in_error_sample`` (bounded list of
    ``{id, user_principal_name, errors}``), ``members_pending_sample`` (ids), ``done``.
    """
    group_id = facts.group_id
    sku_ids = sorted(facts.assigned_licenses)
    counts = {"applied": 0, "error": 0, "pending": 0}
    errors_by_code = {}
    in_error_sample, pending_sample, error_ids = [], [], []
    for user in user_members:
        status = member_status(user, group_id, sku_ids)
        counts[status] += 1
        user_id = normalize_guid(user["id"], "user id", error=LicensingInputError)
        if status == "error":
            codes = member_error_codes(user, group_id)
            error_ids.append(user_id)
            for code in codes:
                errors_by_code[code] = errors_by_code.get(code, 0) + 1
            if len(in_error_sample) < SAMPLE_SIZE:
                in_error_sample.append({"id": user_id, "user_principal_name": user.get("userPrincipalName"), "errors": codes})
        elif status == "pending" and len(pending_sample) < SAMPLE_SIZE:
            pending_sample.append(user_id)
    members = sum(counts.values())
    done = processing_state_done(facts.processing_state) and counts["pending"] == 0
    return {
        "id": group_id,
        "display_name": facts.display_name,
        "processing_state": facts.processing_state,
        "skus": sku_ids,
        "members": members,
        "members_applied": counts["applied"],
        "members_in_error": counts["error"],
        "members_pending": counts["pending"],
        "errors_by_code": errors_by_code,
        "nested_groups": int(nested_groups),
        "members_in_error_sample": in_error_sample,
        "members_pending_sample": pending_sample,
        "member_ids_in_error": error_ids,
        "done": done,
    }


class ProcessingWaiter:
    """Poll ``read_progress(group_id) -> progress dict`` until every group is ``done`` or time runs out.

    The interval starts at ``poll_interval`` and grows by ``backoff`` per round up to
    ``max_interval``; a sleep never runs past the deadline, and the groups are always read at
    least once (also with ``timeout`` 0). Groups already done are not read again.
    """

    def __init__(self, read_progress, timeout, poll_interval=5.0, max_interval=60.0, backoff=1.5, clock=None, sleep=None):
        self.read_progress = read_progress
        self.timeout = float(timeout)
        self.poll_interval = max(float(poll_interval), 0.0)
        self.max_interval = max(float(max_interval), self.poll_interval)
        self.backoff = max(float(backoff), 1.0)
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.polls = 0

    def wait(self, group_ids, previous=None):
        """``(progress by group id, timed_out)``; ``previous`` progress of done groups is kept as is."""
        progress = dict(previous or {})
        waiting = [group_id for group_id in group_ids if not (group_id in progress and progress[group_id]["done"])]
        deadline = self.clock() + self.timeout
        interval = self.poll_interval
        while True:
            self.polls += 1
            for group_id in waiting:
                progress[group_id] = self.read_progress(group_id)
            waiting = [group_id for group_id in waiting if not progress[group_id]["done"]]
            if not waiting:
                return progress, False
            remaining = deadline - self.clock()
            if remaining <= 0:
                return progress, True
            self.sleep(min(interval, remaining))
            interval = min(interval * self.backoff, self.max_interval)
