#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: license_processing_wait
short_description: Wait until Entra has applied groups' licenses to every direct member
version_added: 0.2.0
description:
  - Entra applies group-based licenses in the background. This module polls until, for each group, the group's
    C(licenseProcessingState.state) is C(ProcessingComplete) B(and) every direct user member has an entry assigned by
    the group (C(assignedByGroup)) for every SKU the group carries.
  - A null C(licenseProcessingState) is not evidence either way (Graph does not guarantee the property), so the member
    check alone decides. Any other value, including values Graph does not document such as C(ProcessingFailed), means
    not done yet; its value is reported.
  - Members are read in pages of 999 with their C(licenseAssignmentStates); no per-user reads. Members of nested groups
    are not members here (Entra does not license them); they are counted in RV(groups[].nested_groups), never as applied.
  - Reports per group the members, the members applied, the members in error and their error codes.
  - Check mode runs the same reads; only the writes of O(reprocess_errors) are skipped.
author:
  - entraops contributors (@entraops)
options:
  groups:
    description:
      - The groups, by object id or display name.
    type: list
    elements: str
    required: true
  wait_timeout:
    description:
      - Seconds to wait in total. V(0) reads each group once and reports.
      - Named C(wait_timeout) because O(timeout) is the connection option (seconds per HTTP request) every module of
        the collection shares.
      - On timeout the task fails unless O(fail_on_timeout=false); either way RV(timed_out) is true and the
        progress is returned.
    type: int
    default: 600
  poll_interval:
    description:
      - Seconds between the first polls; the interval then grows by half each round up to O(max_poll_interval).
    type: float
    default: 5
  max_poll_interval:
    description:
      - Longest interval between polls, in seconds.
    type: float
    default: 60
  fail_on_timeout:
    description:
      - Fail the task when O(wait_timeout) passes before every group is done.
      - Set to V(false) to poll in short rounds with C(until) (see the examples), which shows progress to the operator.
    type: bool
    default: true
  fail_on_member_errors:
    description:
      - Fail when, after processing, members are in error (for example C(CountViolation)).
    type: bool
    default: true
  reprocess_errors:
    description:
      - When members are in error once processing is done, call C(reprocessLicenseAssignment) once for each of them,
        then wait again (within what is left of O(wait_timeout)). Useful after freeing units or fixing a usage location.
      - Skipped in check mode.
    type: bool
    default: false
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module reads and waits as usual in check mode; the reprocess calls of O(reprocess_errors) are not sent.
  diff_mode:
    support: N/A
    details: The module changes nothing a diff could show.
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(GroupMember.Read.All) and C(User.Read.All)
    (C(LicenseAssignment.ReadWrite.All) or C(User.ReadWrite.All) for O(reprocess_errors)).
  - Microsoft asks for a support ticket when a group of up to 60,000 users takes more than 24 hours.
  - The module reports C(changed=true) only when it sent reprocess calls.
seealso:
  - module: entraops.licensing.group_license
  - name: Group license processing and errors
    description: How Entra processes group-based licenses and what the error codes mean.
    link: https://learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems
'''

EXAMPLES = r'''
- name: Wait up to 30 minutes for two licensing groups
  entraops.licensing.license_processing_wait:
    groups:
      - LIC - Office 365 E3
      - LIC - EMS E3
    wait_timeout: 1800
  register: processing

# Long waits: poll in short rounds so the operator sees progress between rounds
# ("FAILED - RETRYING ... (N retries left)" plus the debug line of the last round).
- name: Wait for processing, one minute per round, at most an hour
  entraops.licensing.license_processing_wait:
    groups: [LIC - Office 365 E3]
    wait_timeout: 60
    fail_on_timeout: false
  register: processing
  until: not processing.timed_out
  retries: 60
  delay: 1

- name: Show progress
  ansible.builtin.debug:
    msg: "{{ item.display_name }}: {{ item.processing_state }}, {{ item.members_applied }}/{{ item.members }} applied,
          {{ item.members_in_error }} in error {{ item.errors_by_code }}"
  loop: "{{ processing.groups }}"

