#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: direct_license
short_description: Remove direct license assignments that group-based licensing fully covers, or put them back from a journal
version_added: 0.2.0
description:
  - With O(state=absent), removes users' direct license assignments, but only where the collection's safety rule holds on a
    fresh read taken immediately before the write (a plan file is never trusted on its own). The rule requires that healthy inheritance
    from groups the user is a direct member of enables every service plan the direct assignment enables.
  - Each removal is journaled (an C(intent) line fsynced before the write, a C(result) line after), sent through C($batch),
    and followed by a re-read. If the user then lacks any plan they had before, the direct assignment is put back at once
    with the same disabled plans and the row is reported in RV(failures).
  - A write whose outcome is unknown (timeout, dropped connection, 5xx) is never re-sent blindly; the re-read decides.
    Re-running the same task resumes; rows already done are found on the fresh read and skipped.
  - With O(state=present), puts back what a journal says was removed (O(restore_from)), the direct assignments of a plan's
    rows with the disabled plans the plan recorded (O(plan_path), for when the journal is lost), or the direct assignments given by
    O(users), O(skus) and O(disabled_plans). Assignments already in place are left alone.
  - After every run that writes, a Microsoft Graph PowerShell rollback script is (re)written beside the journal.
author:
  - entraops contributors (@entraops)
