#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
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
    (0 for the canary, then 1, 2, ...) that M(entraops.licensing.direct_license) executes.
  - Users are read page by page (999 per page); the module never holds all user objects at once. Only the returned
    sample, the plan rows and (when O(query) is set) the records needed for the query are kept in memory.
author:
  - entraops contributors (@entraops)
options:
  users:
    description:
      - Scope by users, each given as object id or user principal name.
      - A user that does not exist gives a V(user_not_found) record.
      - Exactly one of O(users), O(groups) or O(skus) must be set; O(skus) may also be combined with the other two to limit the SKUs.
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
      - Format of O(report_path). V(ms_direct_vs_inherited) writes the columns of Microsoft's documented PowerShell
        "direct vs inherited" report.
    type: str
    choices: [csv, json, ms_direct_vs_inherited]
  plan_path:
    description:
      - Write the removal plan (JSON) here, with every V(safe_to_remove) record in a stable order with its batch number.
    type: path
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
  - The legacy automation's export (C(expected_state_path) in the design) is not supported yet.
seealso:
  - module: entraops.licensing.direct_license
'''

EXAMPLES = r'''
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

- name: Users of one group whose inherited copy is in error
  entraops.licensing.license_assignment_info:
    groups: ["LIC E3 all"]
    query: "[?verdict=='inherited_in_error'].{user: user_principal_name, errors: errors}"
  register: errors
'''

RETURN = r'''
summary:
  description: Number of records per verdict (every verdict present, 0 when none).
  returned: always
  type: dict
  sample: {safe_to_remove: 120, plans_would_be_lost: 2, direct_only: 3}
records:
  description:
    - The first O(sample_size) records. Each has C(user_id), C(user_principal_name), C(sku_id), C(sku_part_number), C(verdict),
      C(direct), C(direct_disabled_plans), C(inherited_from), C(healthy_inherited_from), C(plans_lost) (plan names),
      C(errors) (error codes), C(reason), C(blocking_groups), C(direct_enabled_plan_names), C(inherited_enabled_plan_names).
  returned: always
  type: list
  elements: dict
records_total:
  description: Number of records classified (the report holds them all).
  returned: always
  type: int
report_path:
  description: Absolute path of the report written, or null.
  returned: always
  type: str
plan_path:
  description: Absolute path of the plan written, or null.
  returned: always
  type: str
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
'''

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import (
    MembershipIndex,
    iter_records,
    read_catalog,
    read_tenant_id,
    resolve_groups,
    resolve_skus,
)
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import VERDICTS, LicensingInputError, assign_batches
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.plan import batch_counts, write_plan
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError, write_report


class Collector:
    """Watches the record stream once: counts, sample, plan candidates, and (for a query) everything."""

    def __init__(self, sample_size, keep_all, keep_safe):
        self.summary = dict((verdict, 0) for verdict in VERDICTS)
        self.sample = []
        self.total = 0
        self.sample_size = sample_size
        self.all_records = [] if keep_all else None
        self.safe = [] if keep_safe else None

    def watch(self, records):
        for record in records:
            self.total += 1
            self.summary[record['verdict']] = self.summary.get(record['verdict'], 0) + 1
            if len(self.sample) < self.sample_size:
                self.sample.append(record)
            if self.all_records is not None:
                self.all_records.append(record)
            if self.safe is not None and record['verdict'] == 'safe_to_remove':
                self.safe.append(record)
            yield record


def main():
    module = GraphModule(
        argument_spec=dict(
            users=dict(type='list', elements='str'),
            groups=dict(type='list', elements='str'),
            skus=dict(type='list', elements='str'),
            trusted_groups=dict(type='list', elements='str'),
            report_path=dict(type='path'),
            report_format=dict(type='str', choices=['csv', 'json', 'ms_direct_vs_inherited']),
            plan_path=dict(type='path'),
            canary_size=dict(type='int', default=10),
            batch_size=dict(type='int', default=500),
            query=dict(type='str'),
            sample_size=dict(type='int', default=100),
        ),
        supports_check_mode=True,
        mutually_exclusive=[['users', 'groups']],
        required_one_of=[['users', 'groups', 'skus']],
    )
    params = module.params
    if params['query'] and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib('jmespath'), exception=JMESPATH_IMPORT_ERROR)
    if params['canary_size'] < 0 or params['batch_size'] < 1 or params['sample_size'] < 0:
        module.fail_json(msg='canary_size must be >= 0, batch_size >= 1 and sample_size >= 0; got %s, %s and %s' % (
            params['canary_size'], params['batch_size'], params['sample_size']))
    query = None
    if params['query']:
        try:
            query = jmespath.compile(params['query'])
        except jmespath.exceptions.JMESPathError as exc:
            module.fail_json(msg='query %r is not a valid JMESPath expression: %s' % (params['query'], exc))
    client = module.client
    try:
        catalog = read_catalog(client)
        tenant_guid = read_tenant_id(client)
        sku_ids = resolve_skus(catalog, params['skus'])
        group_ids = list(resolve_groups(client, params['groups'])) if params['groups'] else None
        trusted = list(resolve_groups(client, params['trusted_groups'])) if params['trusted_groups'] is not None else None
        index = MembershipIndex(client).load_licensed_groups()
        collector = Collector(params['sample_size'], keep_all=query is not None, keep_safe=bool(params['plan_path']))
        records = collector.watch(iter_records(client, catalog, index, users=params['users'], group_ids=group_ids,
                                               sku_ids=sku_ids, trusted_groups=trusted))
        report = None
        if params['report_path']:
            report = write_report(params['report_path'], records, report_format=params['report_format'],
                                  plan_name_lookup=_plan_names(catalog))
        else:
            for dummy in records:
                pass
    except LicensingInputError as exc:
        module.fail_json(msg=str(exc))
    except RecordsError as exc:
        module.fail_json(msg=str(exc))
    except GraphError as exc:
        module.fail_from_graph_error(exc, msg='Cannot read the license assignments')

    result = dict(changed=False, summary=collector.summary, records=collector.sample, records_total=collector.total,
                  report_path=report['path'] if report else None, plan_path=None, batches=0)
    if params['plan_path']:
        try:
            rows = assign_batches(collector.safe, canary_size=params['canary_size'], batch_size=params['batch_size'])
            written = write_plan(params['plan_path'], rows, meta={
                'tenant_id': tenant_guid, 'trusted_groups': trusted, 'canary_size': params['canary_size'],
                'batch_size': params['batch_size'], 'scope_summary': collector.summary})
        except (RecordsError, LicensingInputError) as exc:
            module.fail_json(msg=str(exc))
        result['plan_path'] = written['path']
        result['batches'] = written['batches']
        result['batch_sizes'] = dict((str(batch), count) for batch, count in batch_counts({'rows': rows}).items())
    if query is not None:
        result['query_result'] = query.search(collector.all_records)
    module.exit_json(**result)


def _plan_names(catalog):
    """``{plan id: name}`` across the tenant's SKUs, for the report."""
    names = {}
    for sku_id in catalog.sku_ids():
        for plan_id, (name, dummy) in catalog.get(sku_id)['plans'].items():
            names[plan_id] = name
    return names


if __name__ == '__main__':
    main()