- name: After buying more units, reprocess the members in CountViolation and wait again
  entraops.licensing.license_processing_wait:
    groups: [LIC - Office 365 E3]
    reprocess_errors: true
    wait_timeout: 300
'''

RETURN = r'''
groups:
  description: Progress of each group, in the order of O(groups).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The group's object id.
      type: str
      sample: 1132b215-826f-42a9-8cfe-1643d19d17fd
    display_name:
      description: The group's display name.
      type: str
      sample: LIC - Office 365 E3
    processing_state:
      description: C(licenseProcessingState.state) at the last poll (null when Graph gave none).
      type: str
      sample: ProcessingComplete
    done:
      description: Whether processing is complete for this group (see the description).
      type: bool
      sample: true
    skus:
      description: SKU ids the group carries.
      type: list
      elements: str
      sample: [6fd2c87f-b296-42f0-b197-1e91e994b900]
    members:
      description: Direct user members.
      type: int
      sample: 250
    members_applied:
      description: Direct user members with a healthy entry from the group for every SKU of the group.
      type: int
      sample: 248
    members_in_error:
      description: Direct user members whose entries from the group are in error (all-or-nothing, every SKU of the group).
      type: int
      sample: 2
    members_pending:
      description: Direct user members still missing an entry from the group.
      type: int
      sample: 0
    errors_by_code:
      description: Error code (C(CountViolation), C(MutuallyExclusiveViolation), ...) mapped to the number of members with it.
      type: dict
      sample: {"CountViolation": 2}
    members_in_error_sample:
      description: Up to 50 members in error, each with C(id), C(user_principal_name) and C(errors) (codes).
      type: list
      elements: dict
      sample: [{"id": "8f6d0558-4ef8-4a38-9227-66581e27a1c0", "user_principal_name": "ada@contoso.com", "errors": ["CountViolation"]}]
    other_users_in_error:
      description:
        - Users Graph lists in the group's C(membersWithLicenseErrors) who are not direct members (for example removed
          members whose copy could not be removed, C(DependencyViolation)).
      type: int
      sample: 0
    nested_groups:
      description: Groups that are direct members; their members get no license from this group and are not counted.
      type: int
      sample: 0
    reprocessed:
      description: Members for whom C(reprocessLicenseAssignment) was sent (would be, in check mode).
      type: int
      sample: 0
timed_out:
  description: Whether O(wait_timeout) passed before every group was done.
  returned: always
  type: bool
  sample: false
elapsed:
  description: Seconds spent, all groups together.
  returned: always
  type: float
  sample: 12.5
polls:
  description: Rounds of reads.
  returned: always
  type: int
  sample: 3
