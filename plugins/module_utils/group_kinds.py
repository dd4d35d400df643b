# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The three kinds of licensing group and what each allows (DESIGN.md section 4), as functions over plain data.

* ``cloud``: a cloud group; its members are written through Graph.
* ``dynamic``: ``groupTypes`` holds ``DynamicMembership``; Entra computes the members from
  ``membershipRule``, asynchronously; Graph refuses member writes (403 Authorization_RequestDenied, per
  Microsoft's troubleshooting article; the collection never sends one).
* ``synced``: ``onPremisesSyncEnabled`` is true; the group is mastered in on-premises Active
  Directory and reaches Entra through Entra Connect; Graph refuses member writes. Members are
  added on-premises (``ad_member_script``), then a sync cycle brings them to Entra.

The kind is decided from the group's properties, before any write (``member_writes_refused``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.powershell import powershell_quote
from ansible_collections.entraops.licensing.plugins.module_utils.reports import atomic_text_file, resolve_output_path

CLOUD = "cloud"
DYNAMIC = "dynamic"
SYNCED = "synced"
KINDS = (CLOUD, DYNAMIC, SYNCED)

# Group properties the kind needs (v1.0, $select).
KIND_GROUP_PROPERTIES = ("groupTypes", "membershipRule", "membershipRuleProcessingState", "onPremisesSyncEnabled")
ONPREM_GROUP_PROPERTIES = ("onPremisesSecurityIdentifier", "onPremisesSamAccountName", "onPremisesDomainName", "onPremisesLastSyncDateTime")
# User properties the on-premises join needs.
ONPREM_USER_PROPERTIES = (
    "id",
    "userPrincipalName",
    "onPremisesSyncEnabled",
    "onPremisesSecurityIdentifier",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
)

# Members per Add-ADGroupMember statement: a failing statement (one unknown account) leaves at most this many out.
AD_CHUNK = 100

REASON_CLOUD_ONLY = (
    "cloud-only user (onPremisesSyncEnabled is not true): an on-premises AD group can only hold on-premises accounts; "
    "license this user through a cloud group or keep the direct assignment"
)
REASON_NO_ONPREM_KEY = "synced user without onPremisesSecurityIdentifier or onPremisesSamAccountName in Graph: the AD account cannot be named"


def is_dynamic(group):
    return any(str(kind).lower() == "dynamicmembership" for kind in (group or {}).get("groupTypes") or [])


def is_synced(group):
    return (group or {}).get("onPremisesSyncEnabled") is True


def group_kind(group):
    """``'dynamic'``, ``'synced'`` or ``'cloud'`` of a Graph group read with KIND_GROUP_PROPERTIES."""
    if is_dynamic(group):
        return DYNAMIC
    if is_synced(group):
        return SYNCED
    return CLOUD


def member_writes_refused(group):
    """Why Graph would refuse to write this group's members (a sentence), or None for a cloud group."""
    kind = group_kind(group)
    if kind == DYNAMIC:
        return "it is a dynamic group: Entra computes its members from its membership rule and refuses member writes"
    if kind == SYNCED:
        return "it is synced from on-premises Active Directory: its members are changed on-premises (Graph refuses member writes)"
    return None


def group_kind_summary(group):
    """``{'kind', 'membership_rule', 'membership_rule_processing_state', 'on_premises_sync_enabled', ...}`` for return values."""
    group = group or {}
    summary = {
        "kind": group_kind(group),
        "membership_rule": group.get("membershipRule"),
        "membership_rule_processing_state": group.get("membershipRuleProcessingState"),
        "on_premises_sync_enabled": group.get("onPremisesSyncEnabled"),
    }
    for key, prop in (
        ("on_premises_security_identifier", "onPremisesSecurityIdentifier"),
        ("on_premises_sam_account_name", "onPremisesSamAccountName"),
        ("on_premises_domain_name", "onPremisesDomainName"),
        ("on_premises_last_sync", "onPremisesLastSyncDateTime"),
    ):
        summary[key] = group.get(prop)
    return summary


def ad_identity(obj):
    """How Add-ADGroupMember names an on-premises object: its SID, else its sAMAccountName, else None."""
    return (obj or {}).get("onPremisesSecurityIdentifier") or (obj or {}).get("onPremisesSamAccountName") or None


def onprem_join(users):
    """Split users (Graph users read with ONPREM_USER_PROPERTIES) for an on-premises group.

    Returns ``(joinable, cannot_join)``: ``joinable`` the users an AD administrator can add (synced,
    with a SID or sAMAccountName), in the given order; ``cannot_join`` ``[{'id', 'user_principal_name',
    'reason'}]`` for the others.
    """
    joinable, cannot_join = [], []
    for user in users:
        if user.get("onPremisesSyncEnabled") is not True:
            reason = REASON_CLOUD_ONLY
        elif ad_identity(user) is None:
            reason = REASON_NO_ONPREM_KEY
        else:
            joinable.append(user)
            continue
        cannot_join.append({"id": user["id"].lower(), "user_principal_name": user.get("userPrincipalName"), "reason": reason})
    return joinable, cannot_join


_AD_HEADER = """<#
.SYNOPSIS
Adds the users that group-based licensing needs to the on-premises group {group_label}.

.DESCRIPTION
Written by the entraops.licensing Ansible collection (module licensing_group) for the AD administrators.
The Entra group {group_name} ({group_id}) is synced from on-premises Active Directory by Entra Connect:
Microsoft Graph refuses changes to its members, so they are made here, then the next sync cycle brings
them to Entra, where the group's licenses reach them.

{count} user(s) in {chunks} statement(s) of at most {chunk} members; users and the group are named by their
on-premises SID (sAMAccountName when Entra knows no SID). Adding a user who is already a member is harmless.

Without -Apply every statement runs with -WhatIf: it shows what it would change and changes nothing.
Run it again with -Apply to change the group.
#>
[CmdletBinding()]
param(
    [switch]$Apply,
    [string]$Server
)

Import-Module ActiveDirectory -ErrorAction Stop

$dryRun = -not $Apply
$target = @{{}}
if ($Server) {{
    $target['Server'] = $Server
}}
$group = {group_identity}
"""

_AD_CHUNK = """
# {first}-{last} of {count}: {labels}
Add-ADGroupMember -Identity $group -Members @({members}) -WhatIf:$dryRun -ErrorAction Stop @target
"""

_AD_FOOTER = """
if ($dryRun) {{
    Write-Host 'Nothing changed (-WhatIf). Run again with -Apply to add {count} user(s) to {group_label}.'
}} else {{
    Write-Host 'Added {count} user(s) to {group_label}; the next Entra Connect sync cycle brings them to Entra.'
}}
"""


def _comment(text):
    return " ".join(str(text).split()).replace("#>", "# >")


def ad_member_script(group, users, chunk=AD_CHUNK):
    """Text of the PowerShell script that adds ``users`` to the on-premises ``group`` (Graph dicts).

    ``group`` needs ``onPremisesSecurityIdentifier`` or ``onPremisesSamAccountName``; every user
    one of them too (``onprem_join`` keeps only such users). No time stamp: the same input writes the
    same script, so a re-run that has nothing new to add changes no file.
    """
    identity = ad_identity(group)
    if identity is None:
        raise ValueError(
            "group %r (%s) is synced but Graph gives neither onPremisesSecurityIdentifier nor onPremisesSamAccountName: "
            "the AD group cannot be named" % (group.get("displayName"), group.get("id"))
        )
    label = "%s%s" % (
        group.get("onPremisesSamAccountName") or group.get("displayName"),
        " (%s)" % group["onPremisesDomainName"] if group.get("onPremisesDomainName") else "",
    )
    chunks = [users[offset : offset + chunk] for offset in range(0, len(users), chunk)]
    parts = [
        _AD_HEADER.format(
            group_label=_comment(label),
            group_name=_comment(group.get("displayName")),
            group_id=_comment(group.get("id")),
            count=len(users),
            chunks=len(chunks),
            chunk=chunk,
            group_identity=powershell_quote(identity),
        )
    ]
    for number, members in enumerate(chunks):
        first = number * chunk + 1
        parts.append(
            _AD_CHUNK.format(
                first=first,
                last=first + len(members) - 1,
                count=len(users),
                labels=_comment(", ".join(user.get("userPrincipalName") or user["id"] for user in members[:5]) + (", ..." if len(members) > 5 else "")),
                members=", ".join(powershell_quote(ad_identity(user)) for user in members),
            )
        )
    parts.append(_AD_FOOTER.format(count=len(users), group_label=powershell_quote(label)[1:-1]))
    return "".join(parts)


def write_ad_member_script(path, text, check_mode=False):
    """Write the AD script at ``path`` (UTF-8 with BOM for Windows PowerShell 5.1, CRLF, atomically).

    Returns ``(absolute path, changed)``: unchanged when the file already holds this text; in check
    mode nothing is written and ``changed`` says whether it would be.
    """
    absolute_path = resolve_output_path(path, "on-premises membership script")
    data = ("\ufeff" + text.replace("\r\n", "\n").replace("\n", "\r\n")).encode("utf-8")
    try:
        with open(absolute_path, "rb") as stream:
            if stream.read() == data:
                return absolute_path, False
    except (IOError, OSError):
        pass
    if not check_mode:
        with atomic_text_file(absolute_path, "on-premises membership script", encoding="utf-8-sig", newline="\r\n") as stream:
            stream.write(text.replace("\r\n", "\n"))
    return absolute_path, True
