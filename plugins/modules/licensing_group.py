#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: licensing_group
short_description: Ensure a licensing security group exists and the required users are direct members
version_added: 0.2.0
description:
  - Ensures a Microsoft Entra security group (C(securityEnabled=true), C(mailEnabled=false)) with the given display
    name exists, and that the required users are B(direct) members of it (group-based licensing does not reach the
    members of nested groups).
  - Users come from O(members) (UPNs or object ids) and/or O(members_from_direct_sku) (every user holding that SKU by
    direct assignment, found with one paged, filtered read).
  - Adds members in bulk (C(members@odata.bind), 20 per request, sent through C($batch)). Never removes a member
    unless O(purge_members=true), since removing a member removes the licenses the member gets from the group.
  - Every user named is looked up before any write; unknown users fail the task, all of them named.
  - "Three kinds of group (RV(kind)), decided from the group's properties before any write: V(cloud) (members written
    through Graph, as above), V(dynamic) (C(groupTypes) holds C(DynamicMembership): Entra computes the members from the
    membership rule, Graph refuses member writes) and V(synced) (C(onPremisesSyncEnabled): the group is mastered in
    on-premises Active Directory and reaches Entra through Entra Connect, Graph refuses member writes)."
  - A B(dynamic) group is created from O(membership_rule), or its rule or processing state is changed. The module then waits
    until Entra has evaluated the membership (O(wait_for_membership)). Users that O(members) and O(members_from_direct_sku)
    name are not written; those the rule leaves out are reported (RV(members_not_covered)); the group gives them no license.
  - Changing the rule of a dynamic group that carries licenses is refused unless O(accept_membership_loss=true); members who
    leave lose the group's licenses. The users who would leave are reported (RV(members_leaving)), from the rule evaluated
    against the directory when the rule is in the subset the module understands, otherwise the module says it cannot tell.
  - For a B(synced) group the module never writes to Graph. It reports the users that O(members) and O(members_from_direct_sku)
    name who are not members yet and must be added on-premises (RV(members_on_premises)), names the users who cannot join an
    on-premises group with the reason (RV(cannot_join_sample), cloud-only users), and writes a PowerShell script for the AD
    administrators (O(on_premises_script_path)). After they run it, the next Entra Connect sync cycle brings the members to
    Entra; M(entraops.licensing.license_processing_wait) waits for that.
author:
  - entraops contributors (@entraops)