'''

import time

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    DirectoryInputError,
    find_group,
    get_group,
    iter_direct_members,
    iter_user_members,
    members_with_license_errors,
    reprocess_users,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import GroupFacts, LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.waiter import ProcessingWaiter, group_progress

MEMBER_SELECT = ("id", "userPrincipalName", "licenseAssignmentStates")


def argument_spec():
    return dict(
        groups=dict(type="list", elements="str", required=True),
        wait_timeout=dict(type="int", default=600),
        poll_interval=dict(type="float", default=5),
        max_poll_interval=dict(type="float", default=60),
        fail_on_timeout=dict(type="bool", default=True),
        fail_on_member_errors=dict(type="bool", default=True),
        reprocess_errors=dict(type="bool", default=False),
    )


def read_progress(client, group_id):
    """One poll of one group: the group's facts and its direct members' license states."""
    group = get_group(client, group_id)
    if group is None:
        raise GraphError("group %s disappeared while waiting for it" % group_id, status=404)
    # One member at a time (a page in memory, not the group): 100,000 members with their states are ~200 MB as a list.
    nested = []
    progress = group_progress(GroupFacts.from_graph(group), iter_user_members(iter_direct_members(client, group_id, select=MEMBER_SELECT), nested))
    progress["nested_groups"] = len(nested)
    return progress


def other_users_in_error(client, progress):
    """Users in membersWithLicenseErrors who are not counted among the members in error."""
    counted = set(progress["member_ids_in_error"])
    return sum(1 for user in members_with_license_errors(client, progress["id"], select=("id",))
               if normalize_guid(user["id"], error=LicensingInputError) not in counted)


def public(progress, reprocessed, others):
    shown = dict((key, value) for key, value in progress.items() if key != "member_ids_in_error")
    shown["reprocessed"] = reprocessed
    shown["other_users_in_error"] = others
    return shown


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for option in ("wait_timeout", "poll_interval", "max_poll_interval"):
        if params[option] < 0 or (option != "wait_timeout" and params[option] == 0):
            module.fail_json(msg="%s must be a positive number of seconds, got %s" % (option, params[option]))
    if not params["groups"]:
        module.fail_json(msg="groups is empty: expected at least one group name or object id")
    started = time.monotonic()
    client = module.client
    try:
        group_ids = []
        for name in params["groups"]:
            try:
                group = find_group(client, name, require_licensable=False)
            except DirectoryInputError as exc:
                module.fail_json(msg=str(exc))
            if group is None:
                module.fail_json(msg="group %r: no group has this object id or display name; expected an existing group" % name)
            group_id = normalize_guid(group["id"], error=LicensingInputError)
            if group_id not in group_ids:
                group_ids.append(group_id)
        waiter = ProcessingWaiter(lambda group_id: read_progress(client, group_id), timeout=params["wait_timeout"],
                                  poll_interval=params["poll_interval"], max_interval=params["max_poll_interval"])
        progress, timed_out = waiter.wait(group_ids)
        reprocessed = dict((group_id, 0) for group_id in group_ids)
        changed = False
        if params["reprocess_errors"] and not timed_out:
            for group_id in group_ids:
                reprocessed[group_id] = len(progress[group_id]["member_ids_in_error"])
            # Each user once, in order, though in error in several groups.
            in_error = list(dict.fromkeys(user_id for group_id in group_ids for user_id in progress[group_id]["member_ids_in_error"]))
            if in_error and not module.check_mode:
                dummy, errors = reprocess_users(client, in_error)
                if errors:
                    module.warn("reprocessLicenseAssignment failed for %d user(s), first: %s" % (len(errors), errors[0]["error"]))
                changed = True
                remaining = max(params["wait_timeout"] - (time.monotonic() - started), 0)
                waiter.timeout = remaining
                # Every group is read again: reprocessing re-evaluates all of a user's groups.
                progress, timed_out = waiter.wait(group_ids)
        others = dict((group_id, other_users_in_error(client, progress[group_id])) for group_id in group_ids)
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot read the license processing of %s" % ", ".join(params["groups"]))
    result = dict(changed=changed, timed_out=timed_out, elapsed=round(time.monotonic() - started, 3), polls=waiter.polls,
                  groups=[public(progress[group_id], reprocessed[group_id], others[group_id]) for group_id in group_ids])
    if timed_out and params["fail_on_timeout"]:
        late = [progress[group_id] for group_id in group_ids if not progress[group_id]["done"]]
        pending = ["%s: %s, %d of %d member(s) pending" % (item["display_name"], item["processing_state"], item["members_pending"], item["members"])
                   for item in late]
        module.fail_json(msg="timed out after %ss waiting for license processing (%s)" % (params["wait_timeout"], "; ".join(pending)), **result)
    in_error = [progress[group_id] for group_id in group_ids if progress[group_id]["members_in_error"]]
    if in_error and params["fail_on_member_errors"] and not timed_out:
        details = "; ".join("%s: %d member(s) in error %s" % (item["display_name"], item["members_in_error"], item["errors_by_code"])
                            for item in in_error)
        module.fail_json(msg="license processing left members in error (%s). Fix the cause (units, usage location, conflicting plans), "
                             "then rerun with reprocess_errors=true, or set fail_on_member_errors=false" % details, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
