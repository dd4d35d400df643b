#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
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
  - "Before license processing, the module waits for what each kind of group needs (up to O(membership_timeout)): a
    B(dynamic) group (C(groupTypes) C(DynamicMembership)) until Entra has evaluated its rule; a B(synced) group
    (C(onPremisesSyncEnabled)) until the users of O(expected_members) and O(expected_members_from_direct_sku) who can join
    an on-premises group are members, that is until the AD administrators have added them and an Entra Connect sync cycle
    has brought them to Entra. Cloud groups need nothing. RV(membership) reports it per group."
  - "A dynamic group's evaluation is known, in order, from the beta property C(membershipRuleProcessingStatus) (C(Succeeded);
    C(Failed) fails the task) when O(use_beta) and Graph gives it; else from the direct members equal to the rule evaluated
    against the directory, when the rule is in the subset the collection understands (see
    M(entraops.licensing.licensing_group) O(entraops.licensing.licensing_group#module:membership_rule)); else from the same
    members over 3 polls in a row. RV(membership[].source) says which decided. A group whose processing is C(Paused) is taken
    as it stands, with a warning."
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
      - Fail the task when O(wait_timeout) passes before every group is done, or O(membership_timeout) before every group's
        membership is.
      - Set to V(false) to poll in short rounds with C(until) (see the examples), which shows progress to the operator.
    type: bool
    default: true
  fail_on_member_errors:
    description:
      - Fail when, after processing, members are in error (for example C(CountViolation)).
    type: bool
    default: true
  expected_members:
    description:
      - Users (userPrincipalName or object id) that must be direct members of each B(synced) group of O(groups) before license
        processing is waited for. Cloud-only users among them cannot join an on-premises group; they are reported
        (RV(membership[].cannot_join_sample)), not waited for.
      - Not used for cloud and dynamic groups.
    type: list
    elements: str
  expected_members_from_direct_sku:
    description:
      - A SKU (GUID or C(skuPartNumber)); every user holding it by direct assignment is expected, as with O(expected_members).
    type: str
  membership_timeout:
    description:
      - Seconds to wait for membership (dynamic evaluation, on-premises members synced) before license processing; its own
        budget, apart from O(wait_timeout). An Entra Connect sync cycle runs every 30 minutes by default.
      - On timeout the task fails (unless O(fail_on_timeout=false)), naming the users still missing from each synced group
        and the state of each dynamic group.
    type: int
    default: 3600
  use_beta:
    description:
      - Read dynamic groups' C(membershipRuleProcessingStatus), which Graph gives only on its beta endpoint; when beta
        answers with an error or without the property, the other sources decide. Set to V(false) where beta is not allowed.
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
    (C(LicenseAssignment.ReadWrite.All) or C(User.ReadWrite.All) for O(reprocess_errors), C(Organization.Read.All) for
    O(expected_members_from_direct_sku)).
  - Microsoft asks for a support ticket when a group of up to 60,000 users takes more than 24 hours.
  - The module reports C(changed=true) only when it sent reprocess calls.
seealso:
  - module: entraops.licensing.group_license
  - name: Group license processing and errors
    description: How Entra processes group-based licenses and what the error codes mean.
    link: https://learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems
"""

EXAMPLES = r"""
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

- name: A group synced from on-premises AD - wait for the sync of the users the AD administrators added, then for processing
  entraops.licensing.license_processing_wait:
    groups: [All users]
    expected_members_from_direct_sku: ENTERPRISEPACK
    membership_timeout: 3600

- name: After buying more units, reprocess the members in CountViolation and wait again
  entraops.licensing.license_processing_wait:
    groups: [LIC - Office 365 E3]
    reprocess_errors: true
    wait_timeout: 300
"""

RETURN = r"""
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
    kind:
      description: The group's kind, V(cloud), V(dynamic) or V(synced).
      type: str
      sample: cloud
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
membership:
  description:
    - Per dynamic group and per synced group with expected members, what was waited for before license processing
      (empty when no group needed it).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The group's object id.
      type: str
    display_name:
      description: The group's display name.
      type: str
    kind:
      description: V(dynamic) or V(synced) (V(cloud) groups are listed with C(done) true when another group needed a wait).
      type: str
    done:
      description: Whether the membership is settled.
      type: bool
    source:
      description: What decided, V(processing_status), V(rule_evaluation), V(stable_count), V(paused), V(expected_members) or V(none).
      type: str
    members:
      description: Direct user members at the last read.
      type: int
    status:
      description: C(membershipRuleProcessingStatus.status), when Graph gave it.
      type: str
    expected:
      description: Expected users able to join (synced groups).
      type: int
    missing:
      description: Of those, the ones not members yet (synced groups).
      type: int
    missing_sample:
      description: Up to 20 of them, as userPrincipalName.
      type: list
      elements: str
    cannot_join:
      description: Expected users who cannot join an on-premises group (synced groups).
      type: int
    cannot_join_sample:
      description: Up to 50 of them with C(id), C(user_principal_name) and C(reason).
      type: list
      elements: dict
  sample: [{id: 1132b215-826f-42a9-8cfe-1643d19d17fd, display_name: All users, kind: synced, done: true, source: expected_members,
            members: 1000, expected: 995, missing: 0, missing_sample: [], cannot_join: 5}]
timed_out:
  description: Whether O(wait_timeout) (or O(membership_timeout)) passed before every group was done.
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
"""

from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.waiter import run_license_processing_wait


def argument_spec():
    return dict(
        groups=dict(type="list", elements="str", required=True),
        wait_timeout=dict(type="int", default=600),
        poll_interval=dict(type="float", default=5),
        max_poll_interval=dict(type="float", default=60),
        fail_on_timeout=dict(type="bool", default=True),
        fail_on_member_errors=dict(type="bool", default=True),
        reprocess_errors=dict(type="bool", default=False),
        expected_members=dict(type="list", elements="str"),
        expected_members_from_direct_sku=dict(type="str"),
        membership_timeout=dict(type="int", default=3600),
        use_beta=dict(type="bool", default=True),
    )


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_license_processing_wait(module)


if __name__ == "__main__":
    main()
