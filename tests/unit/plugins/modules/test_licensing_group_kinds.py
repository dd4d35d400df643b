# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""licensing_group and license_processing_wait on dynamic and synced groups, in-process against the Graph emulator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from graph_emulator import generate_tenant

from ansible_collections.entraops.licensing.plugins.modules import group_license, license_assignment_info, license_processing_wait, licensing_group
from ansible_collections.entraops.licensing.tests.unit.plugins.module_utils.test_powershell_scripts import commands, named, parse
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection as connection, graph_writes as writes, run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
DYNAMIC_ID = "0d5c1a8e-1f3b-4c6e-9a2d-000000000d01"
SYNCED_ID = "0d5c1a8e-1f3b-4c6e-9a2d-000000000501"
SYNCED = 40  # users 0..39 synced from on-premises; 40..59 cloud-only
IN_AD_GROUP = 25  # users 0..24 already members of the synced group


def _sid(number):
    return "S-1-5-21-3623811015-3361044348-30300820-%d" % (2000 + number)


def kinds_tenant():
    tenant = generate_tenant(users=60, seed=11)
    for number, user in enumerate(tenant["users"]):
        if number < SYNCED:
            user.update(
                onPremisesSyncEnabled=True,
                onPremisesSecurityIdentifier=_sid(number),
                onPremisesSamAccountName="user%02d" % number,
                onPremisesDomainName="contoso.local",
            )
    tenant["groups"].append(
        {
            "id": SYNCED_ID,
            "displayName": "All users (AD)",
            "onPremisesSyncEnabled": True,
            "onPremisesSecurityIdentifier": "S-1-5-21-3623811015-3361044348-30300820-1105",
            "onPremisesSamAccountName": "AllUsersAD",
            "onPremisesDomainName": "contoso.local",
            "members": [user["id"] for user in tenant["users"][:IN_AD_GROUP]],
        }
    )
    return tenant


@pytest.fixture(scope="module")
def tenant():
    return kinds_tenant()


@pytest.fixture
def emu(emulator, tenant):
    original = emulator.export_state()
    knobs = emulator.config()
    emulator.load_state(copy.deepcopy(tenant))
    emulator.reset_stats()
    yield emulator
    emulator.configure(dynamic_rate=knobs["dynamic_rate"], sync_interval_s=knobs["sync_interval_s"])
    emulator.load_state(original)


def _run(main, args):
    result, failed = run_module(main, args)
    result["failed"] = failed
    return result


def run(emu, module=licensing_group, **args):
    return _run(module.main, dict(connection(emu), **args))


def run_as_group_writer(emu, **args):
    """With Group.ReadWrite.All too: changing a rule needs it."""
    from graph_emulator.identity import DEFAULT_APP_PERMISSIONS  # pylint: disable=import-outside-toplevel

    options = dict(connection(emu), access_token=emu.issue_token(permissions=list(DEFAULT_APP_PERMISSIONS) + ["Group.ReadWrite.All"]))
    del options["client_secret"]
    return _run(licensing_group.main, dict(options, **args))


def users(emu):
    return emu.export_state()["users"]


def group_state(emu, group_id):
    return next(group for group in emu.export_state()["groups"] if group["id"] == group_id)


# --------------------------------------------------------------------------------------- dynamic


def test_dynamic_group_created_waited_for_then_idempotent(emu):
    emu.configure(dynamic_rate=20)  # 60 users in 3 emulated seconds: the module has to wait
    rule = 'user.department -eq "Marketing" -or user.department -eq "Sales"'
    expected = sorted(user["id"] for user in users(emu) if user.get("department") in ("Marketing", "Sales"))
    assert expected
    check = run(emu, name="LIC dynamic", membership_rule=rule, _ansible_check_mode=True, _ansible_diff=True)
    assert check["changed"] and check["created"] and check["kind"] == "dynamic" and check["members_predicted"] == len(expected)
    assert check["diff"]["after"]["membership_rule"] == rule
    assert writes(emu) == []
    result = run(emu, name="LIC dynamic", membership_rule=rule, membership_poll_interval=0.2, membership_timeout=60)
    assert result["changed"] and result["created"] and result["kind"] == "dynamic"
    assert result["membership"]["done"] and result["membership"]["source"] == "processing_status"
    assert result["membership"]["members"] == len(expected) and result["membership"]["polls"] >= 2
    posted = [entry for entry in writes(emu) if entry["method"] == "POST" and entry["path"] == "/v1.0/groups"]
    assert len(posted) == 1
    group = next(group for group in emu.export_state()["groups"] if group["displayName"] == "LIC dynamic")
    assert group["groupTypes"] == ["DynamicMembership"] and group["membershipRule"] == rule
    emu.reset_stats()
    again = run(emu, name="LIC dynamic", membership_rule=rule.replace(" -or ", "  -or\n "), membership_poll_interval=0.2)
    assert not again["changed"] and again["membership"]["done"] and writes(emu) == []


