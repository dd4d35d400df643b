# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""snapshot.py: pseudonyms, tenant-format records and the private writer, over plain data (no HTTP)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.group_kinds import group_kind
from ansible_collections.entraops.licensing.plugins.module_utils.snapshot import (
    PrivateJsonWriter,
    Pseudonymizer,
    SnapshotInputError,
    group_document,
    known_rules,
    load_key,
    rule_attributes,
    rules_testing_pseudonyms,
    sku_document,
    split_assignment_states,
    user_document,
)

KEY = b"0123456789abcdef-operator-key"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
GROUP = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
PLAN = "7547a3fe-08ee-4ccb-b430-5077c5041653"


def graph_user(**extra):
    user = {
        "id": "AAAAAAAA-0000-4000-8000-000000000001",
        "userPrincipalName": "Ada.Lovelace@contoso.com",
        "displayName": "Ada Lovelace",
        "givenName": "Ada",
        "surname": "Lovelace",
        "mail": "ada@contoso.com",
        "mailNickname": "ada",
        "accountEnabled": True,
        "usageLocation": "GB",
        "department": "Engineering",
        "jobTitle": "Chief Analyst",
        "employeeId": "E1815",
        "onPremisesSamAccountName": "alovelace",
        "onPremisesSecurityIdentifier": "S-1-5-21-1004336348-1177238915-682003330-1105",
        "onPremisesDomainName": "corp.contoso.com",
        "onPremisesSyncEnabled": True,
        "assignedLicenses": [{"skuId": E3, "disabledPlans": []}],
        "licenseAssignmentStates": [
            {"skuId": E3, "disabledPlans": [PLAN.upper()], "assignedByGroup": None, "state": "Active", "error": "None"},
            {"skuId": E3, "disabledPlans": [], "assignedByGroup": GROUP, "state": "Active", "error": "None", "lastUpdatedDateTime": "2026-01-01T00:00:00Z"},
            {"skuId": EMS, "disabledPlans": [], "assignedByGroup": GROUP, "state": "Error", "error": "CountViolation"},
            {"skuId": EMS, "disabledPlans": [], "assignedByGroup": OTHER, "state": "Active", "error": "None"},
        ],
    }
    user.update(extra)
    return user


def pseudonyms(**options):
    return Pseudonymizer(KEY, domain="t0.onmicrosoft.com", **options)


def test_pseudonyms_are_stable_keyed_and_case_blind():
    first, second = pseudonyms().user_names(graph_user()), pseudonyms().user_names(graph_user(userPrincipalName="ada.lovelace@CONTOSO.com"))
    assert first == second
    other_key = Pseudonymizer(b"another-key-of-the-operator", domain="t0.onmicrosoft.com").user_names(graph_user())
    assert other_key["userPrincipalName"] != first["userPrincipalName"]
    assert first["userPrincipalName"].endswith("@t0.onmicrosoft.com")
    for value in first.values():
        assert "ada" not in value.lower() and "lovelace" not in value.lower() and "1815" not in value
    assert len(first["onPremisesSamAccountName"]) <= 20  # sAMAccountName's limit


def test_sink_receives_each_pseudonym_with_its_original():
    pairs = {}
    names = Pseudonymizer(KEY, domain="t0.onmicrosoft.com", sink=pairs.__setitem__).user_names(graph_user())
    assert pairs[names["userPrincipalName"]] == "Ada.Lovelace@contoso.com"
    assert pairs[names["displayName"]] == "Ada Lovelace"
    assert pairs[names["employeeId"]] == "E1815"


def test_remapped_ids_are_consistent_guids_and_domains_recorded_once():
    calls = []
    mapper = Pseudonymizer(KEY, remap_ids=True, sink=lambda p, o: calls.append((p, o)))
    first, again = mapper.object_id(GROUP), mapper.object_id(GROUP.upper())
    assert first == again != GROUP and len(first) == 36 and first[14] == "4"
    mapper.domain("contoso.com")
    mapper.domain("contoso.com")
    assert len(calls) == 2
    assert Pseudonymizer(KEY).object_id(GROUP) == GROUP  # remapping is an option
    assert Pseudonymizer(None, remap_ids=True).object_id(GROUP) == GROUP  # and needs pseudonymisation


