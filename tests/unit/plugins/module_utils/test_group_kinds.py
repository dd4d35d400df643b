# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Group kinds and the AD administrators' script (pure; the script is checked with tree-sitter-powershell)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import (
    REASON_CLOUD_ONLY,
    REASON_NO_ONPREM_KEY,
    ad_member_script,
    group_kind,
    member_writes_refused,
    onprem_join,
)
from ansible_collections.entraops.licensing.tests.unit.plugins.module_utils.test_powershell_scripts import commands, named, parse

SYNCED_GROUP = {
    "id": "1132b215-826f-42a9-8cfe-1643d19d17fd",
    "displayName": "All users",
    "onPremisesSyncEnabled": True,
    "onPremisesSecurityIdentifier": "S-1-5-21-1004336348-1177238915-682003330-1105",
    "onPremisesSamAccountName": "AllUsers",
    "onPremisesDomainName": "contoso.local",
}


@pytest.mark.parametrize(
    "group, kind",
    [
        ({"groupTypes": []}, "cloud"),
        ({"groupTypes": ["Unified"], "onPremisesSyncEnabled": None}, "cloud"),
        ({"groupTypes": ["DynamicMembership"], "membershipRule": "user.objectId -ne null"}, "dynamic"),
        ({"groupTypes": ["Unified", "dynamicmembership"]}, "dynamic"),
        ({"groupTypes": [], "onPremisesSyncEnabled": True}, "synced"),
        ({"groupTypes": [], "onPremisesSyncEnabled": False}, "cloud"),
    ],
)
def test_kind(group, kind):
    assert group_kind(group) == kind
    assert (member_writes_refused(group) is None) == (kind == "cloud")


def _user(number, synced=True, sid=True, sam=True):
    user = {"id": "U%d" % number, "userPrincipalName": "user%d@contoso.com" % number, "onPremisesSyncEnabled": True if synced else None}
    if sid:
        user["onPremisesSecurityIdentifier"] = "S-1-5-21-1-2-3-%d" % (1000 + number)
    if sam:
        user["onPremisesSamAccountName"] = "user%d" % number
    return user


def test_onprem_join_names_who_cannot_join_and_why():
    users = [_user(1), _user(2, synced=False), _user(3, sid=False), _user(4, sid=False, sam=False)]
    joinable, cannot = onprem_join(users)
    assert [user["id"] for user in joinable] == ["U1", "U3"]
    assert cannot == [
        {"id": "u2", "user_principal_name": "user2@contoso.com", "reason": REASON_CLOUD_ONLY},
        {"id": "u4", "user_principal_name": "user4@contoso.com", "reason": REASON_NO_ONPREM_KEY},
    ]


def test_ad_script_adds_by_sid_in_chunks_with_whatif_unless_apply():
    users = [_user(number) for number in range(1, 251)] + [_user(251, sid=False)]
    text = ad_member_script(SYNCED_GROUP, users, chunk=100)
    tree, source = parse(text.encode("utf-8"))
    found = commands(tree, source)
    assert [name for name, dummy in found][0] == "Import-Module"
    assert "Import-Module ActiveDirectory" in text
    adds = named(found, "Add-ADGroupMember")
    assert len(adds) == 3
    for parameters in adds:
        assert parameters["-Identity"] == "$group"
        assert parameters["-WhatIf"] == "$dryRun"
    members = [parameters["-Members"] for parameters in adds]
    assert members[0].count("'S-1-5-21-1-2-3-") == 100 and "'S-1-5-21-1-2-3-1001'" in members[0]
    assert members[2].count("', '") == 50 and members[2].endswith("'S-1-5-21-1-2-3-1250', 'user251')")
    assert "$group = 'S-1-5-21-1004336348-1177238915-682003330-1105'" in text
    assert "[switch]$Apply" in text and "$dryRun = -not $Apply" in text


def test_ad_script_quotes_names_and_uses_the_sam_account_name_of_a_group_without_sid():
    group = dict(SYNCED_GROUP, onPremisesSecurityIdentifier=None, onPremisesSamAccountName="Lic'E3")
    user = {"id": "U9", "userPrincipalName": "o'brien@contoso.com", "onPremisesSyncEnabled": True, "onPremisesSamAccountName": "o'brien"}
    text = ad_member_script(group, [user])
    tree, source = parse(text.encode("utf-8"))
    adds = named(commands(tree, source), "Add-ADGroupMember")
    assert adds[0]["-Members"] == "@('o''brien')"
    assert "$group = 'Lic''E3'" in text


def test_ad_script_is_the_same_for_the_same_input():
    users = [_user(1), _user(2)]
    assert ad_member_script(SYNCED_GROUP, users) == ad_member_script(SYNCED_GROUP, users)


def test_a_synced_group_without_on_premises_name_is_refused():
    with pytest.raises(ValueError, match="cannot be named"):
        ad_member_script(dict(SYNCED_GROUP, onPremisesSecurityIdentifier=None, onPremisesSamAccountName=None), [_user(1)])