options:
  name:
    description:
      - Display name of the group. A name matching several groups fails the task, as does a group that is not
        security-enabled (it could not carry licenses).
    type: str
    required: true
  description:
    description:
      - Description of the group, set when creating it and updated when it differs. Not changed when not given.
    type: str
  members:
    description:
      - Users that must be direct members, as userPrincipalName or object id.
      - For a dynamic group, users the rule must cover (reported, never written); for a synced group, users to add on-premises.
    type: list
    elements: str
  members_from_direct_sku:
    description:
      - A SKU (GUID or C(skuPartNumber)); every user holding it by direct assignment must be a direct member.
      - This is step 2 of Microsoft's migration procedure; the group gets the users the direct assignments cover.
    type: str
  purge_members:
    description:
      - Remove direct user members that O(members) and O(members_from_direct_sku) do not name.
      - Refused for dynamic and synced groups, whose members are not written through Graph.
      - Members of the group that are groups (nested) are never removed.
      - Needs O(members) or O(members_from_direct_sku), so that an omitted list never empties a group.
    type: bool
    default: false
  membership_rule:
    description:
      - The membership rule of a dynamic group, in Entra's rule syntax, for example C(user.objectId -ne null) (every user) or
        C(user.department -eq "Sales" -and user.accountEnabled -eq true).
      - A group that does not exist is created as a dynamic security group (C(groupTypes) C(DynamicMembership)) with this rule;
        this needs C(Group.Create) (or C(Group.ReadWrite.All)). Changing the rule of an existing dynamic group needs C(Group.ReadWrite.All).
      - Rules are compared with Graph's copy without regard to runs of white space outside quoted values.
      - The module evaluates rules client-side (to predict who joins or leaves) when they use C(user.) properties (C(objectId),
        C(department), C(country), C(usageLocation), C(accountEnabled), C(userType), C(jobTitle), C(companyName), C(city),
        C(employeeId), C(extensionAttribute1) to C(extensionAttribute15), ...) with the operators C(-eq), C(-ne), C(-startsWith),
        C(-notStartsWith), C(-contains), C(-notContains), C(-in), C(-notIn), joined by C(-and), C(-or), C(-not) and parentheses.
        Other rules are sent to Graph as they are; the module then says it cannot tell who would join or leave.
      - A rule that cannot be a rule (an unterminated string, unbalanced parentheses) fails the task before any write, naming the position.
      - An existing cloud group is not converted (Entra removes every member first, and members would lose its licenses
        meanwhile); a synced group cannot take a rule.
    type: str
  membership_rule_processing_state:
    description:
      - C(membershipRuleProcessingState) of a dynamic group. V(Paused) stops Entra from evaluating the rule (the members stay
        as they are). When not given, a new group gets V(On) and an existing group keeps its state.
      - Changing it on an existing group needs C(Group.ReadWrite.All).
    type: str
    choices: ["On", "Paused"]
  accept_membership_loss:
    description:
      - Allow a change of O(membership_rule) on a dynamic group that carries licenses. Members who no longer match lose the group's
        licenses (and possibly service and data) as soon as Entra re-evaluates them.
      - Without it such a change fails the task before any write, naming the members who would leave.
    type: bool
    default: false
  wait_for_membership:
    description:
      - For a dynamic group, wait until Entra has evaluated its membership (up to O(membership_timeout)); the task fails on timeout.
      - With V(false) the module reads the membership once and returns its state in RV(membership) (the role's wait phase, or
        M(entraops.licensing.license_processing_wait), waits for it).
      - "How the module knows, in order: the beta property C(membershipRuleProcessingStatus) (C(Succeeded)), when O(use_beta) and
        Graph gives it; else the members equal to the rule evaluated against the directory, when the rule is in the subset above;
        else the same members over 3 polls in a row. The C(source) of RV(membership) says which decided."
    type: bool
    default: true
  membership_timeout:
    description:
      - Seconds to wait for a dynamic group's membership (O(wait_for_membership)).
    type: int
    default: 600
  membership_poll_interval:
    description:
      - Seconds between the first membership polls; the interval grows by half each round up to 60 seconds.
    type: float
    default: 5
  use_beta:
    description:
      - Read a dynamic group's C(membershipRuleProcessingStatus), which Graph gives only on its beta endpoint. When beta
        answers with an error or without the property, the module falls back to its other sources (see O(wait_for_membership)).
      - Set to V(false) where policy forbids beta endpoints.
    type: bool
    default: true
  on_premises_script_path:
    description:
      - For a synced group with users to add on-premises, write the PowerShell script for the AD administrators here.
      - The script imports the C(ActiveDirectory) module and runs one C(Add-ADGroupMember) statement per 100 users; the group
        and the users are named by their on-premises SID (C(onPremisesSecurityIdentifier)), or sAMAccountName when Entra knows
        no SID. Every statement runs with C(-WhatIf) unless the script is run with C(-Apply); C(-Server) names a domain controller.
      - UTF-8 with a byte order mark and CRLF line ends (Windows PowerShell 5.1), written atomically; the same users give the same
        file, so a re-run that has nothing new to add reports no change. Nothing is written when no user is to be added.
      - Without it the users to add are only reported, with a warning.
    type: path
  state:
    description:
      - V(present) creates the group when needed and adds members; V(absent) deletes the group.
      - V(absent) is refused for a group synced from on-premises AD (delete it there), and
        while the group carries licenses (remove them with M(entraops.licensing.group_license) first),
        as Entra does.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.stateful_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(Group.ReadWrite.All) (or C(Group.Create) and C(GroupMember.ReadWrite.All)),
    C(User.Read.All) and, for O(members_from_direct_sku), C(Organization.Read.All).
  - Changing the description of an existing group and O(state=absent) (deleting the group) need C(Group.ReadWrite.All);
    C(Group.Create) and C(GroupMember.ReadWrite.All) only create groups and manage their members.
  - Return values carry counts and a sample of at most 50 members; the diff lists at most 50 members added or removed.
  - A synced group's description is mastered on-premises; a different O(description) is reported with a warning, not written.
  - Reading the on-premises facts of users (C(onPremisesSecurityIdentifier)) needs C(User.Read.All), which the module needs anyway.
seealso:
  - module: entraops.licensing.group_license
  - module: entraops.licensing.license_processing_wait
