#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
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
  - Return values carry counts and a sample of at most 50 members; the diff lists at most 50 members added or removed.
seealso:
  - module: entraops.licensing.group_license
  - module: entraops.licensing.license_processing_wait
'''

EXAMPLES = r'''
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
'''

RETURN = r'''
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
'''

import unicodedata

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    DirectoryInputError,
    add_members,
    create_security_group,
    delete_group,
    direct_sku_holders,
    find_group,
    iter_direct_members,
    read_sku_catalog,
    remove_members,
    resolve_users,
    split_members,
    update_group_description,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule

SAMPLE_SIZE = 50


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        members=dict(type="list", elements="str"),
        members_from_direct_sku=dict(type="str"),
        purge_members=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def membership_changes(wanted, current, purge):
    """Pure member diff: ``(to_add, to_remove)`` as sorted id lists.

    ``wanted`` and ``current`` map user id -> label; ``to_remove`` is empty unless ``purge``.
    """
    to_add = sorted(user_id for user_id in wanted if user_id not in current)
    to_remove = sorted(user_id for user_id in current if user_id not in wanted) if purge else []
    return to_add, to_remove


def sample(labels_by_id, ids):
    return [labels_by_id.get(user_id) or user_id for user_id in ids[:SAMPLE_SIZE]]


def diff_list(labels_by_id, ids):
    listed = sorted(labels_by_id.get(user_id) or user_id for user_id in ids)
    if len(listed) > SAMPLE_SIZE:
        listed = listed[:SAMPLE_SIZE] + ["... and %d more" % (len(listed) - SAMPLE_SIZE)]
    return listed


# Entra's limits for a group's displayName and description (Graph group resource).
MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 1024


def text_problem(value, limit):
    """Why ``value`` cannot be a group name or description (control characters, too long), or None."""
    if value is None:
        return None
    if any(unicodedata.category(character) == "Cc" for character in value):
        return "contains control characters: expected printable text"
    if len(value) > limit:
        return "is %d characters long: expected at most %d" % (len(value), limit)
    return None


class LicensingGroup:
    def __init__(self, module):
        self.module = module
        self.client = module.client
        self.params = module.params

    def run(self):
        name = (self.params["name"] or "").strip()
        if not name:
            self.module.fail_json(msg="name %r is empty: expected the display name of the group" % self.params["name"])
        for option, limit in (("name", MAX_NAME_LENGTH), ("description", MAX_DESCRIPTION_LENGTH)):
            problem = text_problem(self.params[option], limit)
            if problem:
                self.module.fail_json(msg="%s %r %s" % (option, self.params[option], problem))
        if self.params["state"] == "absent":
            return self.absent(name)
        return self.present(name)

    def _find(self, name):
        try:
            return find_group(self.client, name, require_licensable=True)
        except DirectoryInputError as exc:
            self.module.fail_json(msg=str(exc))

    def absent(self, name):
        if self.params["members"] or self.params["members_from_direct_sku"] or self.params["purge_members"]:
            self.module.fail_json(msg="state=absent deletes the group: members, members_from_direct_sku and purge_members do not apply")
        group = self._find(name)
        result = dict(changed=False, group=None, created=False, members_added=0, members_added_sample=[], members_removed=0,
                      members_removed_sample=[], members_total=0, members_wanted=0, nested_groups=0)
        if group is None:
            return result
        result["group"] = {"id": normalize_guid(group["id"], error=LicensingInputError), "display_name": group.get("displayName")}
        if group.get("assignedLicenses"):
            self.module.fail_json(msg="refusing to delete group %r (%s): it carries %d license(s); remove them with "
                                      "entraops.licensing.group_license first (Entra refuses to delete a licensed group)"
                                      % (group.get("displayName"), group["id"], len(group["assignedLicenses"])), **result)
        result["changed"] = True
        if self.module.diff_mode:
            result["diff"] = {"before": {"group": group.get("displayName"), "state": "present"},
                              "after": {"group": group.get("displayName"), "state": "absent"}}
        if not self.module.check_mode:
            delete_group(self.client, group["id"])
        return result

    def wanted_members(self):
        """``{user_id: label}`` of every user the options name; fails before any write on unknown users or SKU."""
        wanted = {}
        members = self.params["members"]
        if members:
            try:
                found, unknown = resolve_users(self.client, members)
            except DirectoryInputError as exc:
                self.module.fail_json(msg=str(exc))
            if unknown:
                self.module.fail_json(msg="%d user(s) not found: %s; expected userPrincipalNames or object ids of existing users"
                                          % (len(unknown), ", ".join(repr(key) for key in unknown)), unknown_members=unknown)
            for summary in found.values():
                wanted[summary["id"]] = summary["user_principal_name"]
        sku = self.params["members_from_direct_sku"]
        if sku:
            try:
                sku_id = read_sku_catalog(self.client).resolve_sku(sku)
            except LicensingInputError as exc:
                self.module.fail_json(msg="members_from_direct_sku: %s" % exc)
            for summary in direct_sku_holders(self.client, sku_id):
                wanted[summary["id"]] = summary["user_principal_name"]
        return wanted

    def present(self, name):
        params = self.params
        if params["purge_members"] and params["members"] is None and not params["members_from_direct_sku"]:
            self.module.fail_json(msg="purge_members=true needs members or members_from_direct_sku: without them every member would be removed")
        group = self._find(name)
        wanted = self.wanted_members()
        current, nested_groups = {}, 0
        if group is not None:
            users, nested, dummy = split_members(iter_direct_members(self.client, group["id"]))
            current = dict((normalize_guid(user["id"], error=LicensingInputError), user.get("userPrincipalName")) for user in users)
            nested_groups = len(nested)
        to_add, to_remove = membership_changes(wanted, current, params["purge_members"])
        labels = dict(current)
        labels.update(wanted)
        description_changes = group is not None and params["description"] is not None and \
            (group.get("description") or "") != params["description"]
        changed = group is None or bool(to_add or to_remove) or description_changes
        result = dict(
            changed=changed, created=group is None,
            group={"id": normalize_guid(group["id"], error=LicensingInputError) if group else None,
                   "display_name": group.get("displayName") if group else name},
            members_added=len(to_add), members_added_sample=sample(labels, to_add),
            members_removed=len(to_remove), members_removed_sample=sample(labels, to_remove),
            members_total=len(current) + len(to_add) - len(to_remove), members_wanted=len(wanted), nested_groups=nested_groups)
        if self.module.diff_mode:
            result["diff"] = {
                "before": {"group": name, "state": "present" if group else "absent",
                           "description": group.get("description") if group else None, "members_total": len(current),
                           "members_removed": diff_list(labels, to_remove)},
                "after": {"group": name, "state": "present",
                          "description": params["description"] if params["description"] is not None else (group or {}).get("description"),
                          "members_total": result["members_total"], "members_added": diff_list(labels, to_add)},
            }
        if self.module.check_mode or not changed:
            return result
        if group is None:
            group = create_security_group(self.client, name, params["description"])
            result["group"] = {"id": normalize_guid(group["id"], error=LicensingInputError), "display_name": group.get("displayName")}
        elif description_changes:
            update_group_description(self.client, group["id"], params["description"])
        if to_add:
            add_members(self.client, group["id"], to_add)
        if to_remove:
            remove_members(self.client, group["id"], to_remove)
        return result


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = LicensingGroup(module).run()
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot manage group %r" % module.params["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
