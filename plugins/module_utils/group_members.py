# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""licensing_group's run: the security group that will carry the licenses, and its direct members.

The module holds the options and their documentation and calls ``run_licensing_group`` (the pattern
of kubernetes.core's ``module_utils/k8s/runner.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import (
    CLOUD,
    DYNAMIC,
    SYNCED,
    group_kind,
    group_kind_summary,
    member_writes_refused,
)
from ansible_collections.entraops.licensing.plugins.module_utils.group_members_kinds import DynamicGroupRun, SyncedGroupRun, check_rule
from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import LicensingInputError

SAMPLE_SIZE = 50


def run_licensing_group(module):
    """Run the licensing_group task of ``module`` (a GraphModule with its options); exits or fails it."""
    try:
        result = LicensingGroup(module).run()
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot manage group %r" % module.params["name"])
    module.exit_json(**result)


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
        if self.params["membership_timeout"] < 0:
            self.module.fail_json(msg="membership_timeout must be 0 or a positive number of seconds, got %s" % self.params["membership_timeout"])
        if self.params["membership_poll_interval"] <= 0:
            self.module.fail_json(msg="membership_poll_interval must be a positive number of seconds, got %s" % self.params["membership_poll_interval"])
        if self.params["state"] == "absent":
            return self.absent(name)
        return self.present(name)

    def _find(self, name):
        try:
            return find_group(self.client, name, require_licensable=True)
        except DirectoryInputError as exc:
            self.module.fail_json(msg=str(exc))

    def absent(self, name):
        if self.params["members"] or self.params["members_from_direct_sku"] or self.params["purge_members"] or self.params["membership_rule"] is not None:
            self.module.fail_json(msg="state=absent deletes the group: members, members_from_direct_sku, purge_members and membership_rule do not apply")
        group = self._find(name)
        result = dict(
            changed=False,
            group=None,
            created=False,
            kind=group_kind(group) if group is not None else None,
            members_added=0,
            members_added_sample=[],
            members_removed=0,
            members_removed_sample=[],
            members_total=0,
            members_wanted=0,
            nested_groups=0,
        )
        if group is None:
            return result
        result["group"] = {"id": normalize_guid(group["id"], error=LicensingInputError), "display_name": group.get("displayName")}
        if group_kind(group) == SYNCED:
            self.module.fail_json(
                msg="refusing to delete group %r (%s): it is synced from on-premises Active Directory; delete it there "
                "(Entra Connect removes it at the next sync cycle)" % (group.get("displayName"), group["id"]),
                **result,
            )
        if group.get("assignedLicenses"):
            self.module.fail_json(
                msg="refusing to delete group %r (%s): it carries %d license(s); remove them with "
                "entraops.licensing.group_license first (Entra refuses to delete a licensed group)"
                % (group.get("displayName"), group["id"], len(group["assignedLicenses"])),
                **result,
            )
        result["changed"] = True
        if self.module.diff_mode:
            result["diff"] = {
                "before": {"group": group.get("displayName"), "state": "present"},
                "after": {"group": group.get("displayName"), "state": "absent"},
            }
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
                self.module.fail_json(
                    msg="%d user(s) not found: %s; expected userPrincipalNames or object ids of existing users"
                    % (len(unknown), ", ".join(repr(key) for key in unknown)),
                    unknown_members=unknown,
                )
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
        check_rule(self.module, params["membership_rule"])
        group = self._find(name)
        kind = group_kind(group) if group is not None else (DYNAMIC if params["membership_rule"] is not None else CLOUD)
        self._check_kind_options(name, group, kind)
        wanted = self.wanted_members()
        if kind == DYNAMIC:
            return DynamicGroupRun(self, name, group, wanted).run()
        if kind == SYNCED:
            return SyncedGroupRun(self, name, group, wanted).run()
        result = self.present_cloud(name, group, wanted)
        result["kind"] = CLOUD
        result["group_kind"] = dict(group_kind_summary(group), kind=CLOUD)
        return result

    def _check_kind_options(self, name, group, kind):
        """Options the group's kind cannot take fail the task here, before any write (decided from the group's properties)."""
        params = self.params
        if kind == CLOUD and group is not None and params["membership_rule"] is not None:
            self.module.fail_json(
                msg="group %r is a cloud group with assigned members: membership_rule would make it dynamic, and Entra removes every "
                "member first, then adds back the rule's result (members lose the group's licenses meanwhile); create a new dynamic group "
                "instead" % name
            )
        if kind == SYNCED and params["membership_rule"] is not None:
            self.module.fail_json(msg="group %r is synced from on-premises AD: it cannot be given a membership_rule" % name)
        if kind != DYNAMIC and params["membership_rule_processing_state"] is not None:
            self.module.fail_json(msg="membership_rule_processing_state applies to dynamic groups only; group %r is a %s group" % (name, kind))
        if kind != CLOUD and params["purge_members"]:
            self.module.fail_json(
                msg="purge_members=true: %s" % member_writes_refused(group or {"groupTypes": ["DynamicMembership"]}).replace("it is", "group %r is" % name, 1)
            )

    def present_cloud(self, name, group, wanted):
        params = self.params
        current, nested_groups = {}, 0
        if group is not None:
            users, nested, dummy = split_members(iter_direct_members(self.client, group["id"]))
            current = dict((normalize_guid(user["id"], error=LicensingInputError), user.get("userPrincipalName")) for user in users)
            nested_groups = len(nested)
        to_add, to_remove = membership_changes(wanted, current, params["purge_members"])
        labels = dict(current)
        labels.update(wanted)
        description_changes = group is not None and params["description"] is not None and (group.get("description") or "") != params["description"]
        changed = group is None or bool(to_add or to_remove) or description_changes
        result = dict(
            changed=changed,
            created=group is None,
            group={
                "id": normalize_guid(group["id"], error=LicensingInputError) if group else None,
                "display_name": group.get("displayName") if group else name,
            },
            members_added=len(to_add),
            members_added_sample=sample(labels, to_add),
            members_removed=len(to_remove),
            members_removed_sample=sample(labels, to_remove),
            members_total=len(current) + len(to_add) - len(to_remove),
            members_wanted=len(wanted),
            nested_groups=nested_groups,
        )
        if self.module.diff_mode:
            result["diff"] = {
                "before": {
                    "group": name,
                    "state": "present" if group else "absent",
                    "description": group.get("description") if group else None,
                    "members_total": len(current),
                    "members_removed": diff_list(labels, to_remove),
                },
                "after": {
                    "group": name,
                    "state": "present",
                    "description": params["description"] if params["description"] is not None else (group or {}).get("description"),
                    "members_total": result["members_total"],
                    "members_added": diff_list(labels, to_add),
                },
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