"""

EXAMPLES = r"""
- name: Put every user holding Office 365 E3 directly into the licensing group
  entraops.licensing.licensing_group:
    name: LIC - Office 365 E3
    description: Group-based licensing for Office 365 E3 (migrated from direct assignment)
    members_from_direct_sku: ENTERPRISEPACK
  register: lic_group

- name: Report
  ansible.builtin.debug:
    msg: "{{ lic_group.members_added }} added, {{ lic_group.members_total }} members"

- name: A pilot group with named users, nobody else
  entraops.licensing.licensing_group:
    name: LIC - E3 pilot
    members:
      - ada@contoso.com
      - 8f6d0558-4ef8-4a38-9227-66581e27a1c0
    purge_members: true

- name: A dynamic licensing group of every user, waited for until Entra has evaluated it
  entraops.licensing.licensing_group:
    name: LIC - All users
    membership_rule: user.objectId -ne null
    membership_timeout: 1800
  register: all_users

- name: Show who the rule covers
  ansible.builtin.debug:
    msg: "{{ all_users.membership.members }} members ({{ all_users.membership.source }})"

- name: Narrow the rule of a licensed dynamic group, accepting that the users it reports lose its licenses
  entraops.licensing.licensing_group:
    name: LIC - All users
    membership_rule: user.accountEnabled -eq true -and user.userType -eq "Member"
    accept_membership_loss: true

- name: A group synced from on-premises AD - write the script for the AD administrators
  entraops.licensing.licensing_group:
    name: All users
    members_from_direct_sku: ENTERPRISEPACK
    on_premises_script_path: /var/tmp/migration/All-users.Add-ADGroupMember.ps1
  register: synced

- name: Name the users who cannot join it (cloud-only)
  ansible.builtin.debug:
    msg: "{{ synced.members_on_premises }} to add on-premises; cannot join: {{ synced.cannot_join_sample }}"

- name: Delete a group that no longer carries licenses
  entraops.licensing.licensing_group:
    name: LIC - E3 pilot
    state: absent
"""

RETURN = r"""
group:
  description: The group (null with O(state=absent) when no such group existed; the id is null when check mode would create it).
  returned: always
  type: dict
  contains:
    id:
      description: The group's object id.
      type: str
      sample: 1132b215-826f-42a9-8cfe-1643d19d17fd
    display_name:
      description: The group's display name.
      type: str
      sample: LIC - Office 365 E3
kind:
  description:
    - The kind of the group, V(cloud), V(dynamic) or V(synced) (of the group to create, in check mode; null with O(state=absent)
      when no such group existed).
  returned: always
  type: str
  sample: synced
group_kind:
  description: The group's properties that decide its kind.
  returned: when O(state=present)
  type: dict
  contains:
    kind:
      description: V(cloud), V(dynamic) or V(synced).
      type: str
    membership_rule:
      description: C(membershipRule) as Graph has it (null for other kinds).
      type: str
    membership_rule_processing_state:
      description: C(membershipRuleProcessingState), V(On) or V(Paused).
      type: str
    on_premises_sync_enabled:
      description: C(onPremisesSyncEnabled) (true for a synced group, else null).
      type: bool
    on_premises_security_identifier:
      description: The on-premises SID of a synced group.
      type: str
    on_premises_sam_account_name:
      description: The on-premises sAMAccountName of a synced group.
      type: str
    on_premises_domain_name:
      description: The on-premises domain of a synced group.
      type: str
    on_premises_last_sync:
      description: C(onPremisesLastSyncDateTime), when read.
      type: str
  sample: {kind: dynamic, membership_rule: user.objectId -ne null, membership_rule_processing_state: "On", on_premises_sync_enabled: null}
membership_rule:
  description: The rule of the dynamic group after the run.
  returned: when the group is dynamic
  type: str
  sample: user.objectId -ne null
membership:
  description:
    - The membership of a dynamic group as last read. C(done) (evaluated), C(source) (V(processing_status), V(rule_evaluation),
      V(stable_count), V(paused), V(check_mode)), C(members) (direct members), C(status) (C(membershipRuleProcessingStatus),
      when Graph gave it), C(rule_result) (users the rule matches in the directory, when evaluated), C(polls), C(timed_out).
  returned: when the group is dynamic
  type: dict
  sample: {done: true, source: processing_status, members: 1000, status: Succeeded, polls: 2, timed_out: false}
