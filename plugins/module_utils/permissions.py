# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which Microsoft Graph application permissions each kind of work of the collection needs.

Each need is the least privileged permission Microsoft documents for the calls, with the higher
permissions Microsoft documents as also accepted (docs/docsite/rst/permissions.rst). Compared with the
token's ``roles`` claim (GraphClient.granted_permissions) so a preflight can name what is missing
before anything is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# operation -> ((needed permission, (permissions that also grant it, ...)), ...)
OPERATION_PERMISSIONS = {
    # users, their licenses and memberships; groups and their members; SKUs and the tenant
    "read": (
        ("User.Read.All", ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
        ("GroupMember.Read.All", ("GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
        ("Organization.Read.All", ("Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")),
    ),
    # create the licensing group, add direct members
    "group": (
        ("Group.Create", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
        ("GroupMember.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
    ),
    # POST /groups/{id}/assignLicense
    "assign": (("LicenseAssignment.ReadWrite.All", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),),
    # POST /users/{id}/assignLicense
    "remove": (("LicenseAssignment.ReadWrite.All", ("User.ReadWrite.All", "Directory.ReadWrite.All")),),
    # POST /users/{id}/assignLicense, and PATCH /users/{id} to give a user without one the tenant's usage location
    "restore": (
        ("LicenseAssignment.ReadWrite.All", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
        ("User.ReadWrite.All", ("Directory.ReadWrite.All",)),
    ),
}
OPERATIONS = tuple(sorted(OPERATION_PERMISSIONS))


def missing_permissions(granted, operations):
    """The needs of ``operations`` that ``granted`` (permission names) does not meet, in a stable order.

    Each is a dict: ``operation``, ``permission`` (the least privileged one) and ``accepted`` (every
    permission that would do). Raises ValueError naming an unknown operation.
    """
    held = set(permission.lower() for permission in granted or ())
    missing = []
    for operation in operations or ():
        if operation not in OPERATION_PERMISSIONS:
            raise ValueError("%r is not an operation of this collection: expected one of %s" % (operation, ", ".join(OPERATIONS)))
        for permission, higher in OPERATION_PERMISSIONS[operation]:
            accepted = (permission,) + tuple(higher)
            if not held & set(name.lower() for name in accepted):
                missing.append({"operation": operation, "permission": permission, "accepted": list(accepted)})
    return missing
