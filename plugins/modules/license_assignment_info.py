#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: license_assignment_info
short_description: Verify how each user holds each license (direct, inherited, both) and plan the removal of direct assignments
version_added: 0.2.0
description:
  - For every user in scope and every SKU the user holds, reads C(licenseAssignmentStates), C(assignedLicenses) and the
    user's direct group memberships from Microsoft Graph, and classifies the pair with the collection's safety rule.
    A direct assignment may be removed only if healthy inheritance from groups the user is a B(direct) member of
    enables every service plan the direct assignment enables (union across all such groups).
  - Each pair gets a verdict (V(safe_to_remove), V(direct_only), V(inherited_only), V(inherited_in_error),
    V(inherited_from_untrusted_group), V(not_direct_member), V(group_processing), V(plans_would_be_lost),
    V(user_not_found), V(sku_not_subscribed)) and, where plans would be lost, their names.
  - Optionally writes the full report to O(report_path) and a removal plan to O(plan_path) with batch numbers
    (0 for the canary, then 1, 2, ...) that M(entraops.licensing.direct_license) executes. Beside the plan it writes
    the "what this run will do" PowerShell script for the change record (every planned removal as a commented-out
    C(Set-MgUserLicense) statement, by batch).
  - With O(expected_state_path), reads the legacy PowerShell automation's export of the direct assignments it applies
    and reports every user whose healthy inherited copies (what remains once the direct assignments are removed) do not
    give them the same (a SKU missing, or enabled service plans missing).
  - Users are read page by page (999 per page); the module never holds all user objects at once. Only the returned
    sample, the plan rows and (when O(query) is set) the records needed for the query are kept in memory.
author:
  - entraops contributors (@entraops)