def test_sid_keeps_the_relative_id_and_maps_one_domain_to_one_domain():
    mapper = pseudonyms()
    first = mapper.sid("S-1-5-21-1004336348-1177238915-682003330-1105")
    second = mapper.sid("S-1-5-21-1004336348-1177238915-682003330-1200")
    assert first.endswith("-1105") and second.endswith("-1200")
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0] != "S-1-5-21-1004336348-1177238915-682003330"


def test_key_is_required_long_enough_and_read_from_a_file(tmp_path):
    with pytest.raises(SnapshotInputError, match="no key is given"):
        load_key(None, None)
    with pytest.raises(SnapshotInputError, match="holds 5 characters"):
        load_key("short", None)
    key_file = tmp_path / "key"
    key_file.write_text("  a-key-of-twenty-chars\n")
    assert load_key(None, str(key_file)) == b"a-key-of-twenty-chars"
    with pytest.raises(SnapshotInputError, match="cannot be read"):
        load_key(None, str(tmp_path / "missing"))


def test_assignment_states_split_into_direct_and_group_entries():
    direct, groups = split_assignment_states(graph_user(), {GROUP})
    assert direct == [{"skuId": E3, "disabledPlans": [PLAN]}]
    assert groups == [
        {
            "groupId": GROUP,
            "state": "Active",
            "error": "None",
            "lastUpdatedDateTime": "2026-01-01T00:00:00Z",
            "licenses": [{"skuId": E3, "disabledPlans": []}, {"skuId": EMS, "disabledPlans": []}],
        }
    ]
    # a user without states (nothing reported) holds its licenses directly
    assert split_assignment_states({"assignedLicenses": [{"skuId": E3}]}, set()) == ([{"skuId": E3, "disabledPlans": []}], [])


def test_group_entry_keeps_the_first_state_of_the_group():
    user = graph_user(
        licenseAssignmentStates=[
            {"skuId": EMS, "assignedByGroup": GROUP, "state": "Error", "error": "CountViolation"},
            {"skuId": E3, "assignedByGroup": GROUP, "state": "Error", "error": "CountViolation"},
        ]
    )
    assert split_assignment_states(user, {GROUP})[1][0]["error"] == "CountViolation"


def test_rule_attributes_found_in_membership_rules():
    rules = ['(user.department -eq "Sales") and (user.accountEnabled -eq true)', "user.extensionAttribute7 -eq 'x'", None]
    assert rule_attributes(rules) == {"department", "onPremisesExtensionAttributes"}
    assert rule_attributes(["user.jobTitleX -eq 1"]) == set()


def test_user_record_pseudonymised_drops_what_no_rule_needs():
    doc = user_document(graph_user(), pseudonyms(), {GROUP}, kept_attributes=set())
    text = json.dumps(doc)
    for original in ("Lovelace", "Ada", "Chief Analyst", "Engineering", "E1815", "alovelace", "corp.contoso.com", "682003330"):
        assert original not in text
    assert doc["usageLocation"] == "GB" and doc["accountEnabled"] is True and doc["onPremisesSyncEnabled"] is True
    assert doc["id"] == "aaaaaaaa-0000-4000-8000-000000000001"
    kept = user_document(graph_user(), pseudonyms(), {GROUP}, kept_attributes={"department"})
    assert kept["department"] == "Engineering" and "jobTitle" not in kept


def test_user_record_without_pseudonyms_copies_names_and_leaves_nulls_out():
    doc = user_document(graph_user(city=None), Pseudonymizer(None), {GROUP}, kept_attributes=set())
    assert doc["userPrincipalName"] == "Ada.Lovelace@contoso.com" and doc["jobTitle"] == "Chief Analyst"
    assert "city" not in doc