def test_dynamic_wait_without_beta_uses_the_rule_evaluated_client_side(emu):
    emu.configure(dynamic_rate=20)
    result = run(emu, name="LIC all", membership_rule="user.objectId -ne null", use_beta=False, membership_poll_interval=0.2, membership_timeout=60)
    assert result["membership"]["source"] == "rule_evaluation" and result["membership"]["done"]
    assert result["membership"]["members"] == 60 == result["membership"]["rule_result"]
    assert not [entry for entry in emu.request_log() if entry["path"].startswith("/beta/")]


def test_dynamic_members_are_never_written_and_uncovered_users_are_named(emu):
    run(emu, name="LIC sales", membership_rule='user.department -eq "Sales"', membership_poll_interval=0.2)
    emu.reset_stats()
    outside = [user["userPrincipalName"] for user in users(emu) if user.get("department") != "Sales"][:2]
    result = run(emu, name="LIC sales", members=outside, membership_poll_interval=0.2)
    assert not result["changed"] and result["members_not_covered"] == 2 and sorted(result["members_not_covered_sample"]) == sorted(outside)
    assert writes(emu) == []
    refused = run(emu, name="LIC sales", members=outside, purge_members=True)
    assert refused["failed"] and "dynamic group" in refused["msg"] and writes(emu) == []


def _licensed_dynamic_tenant(emu, rule):
    """A dynamic group carrying E3 whose users hold E3 from it only (no direct copy): who leaves loses E3.

    The license is assigned through Graph once the rule has been evaluated (a tenant file loaded as processed does not
    give a dynamic group's computed members the group's licenses)."""
    state = emu.export_state()
    for user in state["users"]:
        user["directLicenses"] = []
    state["groups"].append(
        {
            "id": DYNAMIC_ID,
            "displayName": "LIC E3 dynamic",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": rule,
            "membershipRuleProcessingState": "On",
        }
    )
    emu.load_state(state)
    emu.process_all()
    assigned = _run(group_license.main, dict(connection(emu), group=DYNAMIC_ID, licenses=[{"sku": "ENTERPRISEPACK"}]))
    assert not assigned["failed"], assigned["msg"]
    emu.process_all()
    members = set(group_state(emu, DYNAMIC_ID)["members"])
    assert members and all(
        any(entry["groupId"] == DYNAMIC_ID and entry["state"] == "Active" for entry in user.get("groupLicenses") or [])
        for user in users(emu)
        if user["id"] in members
    )
    emu.reset_stats()


def test_rule_change_on_a_licensed_group_is_refused_then_the_ledger_holds_exactly_the_predicted_users(emu):
    _licensed_dynamic_tenant(emu, 'user.department -in ["Marketing", "Sales"]')
    by_id = dict((user["id"], user) for user in users(emu))
    leaving = sorted(user["userPrincipalName"] for user in by_id.values() if user.get("department") == "Marketing")
    assert leaving
    new_rule = 'user.department -eq "Sales"'
    refused = run_as_group_writer(emu, name="LIC E3 dynamic", membership_rule=new_rule)
    assert refused["failed"] and "refusing to change the membership rule" in refused["msg"], refused
    assert sorted(refused["members_leaving_sample"]) == leaving and refused["members_leaving"] == len(leaving)
    assert writes(emu) == [] and group_state(emu, DYNAMIC_ID)["membershipRule"] != new_rule
    result = run_as_group_writer(emu, name="LIC E3 dynamic", membership_rule=new_rule, accept_membership_loss=True, membership_poll_interval=0.2)
    assert result["changed"] and sorted(result["members_leaving_sample"]) == leaving and result["membership"]["done"]
    emu.process_all()
    lost = sorted(set(entry["user_principal_name"] for entry in emu.loss_ledger()))
    assert lost == leaving
    emu.clear_ledger()