options:
  state:
    description:
      - V(absent) removes direct assignments where the rule allows it; V(present) restores them.
    type: str
    choices: [absent, present]
    default: absent
  plan_path:
    description:
      - A plan written by M(entraops.licensing.license_assignment_info). Only its V(safe_to_remove) rows are considered,
        and each is re-checked before the write. Mutually exclusive with O(users) and O(restore_from).
      - A plan that does not exist fails the task before any call to Microsoft Graph, naming the path (and the approved
        fingerprint when O(plan_fingerprint) is set); a new plan is never made in its place.
      - With O(state=absent) and O(batches) whose first batch comes after earlier batches of the plan (batch 1 after the canary),
        the journal of those earlier batches must exist at O(journal_path). When it does not (a container without the volume
        that holds it, a wrong path), the task fails before any call to Microsoft Graph instead of starting an empty journal.
        A run that includes the plan's first batch starts a new journal; when it finds rows of the plan already migrated, it warns
        that their removals are in no journal at that path. Not checked in check mode, which writes no journal.
      - With O(state=present), puts back the direct assignment of every V(safe_to_remove) row of O(batches) (all batches when not
        set) whose user lacks it, with the disabled plans the plan recorded for it (C(direct_disabled_plans)), the restore when
        the journal is lost. Only the plan's users are read and written; rows found in place are skipped and not journaled.
        The plan cannot tell this collection's removals from removals made by others since it was written; run it in check
        mode first to see the list.
    type: path
  batches:
    description:
      - Plan batch numbers to run (V([0]) for the canary), or to put back with O(state=present). All batches when not set.
        Only with O(plan_path).
      - A number the plan does not hold fails the task before any write (a typo must not pass silently), except in a plan with
        no batch at all (nothing was safe to remove when it was written), which is nothing to do.
    type: list
    elements: int
  plan_fingerprint:
    description:
      - The fingerprint of the plan approved in the change record, as M(entraops.licensing.license_assignment_info) returned it
        (RV(entraops.licensing.license_assignment_info#module:plan_fingerprint)) and printed it in the plan's C(.planned.ps1) script.
      - The plan at O(plan_path) is fingerprinted as it is read; a plan whose content differs (a row edited, added or removed, a
        batch number changed, regenerated, another tenant's or other trusted groups) fails the task naming both fingerprints,
        before any call to Microsoft Graph.
      - V(sha256:) followed by 64 hexadecimal digits; the prefix may be left out and case does not matter. Only with O(plan_path)
        (either state).
    type: str
  users:
    description:
      - Users (object id or user principal name) to act on, with O(skus). Every user is combined with every SKU.
    type: list
    elements: str
  skus:
    description:
      - SKUs (GUID or part number) to act on, with O(users). A SKU the tenant does not subscribe to fails the task before any write.
    type: list
    elements: str
  disabled_plans:
    description:
      - For a manual restore (O(state=present) with O(users) and O(skus)), the plans (GUID or name) to leave disabled.
    type: list
    elements: str
    default: []
  trusted_groups:
    description:
      - When set, only inheritance from these groups (ids or display names) counts as coverage.
      - With O(plan_path) and this option not set, the trusted groups recorded in the plan apply.
    type: list
    elements: str
  journal_path:
    description:
      - The journal (JSON Lines) to append to. Required unless the task runs in check mode.
      - With O(restore_from) it defaults to the journal restored from, so that a second restore finds nothing left to do.
      - With O(state=present) and O(plan_path) (the journal of the removals is lost), a new journal for the restores.
    type: path
  restore_from:
    description:
      - With O(state=present), a journal whose removals are to be put back (same disabled plans). Removals whose outcome
        was unknown, or whose run was killed, are checked by reading the user first.
    type: path
  allow_service_loss:
    description:
      - Remove even when the inherited copies enable fewer plans than the direct one (the plans lost are reported).
      - Never relaxes the requirement of healthy inheritance from a direct-member group.
    type: bool
    default: false
  restore_usage_location:
    description:
      - What to do when a direct assignment is put back (O(state=present), or at once after a service loss) for a user who
        has no usage location. A direct assignment needs one; group licensing does not (it uses the tenant's country), so
        such users can be migrated and then cannot be restored as they are (Graph answers 400 "invalid usage location").
      - V(tenant) first sets the user's C(usageLocation) to the tenant's country (C(countryLetterCode) of C(GET /organization)),
        the location Entra already applies to them under group licensing, so their services do not change. The journal's
        C(restore_direct) line says so (C(extra.usage_location_set)) before anything is sent. Needs C(User.ReadWrite.All).
      - V(none) leaves users as they are; their restore fails before anything is sent, with the kind V(usage_location_missing).
    type: str
    choices: [tenant, none]
    default: tenant
  max_failures:
    description:
      - Stop, and fail the task, once more than this many rows failed. V(0) stops at the first failure.
      - Rows are written in C($batch) chunks of 10 users at first, doubling after each chunk without a failure up to 50 (and back
        to 10 after one), so the rest of the chunk in which the limit is passed has already
        been sent; no further chunk is.
    type: int
    default: 0
  verify_batches:
    description:
      - With O(plan_path) and O(state=absent), run the batches one after the other, each checked on a fresh reading before the next
        one starts, and stop at the first batch that does not verify. The whole check of a migration window runs in one task (and one
        process); the role C(entraops.licensing.migrate_direct_to_group) runs its remove phase so.
      - Before the first batch and after each one, the assignment paths of every holder of the SKUs are read (as
        M(entraops.licensing.license_assignment_info) reads them) and written to O(verify_batches.reading_path).
      - The run stops before the next batch, failing the task, when more direct assignments this journal removed are direct again
        than O(verify_batches.readd_threshold) (another writer re-licensing; each is named from the audit log when it can be read),
        when a removal took a service away (put back at once, RV(failures[].kind=service_loss)), or when the reading after a batch
        does not verify it (a holder dropped out of the SKUs, an inherited copy fell into error, or a removal does not show as
        inherited only, allowing for the re-adds new since the reading before).
      - RV(batch_results) holds one record per batch run (and one for a stop before the first batch), in the task's result whether
        it succeeds or fails. In check mode the readings are taken, nothing is compared with the journal and nothing stops the run.
    type: dict
    suboptions:
      reading_path:
        description: JSON file each reading is written to (the last one stays), in the format of license_assignment_info's report.
        type: path
        required: true
      skus:
        description:
          - SKUs the readings cover (part numbers or GUIDs). Defaults to the SKUs of the plan's scope; a plan made for users or
            groups without SKUs needs them.
        type: list
        elements: str
      baseline_path:
        description:
          - The reading written with the plan (license_assignment_info's JSON report). Direct assignments a reading shows that the
            baseline does not are joiners since the plan, reported in RV(batch_results[].joiners_not_in_plan) and never removed.
        type: path
      readd_threshold:
        description: How many removed direct assignments may be direct again before the run stops. V(0) stops at the first.
        type: int
        default: 0
      audit_max_requests:
        description:
          - Most audit log requests (C(/auditLogs/directoryAudits), 5 per 10 s) a check that found re-adds may send to name their
            writers. Without C(AuditLog.Read.All) the writers stay unknown, with a warning.
        type: int
        default: 30
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.stateful_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - A plan made for another tenant (its C(tenant_id)) is refused.
  - Needs the Microsoft Graph application permissions C(LicenseAssignment.ReadWrite.All), C(User.Read.All),
    C(GroupMember.Read.All) and C(Organization.Read.All); restoring users without usage location with
    O(restore_usage_location=tenant) also needs C(User.ReadWrite.All) (C(PATCH /users/{id})).
  - Check mode re-reads and classifies every row and reports what would be removed or restored, without writing to Graph or
    to the journal. In check mode RV(removed) and RV(restored) list every row (not the first 100), so the change record can carry
    the exact list of this run after its fresh read; with diff mode, the diff shows each user's enabled plans per SKU before and after.
  - Re-running a task converges. Rows already done are found on the fresh read (or in the journal) and skipped, so a second run
    of the same batches, the same restore or a plan that is done sends no license write and reports C(changed=false).
  - Two runs at once on the same plan or journal (a relaunched job while the first still runs) do not both write. The plan
    file and the journal are locked for the run, and the second run fails before any write, naming the file in use.
  - Memory grows little with the number of rows a run removes (a whole 100,000-row plan in one task peaks at 142 MB), except in check
    and diff mode, which name every row changed.
  - With O(verify_batches), the application also needs C(AuditLog.Read.All) to name who re-added a direct assignment.
seealso:
  - module: entraops.licensing.license_assignment_info
  - module: entraops.licensing.license_audit_info
"""

EXAMPLES = r"""
- name: Canary (batch 0 of the plan)
  entraops.licensing.direct_license:
    plan_path: /var/tmp/migration/plan.json
    batches: [0]
    journal_path: /var/tmp/migration/journal.jsonl
  register: canary

- name: Two batches in today's change window, of the plan the change record approved
  entraops.licensing.direct_license:
    plan_path: /var/tmp/migration/plan.json
    plan_fingerprint: sha256:3f2c9a4e0d6b8c1a7e5f4d3c2b1a09887766554433221100ffeeddccbbaa9988
    batches: [1, 2]
    journal_path: /var/tmp/migration/journal.jsonl
    max_failures: 0

- name: Every batch of the approved plan, each verified on a fresh reading before the next (stops at the first that does not verify)
  entraops.licensing.direct_license:
    plan_path: /var/tmp/migration/plan.json
    plan_fingerprint: sha256:3f2c9a4e0d6b8c1a7e5f4d3c2b1a09887766554433221100ffeeddccbbaa9988
    journal_path: /var/tmp/migration/journal.jsonl
    verify_batches:
      reading_path: /var/tmp/migration/reading.json
      baseline_path: /var/tmp/migration/baseline.json
      skus: [ENTERPRISEPACK]
  register: window

- name: Put back everything the journal says was removed
  entraops.licensing.direct_license:
    state: present
    restore_from: /var/tmp/migration/journal.jsonl

- name: The journal is lost - put back batches 0 and 1 from the approved plan (run it with --check first)
  entraops.licensing.direct_license:
    state: present
    plan_path: /var/tmp/migration/plan.json
    plan_fingerprint: sha256:3f2c9a4e0d6b8c1a7e5f4d3c2b1a09887766554433221100ffeeddccbbaa9988
    batches: [0, 1]
    journal_path: /var/tmp/migration/restore-journal.jsonl

- name: Manual restore of one user's E3 with two plans disabled
  entraops.licensing.direct_license:
    state: present
    users: [adele@contoso.com]
    skus: [ENTERPRISEPACK]
    disabled_plans: [SWAY, YAMMER_ENTERPRISE]
    journal_path: /var/tmp/migration/journal.jsonl
"""

RETURN = r"""
removed:
  description:
    - The direct assignments removed, the first 100. In check mode every one that would be removed in this run, after its fresh read.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: User principal name (or id).
      type: str
    user_id:
      description: User object id.
      type: str
    sku:
      description: SKU part number.
      type: str
    sku_id:
      description: SKU id.
      type: str
    disabled_plans:
      description: The disabledPlans of the removed direct assignment (what a restore puts back).
      type: list
      elements: str
    batch:
      description: Plan batch number, or null.
      type: int
    plans_lost:
      description: Plan names accepted as lost with O(allow_service_loss).
      type: list
      elements: str
    enabled_plans:
      description: Names of the service plans the direct assignment enabled.
      type: list
      elements: str
    inherited_enabled_plans:
      description: Names of the service plans the user's healthy inherited copies enable (what the user keeps).
      type: list
      elements: str
removed_total:
  description: Number of direct assignments removed (or that would be, in check mode).
  returned: always
  type: int
restored:
  description:
    - The direct assignments put back, the first 100 (in check mode, every one that would be), each with C(user), C(user_id), C(sku),
      C(disabled_plans) and C(usage_location_set) (the country given to a user who had no usage location first, or null).
  returned: always
  type: list
  elements: dict
restored_total:
  description: Number of direct assignments put back.
  returned: always
  type: int
skipped_by_verdict:
  description:
    - Rows not written, counted by verdict (V(inherited_only) means already migrated; V(already_present) for restores
      that found the assignment in place; V(not_held) for a user who holds the SKU in no way).
  returned: always
  type: dict
  sample: {inherited_only: 10, plans_would_be_lost: 1}
skipped_sample:
  description: Up to 100 skipped rows with C(user), C(sku), C(verdict), C(plans_lost), C(reason).
  returned: always
  type: list
  elements: dict
failures:
  description:
    - Rows that failed. Decide on RV(failures[].kind), not on the wording of RV(failures[].reason).
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: User principal name (or id).
      type: str
    user_id:
      description: User object id.
      type: str
    sku:
      description: SKU part number (or id).
      type: str
    kind:
      description:
        - V(service_loss) the removal was applied and the fresh read afterwards showed the user without a plan they had;
          the direct assignment was put back at once (the reason says if putting it back failed). A migration stops here.
        - V(graph_error) Graph refused the write (removal or restore) with a definite error; nothing changed.
        - V(outcome_unknown) the write got no definite answer (timeout, dropped connection, 5xx) and the re-read shows it
          not applied; it was not re-sent, and the journal keeps it restorable. Running again retries it.
        - V(usage_location_missing) a restore of a user without usage location with O(restore_usage_location=none) (or a
          tenant without a country); nothing was sent.
      type: str
      choices: [service_loss, graph_error, outcome_unknown, usage_location_missing]
    reason:
      description: What happened, for people (plans lost by name, Graph's error).
      type: str
    status:
      description: HTTP status of the write, when there was one.
      type: int
reconciled:
  description:
    - Writes whose outcome was unknown (this run) or whose run was killed before journaling a result (earlier runs),
      with C(user), C(user_id), C(sku), C(op_id) and C(outcome) (V(applied) or V(not_applied)) as a fresh read showed.
    - Outside check mode, each write an earlier run left pending gets its result line in the journal now
      (C(ok) when applied; a removal not applied stays C(unknown) and restorable, since the killed run's write may still land;
      marked C(reconciled)), so the journal holds no intent without a result.
    - A removal found not applied is removed again in this run if the rule still allows it.
  returned: always
  type: list
  elements: dict
stopped:
  description: True when the run stopped early because failures exceeded O(max_failures).
  returned: always
  type: bool
journal_path:
  description: Absolute path of the journal, or null in check mode without one.
  returned: always
  type: str
rollback_script_path:
  description: The PowerShell rollback script written beside the journal, or null when nothing was written.
  returned: always
  type: str
plan_fingerprint:
  description:
    - The fingerprint of the content of the plan at O(plan_path) as this run read it (equal to O(plan_fingerprint) when that is set).
      The journal's C(run) line records it with the plan's path.
  returned: when O(plan_path) is set
  type: str
  sample: sha256:3f2c9a4e0d6b8c1a7e5f4d3c2b1a09887766554433221100ffeeddccbbaa9988
batch_results:
  description:
    - With O(verify_batches), one record per batch run, in order, also when the task fails. A stop before the first batch (removed
      direct assignments came back since an earlier run) is a record with C(batch) null and C(status=stopped).
  returned: when O(verify_batches) is set
  type: list
  elements: dict
  contains:
    phase:
      description: Always V(remove).
      type: str
    batch:
      description: The batch number, or null for a stop before the first batch.
      type: int
    status:
      description:
        - V(done), V(failed) (rows failed within O(max_failures)), V(dry run) (check mode), or V(stopped) (the batch did not finish
          because of O(max_failures), a Graph error, or re-adds before the first batch).
      type: str
    detail:
      description: One line for people.
      type: str
    removed:
      description: Direct assignments removed in this batch.
      type: int
    skipped_by_verdict:
      description: Rows of this batch not written, by verdict.
      type: dict
    failures:
      description: Rows of this batch that failed, as RV(failures).
      type: list
    reading_after:
      description: Verdict counts of the reading after the batch.
      type: dict
    readded:
      description:
        - The first 50 direct assignments this journal removed that the reading after the batch shows direct again, with
          C(user_principal_name), C(sku_part_number), C(batch), C(removed_at), C(writer_label) and C(written_at).
      type: list
    readded_total:
      description: How many removed direct assignments are direct again.
      type: int
    readded_writers:
      description: "C({writer: count}) of the re-added direct assignments, from the audit log (C(unknown ...) when it was not read)."
      type: dict
    joiners_not_in_plan:
      description: User principal names (the first 1,000) holding a direct assignment the baseline did not show; never removed.
      type: list
    joiners_not_in_plan_total:
      description: How many direct assignments are new since the baseline.
      type: int
    plan_fingerprint:
      description: The plan's content fingerprint.
      type: str
    time:
      description: When the batch's record was made (UTC, ISO 8601).
      type: str
reading_before:
  description: With O(verify_batches), C(summary) (verdict counts) and C(records_total) of the reading before the first batch.
  returned: when O(verify_batches) is set
  type: dict
readings:
  description: With O(verify_batches), how many readings were taken.
  returned: when O(verify_batches) is set
  type: int
"""

from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.removal_runner import run_direct_license


def argument_spec():
    return dict(
        state=dict(type="str", choices=["absent", "present"], default="absent"),
        plan_path=dict(type="path"),
        batches=dict(type="list", elements="int"),
        plan_fingerprint=dict(type="str"),
        users=dict(type="list", elements="str"),
        skus=dict(type="list", elements="str"),
        disabled_plans=dict(type="list", elements="str", default=[]),
        trusted_groups=dict(type="list", elements="str"),
        journal_path=dict(type="path"),
        restore_from=dict(type="path"),
        allow_service_loss=dict(type="bool", default=False),
        restore_usage_location=dict(type="str", choices=["tenant", "none"], default="tenant"),
        max_failures=dict(type="int", default=0),
        verify_batches=dict(
            type="dict",
            options=dict(
                reading_path=dict(type="path", required=True),
                skus=dict(type="list", elements="str"),
                baseline_path=dict(type="path"),
                readd_threshold=dict(type="int", default=0),
                audit_max_requests=dict(type="int", default=30),
            ),
        ),
    )


def main():
    module = GraphModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[["plan_path", "users"], ["restore_from", "users"], ["plan_path", "restore_from"]],
    )
    run_direct_license(module)


if __name__ == "__main__":
    main()
