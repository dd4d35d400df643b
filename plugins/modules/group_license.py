#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
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
"""

EXAMPLES = r"""
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
"""

RETURN = r"""
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
"""

from ansible_collections.entraops.licensing.plugins.module_utils.group_licenses import run_group_license
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule


def argument_spec():
    return dict(
        group=dict(type="str", required=True),
        licenses=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                sku=dict(type="str", required=True),
                disabled_plans=dict(type="list", elements="str"),
                enabled_plans=dict(type="list", elements="str"),
            ),
            mutually_exclusive=[("disabled_plans", "enabled_plans")],
        ),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        exclusive=dict(type="bool", default=False),
        allow_service_loss=dict(type="bool", default=False),
        allow_insufficient_units=dict(type="bool", default=False),
    )


def main():
    module = GraphModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_group_license(module)


if __name__ == "__main__":
    main()