def test_a_malformed_rule_is_refused_before_any_write_naming_the_position(emu):
    result = run(emu, name="LIC bad", membership_rule='(user.department -eq "Sales"')
    assert result["failed"] and "position 28" in result["msg"] and writes(emu) == []


def test_a_cloud_group_is_not_converted(emu):
    result = run(emu, name="Contractors", membership_rule="user.objectId -ne null")
    assert result["failed"] and "cloud group" in result["msg"] and writes(emu) == []


# ---------------------------------------------------------------------------------------- synced


def test_synced_group_never_written_the_ad_script_and_who_cannot_join(emu, tmp_path):
    script = tmp_path / "AllUsersAD.ps1"
    people = users(emu)
    result = run(emu, name="All users (AD)", members_from_direct_sku="ENTERPRISEPACK", on_premises_script_path=str(script), purge_members=False)
    assert writes(emu) == []
    holders = [number for number, user in enumerate(people) if any(lic["skuId"] == E3 for lic in user.get("directLicenses") or [])]
    to_add = [number for number in holders if IN_AD_GROUP <= number < SYNCED]
    cloud_only = [number for number in holders if number >= SYNCED]
    assert to_add and cloud_only
    assert result["kind"] == "synced" and result["changed"] and result["members_on_premises"] == len(to_add)
    assert sorted(item["user_principal_name"] for item in result["cannot_join_sample"]) == sorted(people[n]["userPrincipalName"] for n in cloud_only)
    assert all("cloud-only" in item["reason"] for item in result["cannot_join_sample"])
    tree, source = parse(script.read_bytes())
    found = commands(tree, source)
    assert ("Import-Module", {"-ErrorAction": "Stop"}) in found
    adds = named(found, "Add-ADGroupMember")
    assert len(adds) == 1 and adds[0]["-WhatIf"] == "$dryRun"
    assert adds[0]["-Members"] == "@(%s)" % ", ".join("'%s'" % _sid(number) for number in sorted(to_add, key=lambda n: people[n]["id"]))
    assert "$group = 'S-1-5-21-3623811015-3361044348-30300820-1105'" in source.decode("utf-8")
    again = run(emu, name="All users (AD)", members_from_direct_sku="ENTERPRISEPACK", on_premises_script_path=str(script))
    assert not again["changed"] and writes(emu) == []


def test_synced_group_refuses_purge_and_rule_before_any_write(emu):
    for args in ({"members": [users(emu)[0]["userPrincipalName"]], "purge_members": True}, {"membership_rule": "user.objectId -ne null"}):
        result = run(emu, name="All users (AD)", **args)
        assert result["failed"] and "on-premises" in result["msg"]
    assert writes(emu) == []


def test_processing_wait_waits_for_the_sync_then_names_who_is_missing_on_timeout(emu):
    people = users(emu)
    missing = [people[number] for number in range(IN_AD_GROUP, SYNCED)]
    expected = [user["userPrincipalName"] for user in people[:SYNCED]]
    timed_out = run(emu, module=license_processing_wait, groups=["All users (AD)"], expected_members=expected, membership_timeout=1, poll_interval=0.2)
    assert timed_out["failed"] and "not yet synced from on-premises AD" in timed_out["msg"]
    assert missing[0]["userPrincipalName"] in timed_out["msg"] and timed_out["membership"][0]["missing"] == len(missing)
    emu.configure(sync_interval_s=2)
    emu.onprem_change_members(SYNCED_ID, add=[user["onPremisesSecurityIdentifier"] for user in missing])
    result = run(
        emu,
        module=license_processing_wait,
        groups=["All users (AD)"],
        expected_members=expected + [people[SYNCED]["userPrincipalName"]],
        membership_timeout=30,
        poll_interval=0.2,
    )
    assert not result.get("failed"), result.get("msg")
    membership = result["membership"][0]
    assert membership["done"] and membership["source"] == "expected_members" and membership["missing"] == 0 and membership["members"] == SYNCED
    assert membership["cannot_join"] == 1 and result["groups"][0]["kind"] == "synced"
    assert result["polls"] >= 2


# ------------------------------------------------------------------------------ assignment info


def _assign_e3(emu, group):
    assigned = _run(group_license.main, dict(connection(emu), group=group, licenses=[{"sku": "ENTERPRISEPACK"}]))
    assert not assigned["failed"], assigned["msg"]
    emu.process_all()


