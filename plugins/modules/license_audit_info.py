#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: license_audit_info
short_description: Read the license evidence of the Microsoft Entra directory audit log
version_added: 0.2.0
description:
  - Reads the directory audit log (C(GET /auditLogs/directoryAudits)) for a time window and returns the license
    evidence Microsoft's migration procedure asks to check beside the groups' processing state.
  - Per group, the C(Set group license) changes and the C(Start applying group based license to users) and
    C(Finish applying group based license to users) events, with the Finish counts (users assigned, users failed).
  - Per user, the C(Change user license) events, split by writer - group-based licensing (either spelling Microsoft
    documents for it, V(Microsoft Azure AD Group-Based Licensing) or V(Microsoft Entra group-Based Licensing)), this
    collection's application (O(client_id) and O(own_app_ids)), or another writer named by application id and display
    name or user principal, which is how an older licensing script shows itself.
  - Stays within the audit log's own limit of 5 requests per 10 seconds per application and tenant (it waits for it,
    and honours C(Retry-After)); sends one filtered query per activity, limited to the window, in pages of 999, and
    at most O(max_requests) requests.
author:
  - entraops contributors (@entraops)
options:
  since:
    description:
      - Start of the window, as an ISO 8601 date and time (V(2026-03-01T08:00:00Z); without an offset it is UTC) or as
        a duration before now (V(90m), V(24h), V(7d)).
      - When it starts before what the audit log keeps (O(retention_days)), the result says so in RV(window.complete)
        and RV(window.message) and a warning; the events still kept are returned.
      - Required unless O(reading_path) is given; then it defaults to the earliest removal that came back.
    type: str
  until:
    description:
      - End of the window, in the same forms as O(since). Defaults to now.
    type: str
  groups:
    description:
      - Groups to report, by object id or display name. Only the group activities are read when O(users) is not set.
      - When neither O(groups) nor O(users) is set, every group and user with license activity in the window is reported.
    type: list
    elements: str
  users:
    description:
      - Users to report, by object id or user principal name. Only C(Change user license) is read when O(groups) is not set.
    type: list
    elements: str
  journal_path:
    description:
      - The journal of M(entraops.licensing.direct_license). With O(reading_path), the direct assignments whose latest
        operation there is a successful removal and that the reading shows direct again are returned in RV(readded), each
        with the writer the audit log names (the newest C(Change user license) event after the removal by a writer other
        than group-based licensing and this collection).
      - A put-back by this collection (a restore, a rollback) cancels the removal.
    type: path
  reading_path:
    description:
      - A fresh JSON report of M(entraops.licensing.license_assignment_info) (its O(entraops.licensing.license_assignment_info#module:report_path))
        to compare O(journal_path) and O(baseline_path) with. Needs O(journal_path).
      - When nothing came back and neither O(groups) nor O(users) is given, the audit log is not read at all.
    type: path
  baseline_path:
    description:
      - The JSON report of M(entraops.licensing.license_assignment_info) written with the plan (the role's C(<host>-baseline.json)).
        With O(reading_path), the direct assignments of the reading that the baseline did not hold directly (users licensed
        directly after the plan was made, the joiners of a legacy script) are returned in RV(joiners_not_in_plan).
        They are only reported; no module removes a direct assignment that is not in an approved plan.
    type: path
  own_app_ids:
    description:
      - Further application (client) ids whose changes count as this collection's, besides O(client_id) (or, with
        O(access_token), the token's C(appid) claim); for example the app of an earlier run with other credentials.
    type: list
    elements: str
  retention_days:
    description:
      - How many days the tenant keeps directory audit logs (30 with Microsoft Entra ID P1 or P2, 7 on the free tier).
        Used to say whether the window is complete.
    type: int
    default: 30
  max_requests:
    description:
      - Most requests to send. At the audit log's rate of 5 per 10 seconds, 60 requests take about two minutes.
        A read stopped by it returns what it read, with RV(window.read_complete) false and a warning.
    type: int
    default: 60
  fail_on_forbidden:
    description:
      - When the application lacks the audit permissions (C(403)), fail (V(true)) or return RV(readable) false with a
        warning (V(false)), so a play can go on without the audit evidence.
    type: bool
    default: true
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - entraops.licensing.graph.info_module
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(AuditLog.Read.All) and C(Directory.Read.All) (both).
  - Microsoft does not say which spelling of the group-based licensing actor real logs carry today; both are accepted,
    matched without regard to case on C(group-based licensing).
  - Audit events can arrive in the log some minutes after the change; a window that ends now may miss the newest ones.
seealso:
  - module: entraops.licensing.license_processing_wait
  - name: List directoryAudits (Microsoft Graph)
    description: The Graph API this module reads.
    link: https://learn.microsoft.com/graph/api/directoryaudit-list
"""

EXAMPLES = r"""
- name: Second source beside licenseProcessingState - the Finish events of the licensing group since the run started
  entraops.licensing.license_audit_info:
    since: "{{ run_started }}"
    groups: ["{{ licensing_group_id }}"]
    fail_on_forbidden: false
  register: audit

- name: Show the counts of the last Finish event
  ansible.builtin.debug:
    msg: "{{ audit.groups[0].last_finish.users_assigned }} assigned, {{ audit.groups[0].last_finish.users_failed }} failed"
  when: audit.readable and audit.groups[0].last_finish

- name: Who else changed licenses in the last 7 days (the legacy script shows up here)
  entraops.licensing.license_audit_info:
    since: 7d
  register: week

- name: List the other writers
  ansible.builtin.debug:
    msg: "{{ week.other_writers | map(attribute='display_name') | list }}"

- name: The license changes of two users, with the app of an earlier run counted as this collection's
  entraops.licensing.license_audit_info:
    since: "2026-03-01T00:00:00Z"
    until: "2026-03-08T00:00:00Z"
    users: [adele@contoso.com, 8f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f]
    own_app_ids: [0a1b2c3d-1111-4222-8333-444455556666]
"""

RETURN = r"""
readable:
  description: Whether the audit log could be read; false only with O(fail_on_forbidden=false) when the permissions are missing.
  returned: always
  type: bool
message:
  description: Why nothing was read, when RV(readable) is false.
  returned: when RV(readable) is false
  type: str
window:
  description: The window read and whether the answer covers it; empty when the audit log was not read (nothing came back, see O(reading_path)).
  returned: always
  type: dict
  contains:
    since:
      description: Start of the window (UTC).
      type: str
      sample: "2026-03-01T08:00:00Z"
    until:
      description: End of the window (UTC).
      type: str
      sample: "2026-03-01T10:00:00Z"
    retention_days:
      description: O(retention_days).
      type: int
      sample: 30
    kept_from:
      description: The oldest time the audit log still keeps (now minus O(retention_days)).
      type: str
      sample: "2026-02-01T10:00:00Z"
    complete:
      description: False when the window starts before RV(window.kept_from).
      type: bool
    message:
      description: What part of the window is gone, when RV(window.complete) is false.
      type: str
      returned: when RV(window.complete) is false
    open_end:
      description: True when O(until) is not set; the filters then have no upper bound (events logged while reading are included).
      type: bool
      returned: when O(until) is not set
    read_complete:
      description: False when O(max_requests) stopped the read.
      type: bool
      returned: when RV(readable) is true
groups:
  description: Per group, its license activity in the window, sorted by display name.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The group's object id (empty when asked for by a name no event carries).
      type: str
    display_name:
      description: The group's display name as the audit event gives it.
      type: str
    set_group_license:
      description:
        - The C(Set group license) events, oldest first, each with C(time), C(id), C(result), C(initiated_by)
          (as in RV(users[].changes)), C(old_value) and C(new_value).
      type: list
      elements: dict
    processing:
      description:
        - The Start and Finish events, oldest first, each with C(activity) (V(start) or V(finish)), C(time), C(id),
          C(result), C(initiated_by), and for Finish the counts.
      type: list
      elements: dict
    finish:
      description:
        - The Finish events, oldest first, each with C(time), C(id), C(initiated_by), C(result) (Microsoft's text),
          C(users_assigned) and C(users_failed) (null when the text gives no counts).
      type: list
      elements: dict
    last_finish:
      description: The newest Finish event, or null.
      type: dict
finish_events:
  description:
    - Every Finish event of RV(groups) as one row, oldest first, with C(group_id), C(group) (display name), C(time),
      C(users_assigned), C(users_failed) and C(actor) (the display name of the writer, group-based licensing).
  returned: always
  type: list
  elements: dict
  sample: [{group_id: 0b6a2f4e-5c1d-4e8f-9a7b-3c2d1e0f9a8b, group: lic-e3, time: "2026-03-01T09:12:44.120Z", users_assigned: 1200, users_failed: 0,
            actor: Microsoft Entra group-Based Licensing}]
users:
  description: Per user, the C(Change user license) events in the window, sorted by user principal name.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The user's object id.
      type: str
    user_principal_name:
      description: The user principal name as the audit event gives it.
      type: str
    changes:
      description:
        - The events, oldest first, each with C(time), C(id), C(result) and C(initiated_by) -
          C(kind) (V(group_licensing), V(this_collection) or V(other)), C(app_id), C(display_name), C(user_id), C(user_principal_name).
      type: list
      elements: dict
    by_writer:
      description: How many of the events each kind of writer made.
      type: dict
      sample: {group_licensing: 2, this_collection: 1, other: 1}
    other_writers:
      description: The other writers of this user's licenses, each with C(app_id), C(display_name), C(user_id), C(user_principal_name).
      type: list
      elements: dict
other_writers:
  description:
    - Every writer other than group-based licensing and this collection, with C(app_id), C(display_name), C(user_id),
      C(user_principal_name), C(users) and C(events), most events first.
  returned: always
  type: list
  elements: dict
  sample: [{app_id: 3c1d8a52-0000-4000-8000-000000000001, display_name: Legacy licensing script, user_id: null,
            user_principal_name: null, users: 12, events: 14}]
totals:
  description:
    - C(set_group_license), C(finish_events), C(users_assigned), C(users_failed) (sums over the Finish events) and
      C(user_changes) per writer kind.
  returned: always
  type: dict
readded:
  description:
    - With O(reading_path) and O(journal_path), the direct assignments this migration removed that are direct again, oldest
      removal first, each with C(user_id), C(user_principal_name), C(sku_id), C(sku_part_number), C(batch), C(removed_at)
      (when the removal's result was journaled), C(sent_at) (when it was about to be sent; the writer named is the newest
      other writer after it), C(disabled_plans_now), C(writer) (as C(initiated_by) in RV(users[].changes), or null), C(writer_known), C(writer_label)
      (as in RV(readded_writers)) and C(written_at).
  returned: when O(reading_path) is given
  type: list
  elements: dict
readded_writers:
  description:
    - How many of RV(readded) each writer put back, by a label (display name and app id, or user principal;
      V(unknown ...) when the audit log does not say).
  returned: when O(reading_path) is given
  type: dict
  sample: {"Legacy licensing script (app 3c1d8a52-6b8e-4f0e-9d7a-2f1e5b7c9a01)": 4}
joiners_not_in_plan:
  description:
    - With O(baseline_path), the first 1000 direct assignments of the reading that the baseline did not hold directly, with C(user_id),
      C(user_principal_name), C(sku_id), C(sku_part_number) and C(inherited) (whether a group copy covers the SKU too).
  returned: when O(reading_path) is given
  type: list
  elements: dict
joiners_not_in_plan_total:
  description: How many direct assignments of the reading the baseline did not hold directly (0 without O(baseline_path)).
  returned: when O(reading_path) is given
  type: int
direct_only_no_group:
  description:
    - With O(reading_path), the first 1000 direct assignments of the reading without any group copy of the SKU that the
      baseline did not show inherited either (direct-only users the licensing groups miss), with C(user_id),
      C(user_principal_name), C(sku_id) and C(sku_part_number).
  returned: when O(reading_path) is given
  type: list
  elements: dict
direct_only_no_group_total:
  description: How many such direct assignments the reading holds.
  returned: when O(reading_path) is given
  type: int
lost_group_kept_direct:
  description:
    - With O(reading_path) and O(baseline_path), the first 1000 direct assignments without any group copy now that the
      baseline showed inherited (the user lost the group membership and still holds the direct copy), shaped as
      RV(direct_only_no_group).
  returned: when O(reading_path) is given
  type: list
  elements: dict
lost_group_kept_direct_total:
  description: How many such direct assignments the reading holds.
  returned: when O(reading_path) is given
  type: int
requests:
  description: Audit log requests sent (pages read).
  returned: always
  type: int
events_read:
  description: Events read before filtering by target.
  returned: when RV(readable) is true
  type: int
graph:
  description: The client's request counters (C(requests), C(retries), C(throttled), C(seconds_paced), C(seconds_waited), ...).
  returned: when RV(readable) is true
  type: dict
"""

from ansible_collections.entraops.licensing.plugins.module_utils.audit_reader import run_license_audit_info
from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule


def main():
    module = GraphModule(
        argument_spec=dict(
            since=dict(type="str"),
            journal_path=dict(type="path"),
            reading_path=dict(type="path"),
            baseline_path=dict(type="path"),
            until=dict(type="str"),
            groups=dict(type="list", elements="str"),
            users=dict(type="list", elements="str"),
            own_app_ids=dict(type="list", elements="str"),
            retention_days=dict(type="int", default=30),
            max_requests=dict(type="int", default=60),
            fail_on_forbidden=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    run_license_audit_info(module)


if __name__ == "__main__":
    main()
