#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: tenant_snapshot
short_description: Take a pseudonymised snapshot of the tenant's licensing shape for a rehearsal on the Graph emulator
version_added: 0.3.0
description:
  - Reads, without changing anything in the tenant, what a migration meets, namely the subscribed SKUs with their service plans
    and units, the users that hold licenses with C(assignedLicenses), C(licenseAssignmentStates), usage location and the
    attributes dynamic membership rules test, and the groups that carry licenses or are named in O(groups), with their kind
    (cloud, dynamic with its C(membershipRule), synced from on-premises), license processing state, licenses and direct
    members. Groups nested in those groups come too, with their members, so nesting survives.
  - Writes it to O(path) in the Graph emulator's tenant format (C(emulator/docs/tenant-format.md) in the collection's
    repository), with file mode 0600. C(scripts/rehearse) of the repository starts the emulator on the file and runs the
    migration role against it (C(docs/rehearsal.md)).
  - Direct and group-inherited licenses are told apart from C(licenseAssignmentStates); the states and errors of inherited
    copies are kept in the file. The emulator derives the group licenses again when it loads the file (processing mode
    C(processed)), as if Entra had just finished processing.
  - Pseudonymisation is on by default (O(pseudonymize)) and needs a key the operator keeps (O(pseudonym_key) or
    O(pseudonym_key_path)). User principal names, display names, given names and surnames, mail, mail nicknames, employee ids,
    on-premises account names, SIDs and domains, group names and descriptions and the tenant's name and domain are replaced
    by stable pseudonyms (HMAC-SHA256 with the key), so the same key gives the same pseudonyms and a finding in the
    rehearsal report can be mapped back (O(mapping_path)). All user principal names move to the pseudonymous default domain.
  - With pseudonymisation, the user attributes C(department), C(jobTitle), C(companyName), C(city) and the on-premises
    extension attributes are copied only when a membership rule of a group in the snapshot tests them (the rule must
    give the same members); C(accountEnabled), C(usageLocation), C(country), C(userType) and C(onPremisesSyncEnabled) are
    always copied. The groups named by display name in O(groups) keep it, because the migration's variables name them so.
  - Memberships are copied as Graph lists them. A dynamic group whose rule tests a property that gets a pseudonym
    (C(user.userPrincipalName), C(user.mail), C(user.employeeId), ...) would select other users if the rehearsal
    evaluated the rule again; the task warns about each such rule.
  - Applications and their secrets are never read or written; the rehearsal emulator makes its own application.
  - Users are read page by page (999 per page) and written as they arrive; memory does not grow with the number of users
    beyond their ids. Each group's first page of members is read through C($batch).
  - When users are left out (O(skus) limits them), each SKU's enabled units are reduced by the units the left-out users
    consume, so the snapshot has the tenant's free units.
author:
  - entraops contributors (@entraops)
options:
  path:
    description:
      - Where to write the snapshot (JSON). Its folder must exist. The file is written to a temporary file and moved into place,
        with mode 0600 whatever the umask.
    type: path
    required: true
  skus:
    description:
      - Export the users holding one of these SKUs (GUID or part number) in any way, plus the user members of the groups in
        the snapshot.
      - When not set, every user holding any license (or in error for one) and every user member of those groups is exported.
      - A value that names no subscribed SKU fails the task before anything is written.
    type: list
    elements: str
  all_users:
    description:
      - Export every user of the tenant, licensed or not.
    type: bool
    default: false
  groups:
    description:
      - Groups to export besides those that carry licenses, each as display name or object id, for example the group the
        migration will license. A group named by display name keeps it when names are pseudonymised (the migration's
        variables name it so); a group named by object id gets a pseudonym like every other group.
      - A value that names no group, or a name that several groups carry, fails the task before anything is written.
    type: list
    elements: str
  pseudonymize:
    description:
      - Replace every name that identifies a person, a group or the tenant by a pseudonym (see the description).
      - V(false) copies names as they are; the file then identifies people.
    type: bool
    default: true
  pseudonym_key:
    description:
      - The secret key of the pseudonyms, at least 16 characters. Keep it; with it a pseudonym can be recomputed from a name.
      - Exactly one of O(pseudonym_key) and O(pseudonym_key_path) is needed when O(pseudonymize=true).
    type: str
  pseudonym_key_path:
    description:
      - A file holding the key (surrounding whitespace ignored).
    type: path
  remap_ids:
    description:
      - Replace the object ids of the tenant, users and groups by GUIDs derived from the key, consistently everywhere
        (memberships, inherited licenses). SKU and service plan ids are Microsoft's and are kept.
      - Only with O(pseudonymize=true).
    type: bool
    default: false
  mapping_path:
    description:
      - Also write the mapping pseudonym -> original (JSON, mode 0600) to this file, separate from the snapshot, to map a
        finding in the rehearsal report back. Keep it where the tenant's data may be; do not ship it with the snapshot.
      - Only with O(pseudonymize=true).
    type: path
