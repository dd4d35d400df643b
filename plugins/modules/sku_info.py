#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sku_info
short_description: List the tenant's subscribed license SKUs, their capacity and service plans
version_added: 0.1.0
description:
  - Reads the subscribed SKUs (products) of a Microsoft Entra tenant from Microsoft Graph (C(GET /subscribedSkus)).
  - For each SKU returns its GUID and part number, how many units are enabled, consumed and still available,
    and its service plans, with the plans that apply to users listed separately
    (those are the plans a user can hold, the ones the migration compares).
  - Use it before a migration to check capacity and to look up plan names for C(disabled_plans).
author:
  - entraops contributors (@entraops)
options:
  skus:
    description:
      - Only return these SKUs, each given as its GUID (V(c7df2760-2c81-4ef7-b578-5b5392b571df)) or its part number
        (V(ENTERPRISEPREMIUM), compared without regard to case).
      - A value that names no subscribed SKU fails the task, naming the value and listing the subscribed part numbers.
      - When not set, every subscribed SKU is returned.
    type: list
    elements: str
  permissions_for:
    description:
      - Compare the application permissions of the token (RV(granted_permissions)) with what this work needs, and list
        what is missing in RV(missing_permissions). Higher permissions that Microsoft documents as also granting a need
        are accepted.
      - V(read) users, licenses, groups, members, SKUs (C(User.Read.All), C(GroupMember.Read.All), C(Organization.Read.All));
        V(group) create a group and add members (C(Group.Create) or C(Group.ReadWrite.All), and C(GroupMember.ReadWrite.All));
        V(assign) group licenses and V(remove) direct ones (C(LicenseAssignment.ReadWrite.All));
        V(restore) direct assignments (C(LicenseAssignment.ReadWrite.All), and C(User.ReadWrite.All) to set the usage location of
        users who have none).
    type: list
    elements: str
    choices: [read, group, assign, remove, restore]
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.info_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permission C(Organization.Read.All) (least privileged);
    C(Directory.Read.All) also works.
  - RV(skus[].available) is C(enabled - consumed) as Microsoft does not define a free-seat formula.
    It is negative when more units are assigned than enabled (for example after a subscription was reduced).
    Units in the C(warning) state are not counted as available.
seealso:
  - name: subscribedSkus (Microsoft Graph)
    description: The Graph API this module reads.
    link: https://learn.microsoft.com/graph/api/subscribedsku-list
"""

EXAMPLES = r"""
- name: Read license capacity with the connection set once for the whole collection
  module_defaults:
    group/entraops.licensing.graph:
      tenant_id: "{{ entra_tenant_id }}"
      client_id: "{{ entra_client_id }}"
      client_secret: "{{ entra_client_secret }}"
  block:
    - name: List every subscribed SKU
      entraops.licensing.sku_info:
      register: all_skus

    - name: Show the free units of each SKU
      ansible.builtin.debug:
        msg: "{{ all_skus.skus | items2dict(key_name='sku_part_number', value_name='available') }}"

    - name: Read two SKUs, one by part number, one by GUID
      entraops.licensing.sku_info:
        skus:
          - ENTERPRISEPACK
          - 06ebc4ee-1bb5-47dd-8120-11324bc54e06
      register: chosen

    - name: Fail early when E3 has no free units
      ansible.builtin.assert:
        that: chosen.skus[0].available > 0
        fail_msg: "No free {{ chosen.skus[0].sku_part_number }} units"

- name: Rehearse against the Graph emulator
  entraops.licensing.sku_info:
    tenant_id: "{{ emulator.tenant_id }}"
    client_id: "{{ emulator.client_id }}"
    client_secret: "{{ emulator.client_secret }}"
    graph_url: "{{ emulator.base_url }}"
    authority_url: "{{ emulator.base_url }}"
    ca_bundle: "{{ emulator.ca_path }}"
    skus: [SPE_E5]