options:
  users:
    description:
      - Scope by users, each given as object id or user principal name.
      - A user that does not exist gives a V(user_not_found) record.
      - At least one of O(users), O(groups), O(skus) or O(expected_state_path) must be set; O(users) and O(groups) exclude each
        other; O(skus) may also be combined with them to limit the SKUs.
    type: list
    elements: str
  groups:
    description:
      - Scope by group membership, each group given as id or display name. Members at any depth are included, so users
        who belong to a licensing group only through a nested group show up as V(not_direct_member).
      - A name that matches no group, or several, fails the task before anything is read about users.
    type: list
    elements: str
  skus:
    description:
      - Scope by SKU (GUID or part number), meaning every user whose C(assignedLicenses) hold one of them.
      - Combined with O(users) or O(groups), only these SKUs are classified.
      - A SKU the tenant does not subscribe to fails the task, naming the value and listing the subscribed part numbers.
    type: list
    elements: str
  trusted_groups:
    description:
      - When set, only inheritance from these groups (ids or display names) counts as coverage; copies inherited from other
        groups give V(inherited_from_untrusted_group).
    type: list
    elements: str
  report_path:
    description:
      - Write every record to this file. The format follows the extension (C(.csv) or C(.json)) unless O(report_format) is set.
      - Writing the file does not make the task changed.
    type: path
  report_format:
    description:
      - Format of O(report_path). V(powershell) writes the columns of Microsoft's documented PowerShell
        "direct vs inherited" report (C(ObjectId), C(SkuId), C(AssignedDirectly), C(AssignedFromGroup); every field quoted,
        C(True)/C(False), UTF-8 with BOM), so spreadsheets and dashboards built on that report keep working.
      - V(ms_direct_vs_inherited) is the earlier name of V(powershell) and does the same.
      - With O(expected_state_path), the V(csv) format has two more columns, C(expected_state) and C(expected_plans_missing),
        and the V(json) format carries the same keys in each record.
    type: str
    choices: [csv, json, powershell, ms_direct_vs_inherited]
  expected_state_path:
    description:
      - The legacy automation's export of the direct license assignments it applies, the state the groups must reproduce.
        C(files/Export-LicenseState.ps1) of this collection writes it; other exports are read too.
      - CSV from C(Export-Csv) (with or without the C(#TYPE) first line, comma or semicolon delimiter, detected) or JSON from
        C(ConvertTo-Json) (an array, or one object for one row); UTF-8 with or without BOM or UTF-16 (Windows PowerShell 5.1).
      - One row per user and SKU. Users by C(UserPrincipalName) or C(UserId); SKUs by C(SkuId) or C(SkuPartNumber); plans as
        C(DisabledPlans) (GUIDs or names joined with C(;)), C(DisabledPlanNames), or C(EnabledPlans). A JSON user object may
        carry C(AssignedLicenses) or C(LicenseAssignmentStates) (direct entries only) lists instead.
      - An export PowerShell could not write properly (a cell holding C(System.String[]) or C(@{...}), JSON cut by the default
        C(-Depth 2), an ANSI encoding) fails the task naming the file, the line or record and the fix, before anything is read
        from Graph. So do SKUs and plans the tenant does not have.
      - Each user and SKU of the file is compared with the user's healthy inherited copies (the same rule, and O(trusted_groups),
        as the verdicts), giving V(reproduced), V(plans_missing) (the groups enable fewer plans), V(sku_missing) (no healthy inherited
        copy of the SKU), V(user_not_found). See RV(expected_state).
      - Without O(users), O(groups) and O(skus), the scope is the users of the file.
    type: path
  plan_path:
    description:
      - Write the removal plan (JSON) here, with every V(safe_to_remove) record in a stable order with its batch number.
      - Also writes, beside it, C(<plan name without extension>.planned.ps1) (for C(plan.json), C(plan.planned.ps1)) with the
        planned removals as commented-out Microsoft Graph PowerShell statements
        C(Set-MgUserLicense -UserId ... -AddLicenses @() -RemoveLicenses @(...)) grouped by batch, for the change record.
        Running it changes nothing.
      - B(A plan is a change artifact.) When a plan already exists at this path it is kept as it is (RV(plan_kept)), so batch N names
        the same users for the plan's whole life however often the task runs; the report is still written from this run's read.
        Set O(replace_plan) to write a new plan.
      - A kept plan must have been made with this task's settings (tenant, O(trusted_groups), O(canary_size), O(batch_size) and the
        scope O(users), O(groups), O(skus)); otherwise the task fails naming each difference, rather than keep a plan the task
        does not describe or replace one silently.
      - The plan's fingerprint (RV(plan_fingerprint)) identifies its content for the change record; give it to
        M(entraops.licensing.direct_license) as O(entraops.licensing.direct_license#module:plan_fingerprint).
    type: path
  replace_plan:
    description:
      - Write a new plan at O(plan_path) even when one is there. Its batches are computed from this run's read, so they may name
        other users than the plan it replaces; a new plan needs a new approval (its fingerprint differs).
      - A plan that a M(entraops.licensing.direct_license) run is executing (it is locked) is not replaced; the task fails.
    type: bool
    default: false
  canary_size:
    description: Rows in batch 0 (the canary) of the plan. V(0) means no canary.
    type: int
    default: 10
  batch_size:
    description: Rows per batch after the canary.
    type: int
    default: 500
  query:
    description:
      - A JMESPath expression applied to the list of all records; its value is returned as RV(query_result).
      - Needs the C(jmespath) Python library. All records are kept in memory while this is set.
    type: str
  sample_size:
    description: How many records to return in RV(records) (the report holds them all).
    type: int
    default: 100
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.info_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(User.Read.All), C(GroupMember.Read.All) and C(Organization.Read.All)
    (C(Directory.Read.All) covers all three).
  - The comparison uses the service plans of each SKU read from the tenant (C(subscribedSkus)), never a fixed list.
  - C(files/Export-LicenseState.ps1) (in the collection) exports the legacy state with the Microsoft Graph PowerShell SDK;
    see the README.
seealso:
  - module: entraops.licensing.direct_license
"""

EXAMPLES = r"""
- name: Classify every holder of E3 and write the report and the removal plan
  entraops.licensing.license_assignment_info:
    skus: [ENTERPRISEPACK]
    trusted_groups: ["LIC E3 all"]
    report_path: /var/tmp/migration/verify.csv
    plan_path: /var/tmp/migration/plan.json
    canary_size: 10
    batch_size: 500
  register: verify

- name: Stop when anybody would lose a service plan
  ansible.builtin.assert:
    that: verify.summary.plans_would_be_lost == 0

- name: Compare the groups with what the legacy PowerShell automation assigns
  entraops.licensing.license_assignment_info:
    expected_state_path: /var/tmp/migration/legacy-state.csv   # written by files/Export-LicenseState.ps1
    trusted_groups: ["LIC E3 all"]
    report_path: /var/tmp/migration/expected.csv
  register: expected

- name: Stop when a group does not give somebody what the legacy automation gives them
  ansible.builtin.assert:
    that: expected.expected_state.gaps_total == 0
    fail_msg: "{{ expected.expected_state.gaps }}"

- name: Keep the dashboards fed by Microsoft's direct-vs-inherited PowerShell report
  entraops.licensing.license_assignment_info:
    skus: [ENTERPRISEPACK]
    report_path: /var/tmp/migration/direct-vs-inherited.csv
    report_format: powershell

- name: Users of one group whose inherited copy is in error
  entraops.licensing.license_assignment_info:
    groups: ["LIC E3 all"]
    query: "[?verdict=='inherited_in_error'].{user: user_principal_name, errors: errors}"
  register: errors
"""

RETURN = r"""
summary:
  description: Number of records per verdict (every verdict present, 0 when none).
  returned: always
  type: dict
  sample: {safe_to_remove: 120, plans_would_be_lost: 2, direct_only: 3}
records:
  description:
    - The first O(sample_size) records. Each has C(user_id), C(user_principal_name), C(sku_id), C(sku_part_number), C(verdict),
      C(direct), C(direct_disabled_plans), C(inherited_from), C(healthy_inherited_from), C(plans_lost) (plan names),
      C(errors) (error codes), C(reason), C(blocking_groups), C(direct_enabled_plan_names), C(inherited_enabled_plan_names),
      C(usage_location) (the user's two-letter C(usageLocation), or null when the user has none).
    - With O(expected_state_path), also C(expected_state) (V(reproduced), V(plans_missing), V(sku_missing), V(user_not_found), or
      null when the file does not name this user and SKU) and C(expected_plans_missing) (plan names).
  returned: always
  type: list
  elements: dict
inherited_sources:
  description:
    - Every group the records' inherited copies come from, most records first, each with C(id), C(display_name), C(kind)
      (V(cloud), V(dynamic) or V(synced); null for a group that no longer exists) and C(records) (records inheriting from it).
    - Members of a dynamic group are its direct members (Graph lists them as such), so a dynamic group's copy covers them like a
      cloud group's; a synced group's members are those Entra Connect last brought from on-premises AD.
  returned: always
  type: list
  elements: dict
  sample: [{id: 1132b215-826f-42a9-8cfe-1643d19d17fd, display_name: All users, kind: dynamic, records: 1000}]
records_total:
  description: Number of records classified (the report holds them all).
  returned: always
  type: int
users_without_usage_location:
  description:
    - Users in scope (counted once) without a usage location. Group licensing uses the tenant's country for them; a direct
      assignment, such as a rollback with M(entraops.licensing.direct_license), needs one (that module can set the tenant's).
  returned: always
  type: int
  sample: 3
users_without_usage_location_sample:
  description: User principal names of the first 20 of them.
  returned: always
  type: list
  elements: str
report_path:
  description: Absolute path of the report written, or null.
  returned: always
  type: str
plan_path:
  description: Absolute path of the plan written or kept, or null.
  returned: always
  type: str
plan_kept:
  description:
    - True when a plan already at O(plan_path) was kept (O(replace_plan) not set); RV(batches), RV(batch_sizes) and
      RV(plan_fingerprint) then describe the kept plan, not this run's read.
  returned: when O(plan_path) is set
  type: bool
plan_fingerprint:
  description:
    - The fingerprint of the plan's content (C(sha256:) and 64 hexadecimal digits), for the change record. It is also recorded in
      the plan, printed in its C(.planned.ps1) script, written in the journal's run lines and shown in the migration report.
    - It covers every row (user, SKU, batch, verdict, disabled plans ...), the tenant and the trusted groups; not the file's
      layout or its creation time.
  returned: when O(plan_path) is set
  type: str
  sample: sha256:3f2c9a4e0d6b8c1a7e5f4d3c2b1a09887766554433221100ffeeddccbbaa9988
previous_plan_fingerprint:
  description: The fingerprint of the plan that O(replace_plan) replaced.
  returned: when O(replace_plan) replaced a plan
  type: str
planned_script_path:
  description: Absolute path of the "what this run will do" PowerShell script written beside the plan, or null.
  returned: always
  type: str
  sample: /var/tmp/migration/plan.planned.ps1
expected_state:
  description:
    - The comparison with O(expected_state_path).
    - C(path), C(format) (C(csv) or C(json)), C(encoding), C(delimiter) (CSV only) of the file; C(assignments) (user and SKU
      pairs in the file), C(users); counts C(reproduced), C(plans_missing), C(sku_missing), C(user_not_found);
      C(gaps_total) and C(gaps), the first O(sample_size) pairs not reproduced. Each gap has C(expected_state), C(user_id),
      C(user_principal_name), C(sku_id), C(sku_part_number), C(source) (file and line or record), C(plans_missing) (names),
      C(expected_enabled_plan_names), C(inherited_enabled_plan_names), C(healthy_inherited_from) and C(verdict).
  returned: when O(expected_state_path) is set
  type: dict
  sample:
    path: /var/tmp/migration/legacy-state.csv
    format: csv
    encoding: utf-8 with BOM
    delimiter: ","
    assignments: 2
    users: 2
    reproduced: 1
    plans_missing: 1
    sku_missing: 0
    user_not_found: 0
    gaps_total: 1
    gaps:
      - expected_state: plans_missing
        user_principal_name: adele@contoso.com
        sku_part_number: ENTERPRISEPACK
        plans_missing: [SWAY]
        source: /var/tmp/migration/legacy-state.csv line 2
batches:
  description: Number of batches in the plan (0 without a plan).
  returned: always
  type: int
batch_sizes:
  description: Rows per batch number of the plan.
  returned: when O(plan_path) is set
  type: dict
query_result:
  description: The value of O(query) over all records.
  returned: when O(query) is set
  type: raw
"""

from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.verification import run_license_assignment_info


def argument_spec():
    return dict(
        users=dict(type="list", elements="str"),
        groups=dict(type="list", elements="str"),
        skus=dict(type="list", elements="str"),
        trusted_groups=dict(type="list", elements="str"),
        report_path=dict(type="path"),
        report_format=dict(type="str", choices=["csv", "json", "powershell", "ms_direct_vs_inherited"]),
        expected_state_path=dict(type="path"),
        plan_path=dict(type="path"),
        replace_plan=dict(type="bool", default=False),
        canary_size=dict(type="int", default=10),
        batch_size=dict(type="int", default=500),
        query=dict(type="str"),
        sample_size=dict(type="int", default=100),
    )


def main():
    module = GraphModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[["users", "groups"]],
        required_one_of=[["users", "groups", "skus", "expected_state_path"]],
    )
    run_license_assignment_info(module)


if __name__ == "__main__":
    main()