membership_prediction:
  description:
    - How RV(members_leaving) was found, V(rule_evaluation) or V(unknown) (the rule is outside the subset evaluated client-side,
      or the rule does not change and nothing needed the directory read).
  returned: when the group is dynamic
  type: str
membership_prediction_reason:
  description: Why the module cannot tell who would join or leave.
  returned: when the group is dynamic and RV(membership_prediction) is V(unknown) and the rule changes
  type: str
members_leaving:
  description: Members that the new rule no longer matches (null when the module cannot tell).
  returned: when the group is dynamic
  type: int
  sample: 3
members_leaving_sample:
  description: Up to 50 of them, as userPrincipalName.
  returned: when the group is dynamic
  type: list
  elements: str
members_joining:
  description: Users the new rule matches who are not members yet (null when the module cannot tell).
  returned: when the group is dynamic
  type: int
members_predicted:
  description: Users the rule matches in the directory, as evaluated client-side.
  returned: when the group is dynamic and the rule is evaluated client-side (a new or changed rule, or users named to cover)
  type: int
members_not_covered:
  description:
    - Users that O(members) and O(members_from_direct_sku) name whom the rule does not match (the group gives them no license).
    - Null when a new or changed rule cannot be evaluated client-side.
  returned: when the group is dynamic
  type: int
members_not_covered_sample:
  description: Up to 50 of them.
  returned: when the group is dynamic
  type: list
  elements: str
members_on_premises:
  description: Users to add to the synced group on-premises (named by O(members) or O(members_from_direct_sku), not members yet, able to join).
  returned: when the group is synced
  type: int
  sample: 20
members_on_premises_sample:
  description: Up to 50 of them, as userPrincipalName.
  returned: when the group is synced
  type: list
  elements: str
cannot_join:
  description: Users named who cannot join the synced group (cloud-only users, or synced users Graph gives no on-premises name for).
  returned: when the group is synced
  type: int
  sample: 5
cannot_join_sample:
  description: Up to 50 of them, each with C(id), C(user_principal_name) and C(reason).
  returned: when the group is synced
  type: list
  elements: dict
  sample: [{id: 8f6d0558-4ef8-4a38-9227-66581e27a1c0, user_principal_name: ada@contoso.com, reason: "cloud-only user (onPremisesSyncEnabled is not true): ..."}]
on_premises_script:
  description: Absolute path of the AD script written (or that would be, in check mode), or null.
  returned: when the group is synced
  type: str
  sample: /var/tmp/migration/All-users.Add-ADGroupMember.ps1
created:
  description: Whether the group was (or in check mode would be) created.
  returned: always
  type: bool
  sample: true
members_added:
  description: Number of users added as direct members (or that would be, in check mode).
  returned: always
  type: int
  sample: 1250
members_added_sample:
  description: Up to 50 of the users added, as userPrincipalName (object id when Graph gave none).
  returned: always
  type: list
  elements: str
  sample: [ada@contoso.com]
members_removed:
  description: Number of direct user members removed by O(purge_members).
  returned: always
  type: int
  sample: 0
members_removed_sample:
  description: Up to 50 of the users removed.
  returned: always
  type: list
  elements: str
  sample: []
members_total:
  description:
    - Number of direct user members after the run (predicted in check mode); for dynamic and synced groups, the members read
      before the run (the module does not write them).
  returned: always
  type: int
  sample: 1250
members_wanted:
  description: Number of distinct users O(members) and O(members_from_direct_sku) name.
  returned: always
  type: int
  sample: 1250
nested_groups:
  description: Number of groups that are direct members; their members get no license from this group.
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.entraops.licensing.plugins.module_utils.group_members import run_licensing_group
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        members=dict(type="list", elements="str"),
        members_from_direct_sku=dict(type="str"),
        purge_members=dict(type="bool", default=False),
        membership_rule=dict(type="str"),
        membership_rule_processing_state=dict(type="str", choices=["On", "Paused"]),
        accept_membership_loss=dict(type="bool", default=False),
        wait_for_membership=dict(type="bool", default=True),
        membership_timeout=dict(type="int", default=600),
        membership_poll_interval=dict(type="float", default=5),
        use_beta=dict(type="bool", default=True),
        on_premises_script_path=dict(type="path"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_licensing_group(module)


if __name__ == "__main__":
    main()