extends_documentation_fragment:
  - entraops.licensing.graph
  - entraops.licensing.graph.action_group
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the tenant is read and the counts are returned, but no file is written.
  diff_mode:
    support: N/A
    details: The module changes nothing in the tenant.
  platform:
    platforms: all
notes:
  - Needs the Microsoft Graph application permissions C(Organization.Read.All) (the tenant and its SKUs), C(User.Read.All)
    (users and their licenses) and C(GroupMember.Read.All) (groups and their members), the least privileged ones;
    C(Directory.Read.All) also works. Nothing is written to Graph.
  - Graph does not expose which service plans exclude or need each other; the snapshot carries the plan dependencies the
    collection's licensing reference names (Workplace Analytics needs Exchange Online, Audio Conferencing needs Skype for
    Business Online) for the SKUs it holds.
  - The file is written with mode 0600. It holds licensing data of every exported user; with O(pseudonymize=false) it also
    holds their names.
seealso:
  - module: entraops.licensing.license_assignment_info
"""

EXAMPLES = r"""
- name: Snapshot the E3 holders and the licensing group, pseudonymised
  entraops.licensing.tenant_snapshot:
    path: /secure/contoso-snapshot.json
    skus: [ENTERPRISEPACK]
    groups: [GBL - Office 365 E3]
    pseudonym_key_path: /secure/pseudonym.key
    mapping_path: /secure/contoso-mapping.json
  register: snapshot

- name: Snapshot every licensed user with the real names (the file identifies people)
  entraops.licensing.tenant_snapshot:
    path: /secure/contoso-named.json
    pseudonymize: false
"""

RETURN = r"""
path:
  description: The snapshot file (absolute path).
  returned: always
  type: str
  sample: /secure/contoso-snapshot.json
mapping_path:
  description: The mapping file, or null when none was asked for.
  returned: always
  type: str
pseudonymized:
  description: Whether names were replaced by pseudonyms.
  returned: always
  type: bool
ids_remapped:
  description: Whether object ids were replaced (O(remap_ids)).
  returned: always
  type: bool
users:
  description: Number of users in the snapshot.
  returned: always
  type: int
  sample: 1000
groups:
  description: Number of groups in the snapshot (licensed, named and nested).
  returned: always
  type: int
  sample: 2
group_kinds:
  description: Groups in the snapshot by kind, C(cloud), C(dynamic) (C(DynamicMembership)) and C(synced) (C(onPremisesSyncEnabled)).
  returned: always
  type: dict
  sample: {cloud: 2, dynamic: 0, synced: 0}
skus:
  description: Number of subscribed SKUs in the snapshot.
  returned: always
  type: int
members_left_out:
  description: Group memberships of users that are not in the snapshot (only when O(skus) limits the users and a member is neither holder nor read).
  returned: always
  type: int
other_members:
  description: Members that are neither users nor groups (devices, contacts, service principals); the emulator has none, they are left out.
  returned: always
  type: int
bytes:
  description: Size of the snapshot in characters.
  returned: always
  type: int
graph_requests:
  description: Request counters of this run (requests, retries, throttled, ...).
  returned: always
  type: dict
"""

from ansible_collections.entraops.licensing.plugins.module_utils.module import GraphModule
from ansible_collections.entraops.licensing.plugins.module_utils.snapshot_run import run_tenant_snapshot


def main():
    module = GraphModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            skus=dict(type="list", elements="str"),
            all_users=dict(type="bool", default=False),
            groups=dict(type="list", elements="str"),
            pseudonymize=dict(type="bool", default=True),
            pseudonym_key=dict(type="str", no_log=True),
            pseudonym_key_path=dict(type="path", no_log=False),
            remap_ids=dict(type="bool", default=False),
            mapping_path=dict(type="path"),
        ),
        supports_check_mode=True,
        mutually_exclusive=[["pseudonym_key", "pseudonym_key_path"]],
    )
    run_tenant_snapshot(module)


if __name__ == "__main__":
    main()
