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
      - Members of the group that are groups (nested) are never removed.
      - Needs O(members) or O(members_from_direct_sku), so that an omitted list never empties a group.
    type: bool
    default: false
  state:
    description:
      - V(present) creates the group when needed and adds members; V(absent) deletes the group.
      - V(absent) is refused while the group carries licenses (remove them with M(entraops.licensing.group_license) first),
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
  description: Number of direct user members after the run (predicted in check mode).
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
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_licensing_group(module)


if __name__ == "__main__":
    main()