"""

RETURN = r"""
skus:
  description:
    - The subscribed SKUs, in the order of O(skus) when it is set, otherwise sorted by part number.
  returned: always
  type: list
  elements: dict
  contains:
    sku_id:
      description: The SKU's GUID, lower case.
      type: str
      sample: c7df2760-2c81-4ef7-b578-5b5392b571df
    sku_part_number:
      description: The SKU's part number.
      type: str
      sample: ENTERPRISEPREMIUM
    applies_to:
      description: V(User) for SKUs assignable to users, V(Company) for tenant-wide ones.
      type: str
      sample: User
    capability_status:
      description: V(Enabled), V(Warning), V(Suspended), V(Deleted) or V(LockedOut).
      type: str
      sample: Enabled
    enabled:
      description: Units in the enabled state (C(prepaidUnits.enabled)).
      type: int
      sample: 25
    consumed:
      description: Units assigned to users (C(consumedUnits)); a user holding the SKU directly and through groups uses one unit.
      type: int
      sample: 14
    available:
      description: C(enabled - consumed); negative when more units are assigned than enabled.
      type: int
      sample: 11
    suspended:
      description: Units in the suspended state (C(prepaidUnits.suspended)).
      type: int
      sample: 0
    warning:
      description: Units in the warning state (C(prepaidUnits.warning)), not counted in RV(skus[].available).
      type: int
      sample: 0
    locked_out:
      description: Units in the locked-out state (C(prepaidUnits.lockedOut)).
      type: int
      sample: 0
    service_plans:
      description: Every service plan of the SKU.
      type: list
      elements: dict
      contains:
        service_plan_id:
          description: The plan's GUID, lower case.
          type: str
          sample: 8c098270-9dd4-4350-9b30-ba4703f3b36b
        service_plan_name:
          description: The plan's name, as used in C(disabled_plans).
          type: str
          sample: EXCHANGE_S_ENTERPRISE
        applies_to:
          description: V(User) when the plan is assigned to users, V(Company) for tenant-level plans.
          type: str
          sample: User
        provisioning_status:
          description: The plan's provisioning status in the tenant (for example V(Success), V(Disabled), V(PendingActivation)).
          type: str
          sample: Success
    user_service_plan_names:
      description:
        - Names of the plans that apply to users, sorted. These are the plans a user holds through the SKU;
          the migration's safety rule compares exactly these.
      type: list
      elements: str
      sample: [EXCHANGE_S_ENTERPRISE, SHAREPOINTENTERPRISE, TEAMS1]
granted_permissions:
  description:
    - The Microsoft Graph application permissions the access token carries (its C(roles) claim), sorted.
      Read from the token's payload without checking its signature; the token itself is never returned.
    - Empty when the token does not say (RV(permissions_known) is false), for example a token given as O(access_token)
      that is not a JWT or has no C(roles) claim.
  returned: always
  type: list
  elements: str
  sample: [GroupMember.Read.All, LicenseAssignment.ReadWrite.All, Organization.Read.All, User.Read.All]
permissions_known:
  description: Whether the token lists its application permissions; when false RV(missing_permissions) is empty because nothing can be compared.
  returned: always
  type: bool
missing_permissions:
  description: What O(permissions_for) needs that the token lacks, each with C(operation), C(permission) and C(accepted) (any of these would do).
  returned: always
  type: list
  elements: dict
  sample: [{operation: group, permission: Group.Create, accepted: [Group.Create, Group.ReadWrite.All, Directory.ReadWrite.All]}]
"""

from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.skus import run_sku_info


def main():
    module = GraphModule(
        argument_spec=dict(
            skus=dict(type="list", elements="str"), permissions_for=dict(type="list", elements="str", choices=["read", "group", "assign", "remove", "restore"])
        ),
        supports_check_mode=True,
    )
    run_sku_info(module)


if __name__ == "__main__":
    main()
