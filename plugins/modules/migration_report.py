#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: migration_report
short_description: Write the report of a migration run (HTML, JSON, CSV) for the change record
version_added: 0.2.0
description:
  - Reads what a run of the C(entraops.licensing.migrate_direct_to_group) role left on disk (the plan, the journal,
    the assignment-path reports taken before and after the removals and the phase result files) and writes one
    self-contained HTML page (inline CSS and SVG charts, no external asset), plus the same facts as JSON and,
    one row per user and SKU, as CSV.
  - The page shows what was planned, what each phase and batch did, counts per verdict, the users skipped and why,
    failures, the journal and rollback script paths, per batch migrated / skipped / failed and, before and after,
    how many users held the licence directly only, both directly and inherited, or inherited only.
  - Works offline; it does not talk to Microsoft Graph, so it takes no connection options and is not part of the
    C(entraops.licensing.graph) action group.
author:
  - entraops contributors (@entraops)
options:
  title:
    description: Title of the report (for example the tenant and the change number).
    type: str
    default: Entra ID licensing migration
  plan_path:
    description: The plan written by M(entraops.licensing.license_assignment_info) (O(entraops.licensing.license_assignment_info#module:plan_path)).
    type: path
  journal_path:
    description: The journal of M(entraops.licensing.direct_license); its outcomes say which users were migrated, failed or restored.
    type: path
  before_report_path:
    description: A JSON report of M(entraops.licensing.license_assignment_info) taken before the removals.
    type: path
  after_report_path:
    description:
      - A JSON report of M(entraops.licensing.license_assignment_info) taken after the removals.
      - The per-user outcomes come from it (or from O(before_report_path) when it is not given).
    type: path
  phase_results:
    description:
      - JSON files, each an object with at least C(phase) (and C(batch), C(status), C(time), C(detail), C(blockers) when known).
      - A file may also hold a list of such objects (the role's remove phase writes one per batch into one file per run).
    type: list
    elements: path
    default: []
  rollback_script_path:
    description: The PowerShell rollback script to name in the report.
    type: path
  html_path:
    description: Where to write the HTML page.
    type: path
  json_path:
    description: Where to write the JSON document.
    type: path
  csv_path:
    description: Where to write the CSV file (UTF-8 with BOM, one row per user and SKU, formula-like cells neutralised).
    type: path
  max_rows:
    description: Rows shown per user table in the HTML page; the JSON and CSV files hold them all.
    type: int
    default: 500
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The report files are written in check mode too (they are evidence of the dry run); the module never changes the tenant.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Writing the files does not make the task changed, as for the C(*_info) modules of this collection.
  - The reports, plan and journal are read one record at a time and the user rows are spooled to a temporary file beside
    the first output, so memory does not grow with the number of users (100,000 users, 98 MB peak in the collection's benchmark).
seealso:
  - module: entraops.licensing.license_assignment_info
  - module: entraops.licensing.direct_license
"""

EXAMPLES = r"""
- name: Write the report of the run
  entraops.licensing.migration_report:
    title: "Contoso licensing migration (CHG0042)"
    plan_path: /var/lib/migration/contoso-plan.json
    journal_path: /var/lib/migration/contoso-journal.jsonl
    before_report_path: /var/lib/migration/contoso-verify.json
    after_report_path: /var/lib/migration/contoso-final.json
    phase_results: "{{ query('ansible.builtin.fileglob', '/var/lib/migration/contoso-phase-*.json') }}"
    html_path: /var/lib/migration/contoso-report.html
    json_path: /var/lib/migration/contoso-report.json
    csv_path: /var/lib/migration/contoso-report.csv
"""

RETURN = r"""
totals:
  description: Users (per SKU) by outcome.
  returned: always
  type: dict
  sample: {"migrated": 990, "already_inherited": 0, "pending": 0, "skipped": 10, "failed": 0, "restored": 0, "unknown": 0}
per_sku:
  description:
    - The same outcomes per SKU part number (users holding several SKUs count once per SKU); the HTML report shows them
      in a "Per SKU" table when the report holds more than one SKU.
  returned: always
  type: dict
  sample: {"EMS": {"migrated": 480, "already_inherited": 0, "pending": 0, "skipped": 3, "failed": 0, "restored": 0, "unknown": 0}}
migrated_with_more_plans:
  description: Migrated users whose direct assignment disabled plans that the group enables (they gained those services).
  returned: always
  type: int
  sample: 97
skipped_by_verdict:
  description: Skipped users counted by verdict.
  returned: always
  type: dict
  sample: {"not_direct_member": 5}
assignment_paths:
  description: Counts of C(direct_only), C(both) and C(inherited_only) C(before) and C(after) (null when that report was not given).
  returned: always
  type: dict
  sample: {"before": {"direct_only": 1000, "both": 0, "inherited_only": 0}, "after": {"direct_only": 5, "both": 5, "inherited_only": 990}}
batches:
  description: Per plan batch, C(batch), C(planned), C(migrated), C(skipped), C(failed), C(pending) and C(runs).
  returned: always
  type: list
  elements: dict
  sample: [{"batch": 0, "planned": 10, "migrated": 10, "skipped": 0, "failed": 0, "pending": 0, "runs": 1}]
blockers:
  description: Blockers recorded by the phases (for example by preflight).
  returned: always
  type: list
  elements: str
  sample: []
failures:
  description: Up to 100 users whose removal failed or whose outcome is unknown.
  returned: always
  type: list
  elements: dict
  sample: []
html_path:
  description: Absolute path of the HTML page, or null.
  returned: always
  type: str
  sample: /var/lib/migration/contoso-report.html
json_path:
  description: Absolute path of the JSON document, or null.
  returned: always
  type: str
  sample: /var/lib/migration/contoso-report.json
csv_path:
  description: Absolute path of the CSV file, or null.
  returned: always
  type: str
  sample: /var/lib/migration/contoso-report.csv
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraops.licensing.plugins.module_utils.migration_report import run_migration_report


def argument_spec():
    return dict(
        title=dict(type="str", default="Entra ID licensing migration"),
        plan_path=dict(type="path"),
        journal_path=dict(type="path"),
        before_report_path=dict(type="path"),
        after_report_path=dict(type="path"),
        phase_results=dict(type="list", elements="path", default=[]),
        rollback_script_path=dict(type="path"),
        html_path=dict(type="path"),
        json_path=dict(type="path"),
        csv_path=dict(type="path"),
        max_rows=dict(type="int", default=500),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_migration_report(module)


if __name__ == "__main__":
    main()