def test_group_record_kind_rule_and_names():
    dynamic = {
        "id": GROUP,
        "displayName": "Sales (dynamic)",
        "description": "Everyone in Sales, owner Ada",
        "securityEnabled": True,
        "groupTypes": ["DynamicMembership"],
        "membershipRule": 'user.department -eq "Sales"',
        "membershipRuleProcessingState": "On",
        "assignedLicenses": [{"skuId": E3.upper(), "disabledPlans": [PLAN]}],
        "licenseProcessingState": {"state": "ProcessingComplete"},
    }
    doc = group_document(dynamic, ["m"], pseudonyms())
    assert group_kind(dynamic) == "dynamic" and doc["groupTypes"] == ["DynamicMembership"]
    assert doc["membershipRule"] == dynamic["membershipRule"] and doc["membershipRuleProcessingState"] == "On"
    assert doc["licenseProcessingState"] == "ProcessingComplete" and doc["assignedLicenses"] == [{"skuId": E3, "disabledPlans": [PLAN]}]
    assert doc["displayName"].startswith("Group ") and "description" not in doc
    assert group_document(dynamic, [], pseudonyms(), keep_name=True)["displayName"] == "Sales (dynamic)"
    synced = {"id": OTHER, "displayName": "HR", "onPremisesSyncEnabled": True, "onPremisesSamAccountName": "HR-Staff", "groupTypes": []}
    assert group_kind(synced) == "synced" and group_kind({"groupTypes": ["Unified"]}) == "cloud"
    synced_doc = group_document(synced, [], pseudonyms())
    assert synced_doc["onPremisesSyncEnabled"] is True and synced_doc["onPremisesSamAccountName"] != "HR-Staff"


def test_units_reduced_by_what_left_out_users_consume():
    sku = {"skuId": E3, "skuPartNumber": "ENTERPRISEPACK", "consumedUnits": 90, "prepaidUnits": {"enabled": 100, "warning": 5}, "servicePlans": []}
    assert sku_document(sku, exported_consumers=90)["prepaidUnits"]["enabled"] == 100
    assert sku_document(sku, exported_consumers=30)["prepaidUnits"] == {"enabled": 40, "suspended": 0, "warning": 5, "lockedOut": 0}


def test_known_rules_name_the_reference_dependencies():
    skus = [
        {"skuPartNumber": "ENTERPRISEPACK", "servicePlans": [{"servicePlanId": "A", "servicePlanName": "MCOSTANDARD", "appliesTo": "User"}]},
        {"skuPartNumber": "MCOMEETADV", "servicePlans": [{"servicePlanId": "B", "servicePlanName": "MCOMEETADV", "appliesTo": "User"}]},
    ]
    assert known_rules(skus)["planDependencies"] == {"b": ["a"]}
    assert known_rules(skus[1:])["planDependencies"] == {}


def test_private_writer_is_0600_whatever_the_umask_and_aborts_cleanly(tmp_path):
    previous = os.umask(0)
    try:
        writer = PrivateJsonWriter(str(tmp_path / "out.json"))
        writer.write("{}")
        assert stat.S_IMODE(os.stat(writer.temporary).st_mode) == 0o600
        writer.commit()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(str(tmp_path / "out.json")).st_mode) == 0o600
    aborted = PrivateJsonWriter(str(tmp_path / "other.json"))
    aborted.write("{")
    aborted.abort()
    assert sorted(os.listdir(str(tmp_path))) == ["out.json"]
    with pytest.raises(SnapshotInputError, match="existing directory"):
        PrivateJsonWriter(str(tmp_path / "no" / "such.json"))


def test_the_guides_recipe_recomputes_a_upn_pseudonym():
    # docs/rehearsal.md, section 3: "u" + HMAC-SHA256(key, "user\0" + lower-case UPN), first 16 hex digits
    import hashlib
    import hmac

    recomputed = "u" + hmac.new(KEY, b"user\0" + "Ada.Lovelace@contoso.com".lower().encode(), hashlib.sha256).hexdigest()[:16]
    assert pseudonyms().user_names(graph_user())["userPrincipalName"] == recomputed + "@t0.onmicrosoft.com"


def test_rules_that_test_pseudonymised_properties_are_found():
    groups = [
        {"displayName": "By UPN", "membershipRule": 'user.userPrincipalName -endsWith "@contoso.com"'},
        {"displayName": "By department", "membershipRule": 'user.department -eq "Sales"'},
        {"displayName": "Static"},
    ]
    assert rules_testing_pseudonyms(groups) == [("By UPN", "userPrincipalName")]


def test_on_premises_sync_false_is_left_out():
    # Graph says false for an object synced once and cloud-only since; the tenant format has true or nothing
    assert "onPremisesSyncEnabled" not in user_document(graph_user(onPremisesSyncEnabled=False), pseudonyms(), set(), set())
    assert "onPremisesSyncEnabled" not in group_document({"id": GROUP, "displayName": "G", "onPremisesSyncEnabled": False}, [], pseudonyms())
