#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: group_license
short_description: Ensure a group carries licenses with the given enabled services
version_added: 0.2.0
description:
  - Makes a Microsoft Entra security group carry the given license SKUs, each with the given service plans
    disabled or enabled (C(POST /groups/{id}/assignLicense)), so that its direct user members inherit them.
  - SKUs and plans are resolved through the tenant's C(subscribedSkus), never a hard-coded list.
  - Compares the enabled user plans of each SKU, not the order or the company-level entries of C(disabledPlans) lists,
    so a second run with the same input changes nothing and sends no write.
  - Refuses a change that reduces the services members receive (a SKU removed, plans disabled) unless
    O(allow_service_loss=true), and refuses to add a SKU when the free units cannot cover the members who do not
    hold it yet unless O(allow_insufficient_units=true).
  - Entra applies group licenses in the background; use M(entraops.licensing.license_processing_wait) to wait for it.
author:
  - entraops contributors (@entraops)
options:
  group:
    description:
      - The group, as its object id or its display name. A display name that matches several groups fails the task.
      - The group must exist and be security-enabled.
    type: str
    required: true
  licenses:
    description:
      - The SKUs the group must carry (O(state=present)) or must not carry (O(state=absent)).
    type: list
    elements: dict
    default: []
    suboptions:
      sku:
        description: The SKU, as its GUID or its C(skuPartNumber) (compared without regard to case).
        type: str
        required: true
      disabled_plans:
        description:
          - Service plans to disable, by C(servicePlanId) or C(servicePlanName). Every other plan is enabled.
          - Mutually exclusive with O(licenses[].enabled_plans). With neither, every plan is enabled.
        type: list
        elements: str
      enabled_plans:
        description:
          - Service plans to enable, by C(servicePlanId) or C(servicePlanName). Every other user plan is disabled,
            including plans Microsoft adds to the product later.
        type: list
        elements: str
  state:
    description:
      - V(present) adds the SKUs or changes their plans; V(absent) removes the listed SKUs from the group.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), also remove the SKUs the group carries that O(licenses) does not list.
    type: bool
    default: false
  allow_service_loss:
    description:
      - Allow a change that takes services away from the group's members (removing a SKU, disabling plans).
      - Without it, such a change fails before any write, naming the plans members would lose, as soon as the group
        has at least one direct user member. Members who also hold the services from another source keep them.
    type: bool
    default: false
  allow_insufficient_units:
    description:
      - Add SKUs even when the free units do not cover the direct members who do not hold them yet.
      - Those members then get C(CountViolation) and, since Entra applies a group's licenses all-or-nothing,
        none of this group's SKUs. A warning names the shortfall.
    type: bool
    default: false
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.stateful_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(LicenseAssignment.ReadWrite.All) (or C(Group.ReadWrite.All)),
    C(GroupMember.Read.All) and C(Organization.Read.All).
  - Free units are C(prepaidUnits.enabled - consumedUnits); a member who already holds a SKU (directly or through
    another group) needs no extra unit.
seealso:
  - module: entraops.licensing.licensing_group
  - module: entraops.licensing.license_processing_wait
  - module: entraops.licensing.sku_info
  - name: group assignLicense (Microsoft Graph)
    description: The Graph API this module calls.
    link: https://learn.microsoft.com/graph/api/group-assignlicense
'''

EXAMPLES = r'''
- name: Give the licensing group Office 365 E3 without Sway and Yammer, and EMS E3
  entraops.licensing.group_license:
    group: LIC - Office 365 E3
    licenses:
      - sku: ENTERPRISEPACK
        disabled_plans: [SWAY, YAMMER_ENTERPRISE]
      - sku: EMS
  register: assigned

- name: Show what changed
  ansible.builtin.debug:
    var: assigned.licenses

- name: Carry exactly these licenses, removing any other SKU (members may lose services)
  entraops.licensing.group_license:
    group: 1132b215-826f-42a9-8cfe-1643d19d17fd
    licenses:
      - sku: ENTERPRISEPACK
        enabled_plans: [EXCHANGE_S_ENTERPRISE, SHAREPOINTENTERPRISE, TEAMS1]
    exclusive: true
    allow_service_loss: true

- name: Remove E1 from a group
  entraops.licensing.group_license:
    group: LIC - Office 365 E1
    licenses:
      - sku: STANDARDPACK
    state: absent
    allow_service_loss: true
'''

RETURN = r'''
group:
  description: The group.
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
licenses:
  description: The group's licenses before and after, as C(skuPartNumber) mapped to the sorted names of the enabled user plans.
  returned: always
  type: dict
  contains:
    before:
      description: Before the run.
      type: dict
      sample: {}
    after:
      description: After the run (predicted in check mode).
      type: dict
      sample: {"ENTERPRISEPACK": ["EXCHANGE_S_ENTERPRISE", "SHAREPOINTENTERPRISE", "TEAMS1"]}
service_loss:
  description: C(skuPartNumber) mapped to the plan names the change takes away from the group (empty when none).
  returned: always
  type: dict
  sample: {"STANDARDPACK": ["EXCHANGE_S_STANDARD"]}
new_consumers:
  description:
    - C(skuPartNumber) of each SKU the group starts carrying, mapped to the number of direct user members who do not
      hold it yet (each needs a free unit).
  returned: always
  type: dict
  sample: {"ENTERPRISEPACK": 3}
members:
  description: Number of direct user members of the group (counted only when the change needs it, otherwise null).
  returned: always
  type: int
  sample: 250