def test_assignment_info_counts_dynamic_members_as_direct_members_and_names_each_source_kind(emu):
    emu.load_state(generate_tenant(users=60, seed=3, profile="dynamic"))
    emu.process_all()
    _assign_e3(emu, "All users")
    result = _run(license_assignment_info.main, dict(connection(emu), skus=["ENTERPRISEPACK"], sample_size=0))
    assert not result["failed"], result["msg"]
    # The seed example's 5 contractors reach "All users" through a nested group; here the rule makes everyone a direct member.
    assert result["summary"]["not_direct_member"] == 0 and result["summary"]["safe_to_remove"] > 0
    assert [(item["display_name"], item["kind"]) for item in result["inherited_sources"]] == [("All users", "dynamic")]
    assert result["inherited_sources"][0]["records"] == result["records_total"]


def test_assignment_info_names_a_synced_source(emu):
    _assign_e3(emu, SYNCED_ID)
    result = _run(license_assignment_info.main, dict(connection(emu), groups=[SYNCED_ID], sample_size=0))
    assert not result["failed"], result["msg"]
    assert [(item["id"], item["kind"], item["records"]) for item in result["inherited_sources"]] == [(SYNCED_ID, "synced", IN_AD_GROUP)]


def test_beta_refused_falls_back_to_the_rule_and_stops_asking(emu):
    emu.configure(dynamic_rate=20)
    emu.add_fault(method="GET", route="^/beta/groups/", status=404, count=None)
    result = run(emu, name="LIC all", membership_rule="user.objectId -ne null", membership_poll_interval=0.2, membership_timeout=60)
    assert not result["failed"], result["msg"]
    assert result["membership"]["source"] == "rule_evaluation" and result["membership"]["members"] == 60 and result["membership"]["polls"] >= 2
    assert len([entry for entry in emu.request_log() if entry["path"].startswith("/beta/")]) == 1


def test_processing_wait_waits_for_a_dynamic_group_before_license_processing(emu):
    emu.configure(dynamic_rate=0)  # nothing is evaluated until the test says so
    created = run(emu, name="LIC all", membership_rule="user.objectId -ne null", wait_for_membership=False)
    assert created["membership"]["done"] is False and created["membership"]["status"] in ("NotStarted", "Running")
    pending = run(emu, module=license_processing_wait, groups=["LIC all"], membership_timeout=1, poll_interval=0.2)
    assert pending["failed"] and "LIC all (dynamic): membership not evaluated yet (membershipRuleProcessingStatus is NotStarted)" in pending["msg"]
    emu.configure(dynamic_rate=20)
    done = run(emu, module=license_processing_wait, groups=["LIC all"], membership_timeout=60, poll_interval=0.2)
    assert not done["failed"], done["msg"]
    assert done["membership"][0]["done"] and done["membership"][0]["source"] == "processing_status" and done["membership"][0]["members"] == 60
    assert done["groups"][0]["kind"] == "dynamic"


def test_synced_group_in_check_mode_writes_no_script(emu, tmp_path):
    script = tmp_path / "AllUsersAD.ps1"
    result = run(
        emu, name="All users (AD)", members_from_direct_sku="ENTERPRISEPACK", on_premises_script_path=str(script), _ansible_check_mode=True, _ansible_diff=True
    )
    assert result["changed"] and result["on_premises_script"] == str(script) and not script.exists()
    assert result["diff"]["after"]["members_to_add_on_premises"] == result["members_on_premises_sample"] and writes(emu) == []


def test_a_rule_change_the_module_cannot_evaluate_is_refused_saying_it_cannot_tell(emu):
    _licensed_dynamic_tenant(emu, 'user.department -eq "Sales"')
    refused = run_as_group_writer(emu, name="LIC E3 dynamic", membership_rule='user.department -match "^Sa"')
    assert refused["failed"] and "who would leave cannot be told" in refused["msg"]
    assert refused["members_leaving"] is None and refused["membership_prediction"] == "unknown"
    assert writes(emu) == []


def test_a_synced_group_is_not_deleted_through_graph(emu):
    result = run(emu, name="All users (AD)", state="absent")
    assert result["failed"] and "synced from on-premises Active Directory; delete it there" in result["msg"] and result["kind"] == "synced"
    assert writes(emu) == []