processing_state:
  description:
    - The group's C(licenseProcessingState.state) read after the change (before it in check mode); null when Graph gives none.
    - V(QueuedForProcessing) right after a change; wait for V(ProcessingComplete) with M(entraops.licensing.license_processing_wait).
  returned: always
  type: str
  sample: QueuedForProcessing
'''

from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    DirectoryInputError,
    count_members_without_skus,
    find_group,
    get_group,
    read_sku_catalog,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError, GraphOutcomeUnknown
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    GroupFacts,
    LicensingInputError,
    format_shortfall,
    group_license_changes,
    resolve_license_specs,
    unit_shortfall,
)
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule


def argument_spec():
    return dict(
        group=dict(type="str", required=True),
        licenses=dict(type="list", elements="dict", default=[], options=dict(
            sku=dict(type="str", required=True),
            disabled_plans=dict(type="list", elements="str"),
            enabled_plans=dict(type="list", elements="str"),
        ), mutually_exclusive=[("disabled_plans", "enabled_plans")]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        exclusive=dict(type="bool", default=False),
        allow_service_loss=dict(type="bool", default=False),
        allow_insufficient_units=dict(type="bool", default=False),
    )


class GroupLicense:
    """One run: resolve the inputs, decide, check loss and units, write once."""

    def __init__(self, module):
        self.module = module
        self.client = module.client
        self.params = module.params

    def run(self):
        params = self.params
        if params["exclusive"] and params["state"] == "absent":
            self.module.fail_json(msg="exclusive=true applies only to state=present; with state=absent list the SKUs to remove")
        group = self._group()
        catalog = read_sku_catalog(self.client)
        try:
            desired = resolve_license_specs(catalog, params["licenses"])
            changes = group_license_changes(catalog, group.get("assignedLicenses") or [], desired,
                                            state=params["state"], exclusive=params["exclusive"])
        except LicensingInputError as exc:
            self.module.fail_json(msg="group %r: %s" % (params["group"], exc))
        facts = GroupFacts.from_graph(group)
        summary = {"id": facts.group_id, "display_name": facts.display_name}
        new_sku_ids = [license_["skuId"] for license_ in changes["add_licenses"] if not facts.carries(license_["skuId"])]
        members = None
        new_consumers = {}
        if changes["service_loss"] or new_sku_ids:
            missing, members = count_members_without_skus(self.client, facts.group_id, new_sku_ids)
            new_consumers = dict((catalog.label(sku_id), count) for sku_id, count in missing.items())
            self._check_service_loss(changes, members, summary)
            self._check_units(catalog, missing, summary)
        result = dict(changed=changes["changed"], group=summary,
                      licenses={"before": changes["before"], "after": changes["after"]},
                      service_loss=changes["service_loss"], new_consumers=new_consumers, members=members,
                      processing_state=facts.processing_state)
        if self.module.diff_mode:
            result["diff"] = {"before": {"group": facts.display_name, "licenses": changes["before"]},
                              "after": {"group": facts.display_name, "licenses": changes["after"]}}
        if changes["changed"] and not self.module.check_mode:
            result["processing_state"] = self._assign(facts.group_id, changes)
        return result

    def _group(self):
        try:
            group = find_group(self.client, self.params["group"], require_licensable=True)
        except DirectoryInputError as exc:
            self.module.fail_json(msg=str(exc))
        if group is None:
            self.module.fail_json(msg="group %r: no group has this object id or display name; expected an existing security group "
                                      "(create it with entraops.licensing.licensing_group)" % self.params["group"])
        return group

    def _check_service_loss(self, changes, members, summary):
        if not changes["service_loss"] or self.params["allow_service_loss"] or not members:
            return
        lost = "; ".join("%s: %s" % (sku, ", ".join(plans) if plans else "the license itself")
                         for sku, plans in sorted(changes["service_loss"].items()))
        self.module.fail_json(
            msg="refusing to change the licenses of group %r: its %d direct member(s) would lose services (%s). "
                "Set allow_service_loss=true if that is intended" % (summary["display_name"], members, lost),
            group=summary, service_loss=changes["service_loss"], changed=False)

    def _check_units(self, catalog, missing, summary):
        shortfall = unit_shortfall(catalog, sorted(missing), missing)
        if not shortfall:
            return
        message = "group %r: %s" % (summary["display_name"], format_shortfall(catalog, shortfall, missing))
        if self.params["allow_insufficient_units"]:
            self.module.warn(message)
            return
        self.module.fail_json(msg=message + ". Set allow_insufficient_units=true to assign anyway",
                              group=summary, shortfall=dict((catalog.label(sku_id), units) for sku_id, units in shortfall.items()),
                              changed=False)

    def _assign(self, group_id, changes):
        body = {"addLicenses": changes["add_licenses"], "removeLicenses": changes["remove_licenses"]}
        try:
            self.client.post("/groups/%s/assignLicense" % group_id, body=body)
        except GraphOutcomeUnknown:
            # Re-read: the change may have been applied; only a group that reached the desired state is a success.
            group = get_group(self.client, group_id) or {}
            if not self._reached(group, changes):
                raise
        group = get_group(self.client, group_id) or {}
        return GroupFacts.from_graph(group).processing_state if group else None

    @staticmethod
    def _reached(group, changes):
        carried = dict((license_["skuId"].lower(), sorted(p.lower() for p in license_.get("disabledPlans") or []))
                       for license_ in group.get("assignedLicenses") or [])
        for license_ in changes["add_licenses"]:
            if carried.get(license_["skuId"]) != sorted(license_["disabledPlans"]):
                return False
        return not any(sku_id in carried for sku_id in changes["remove_licenses"])


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = GroupLicense(module).run()
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg="Cannot manage the licenses of group %r" % module.params["group"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
