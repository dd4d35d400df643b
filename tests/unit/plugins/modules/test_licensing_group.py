# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""licensing_group in-process against the Graph emulator (real HTTPS, real msal)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from graph_emulator import generate_tenant

from ansible_collections.entraops.licensing.plugins.modules import licensing_group
from ansible_collections.entraops.licensing.plugins.module_utils.group_members import membership_changes
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection as connection, graph_writes as writes, run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
RESERVED = {"failed", "skipped", "invocation", "ansible_facts", "warnings", "deprecations"}


@pytest.fixture
def emu(emulator):
    original = emulator.export_state()
    emulator.load_state(generate_tenant(users=60, seed=11))
    emulator.reset_stats()
    yield emulator
    assert emulator.loss_ledger() == []
    emulator.load_state(original)


@pytest.fixture
def graph(emu, make_client):
    """A client for setting up state over HTTP, as another admin would."""
    return make_client(backoff_base=0.01, backoff_cap=0.05, max_retry_time=20)


def run(emu, **args):
    return run_module(licensing_group.main, dict(connection(emu), **args))


def run_as_group_writer(emu, **args):
    """The module with an app that also holds Group.ReadWrite.All: updating or deleting a group needs it
    (Group.Create and GroupMember.ReadWrite.All, what the default app holds, create groups and manage members)."""
    from graph_emulator.identity import DEFAULT_APP_PERMISSIONS  # pylint: disable=import-outside-toplevel

    token = emu.issue_token(permissions=list(DEFAULT_APP_PERMISSIONS) + ["Group.ReadWrite.All"])
    options = dict(connection(emu), access_token=token)
    del options["client_secret"]
    return run_module(licensing_group.main, dict(options, **args))


def upns(emu, count=None):
    people = emu.export_state()["users"]
    return [person["userPrincipalName"] for person in people[:count]]


def test_membership_changes_is_a_pure_diff():
    wanted = {"a": "a@x", "b": "b@x"}
    current = {"b": "b@x", "c": "c@x"}
    assert membership_changes(wanted, current, purge=False) == (["a"], [])
    assert membership_changes(wanted, current, purge=True) == (["a"], ["c"])
    assert membership_changes({}, {}, purge=True) == ([], [])


def test_create_from_direct_sku_then_idempotent(emu):
    result, failed = run(emu, name="LIC - E3", description="E3 by group", members_from_direct_sku="enterprisepack", _ansible_diff=True)
    assert not failed, result
    assert result["changed"] and result["created"]
    assert result["members_added"] == 60 and result["members_total"] == 60 and len(result["members_added_sample"]) == 50
    assert result["group"]["display_name"] == "LIC - E3" and result["group"]["id"]
    assert result["diff"]["after"]["members_added"][-1] == "... and 10 more"
    assert not RESERVED & set(result) - {"failed"}
    group = [g for g in emu.export_state()["groups"] if g["displayName"] == "LIC - E3"][0]
    assert group["securityEnabled"] is True and group["mailEnabled"] is False and len(group["members"]) == 60
    patches = [entry for entry in writes(emu) if entry["method"] == "PATCH"]
    assert len(patches) == 3 and all(entry["in_batch"] for entry in patches)  # 60 members, 20 per request
    emu.reset_stats()
    again, failed = run(emu, name="LIC - E3", description="E3 by group", members_from_direct_sku=E3)
    assert not failed and again["changed"] is False and again["members_added"] == 0 and again["members_total"] == 60
    assert writes(emu) == []
    assert emu.client_secret not in str(result) + str(again)


def test_check_mode_predicts_without_writing(emu):
    result, failed = run(emu, name="LIC - pilot", members=upns(emu, 3), _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"] and result["created"] and result["group"]["id"] is None
    assert result["members_added"] == 3
    assert result["diff"]["before"]["state"] == "absent"
    assert sorted(result["diff"]["after"]["members_added"]) == sorted(upns(emu, 3))
    assert writes(emu) == []
    run(emu, name="LIC - pilot", members=upns(emu, 2))
    emu.reset_stats()
    result, failed = run(emu, name="LIC - pilot", members=upns(emu, 4), _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] and result["members_added"] == 2 and result["members_total"] == 4
    assert sorted(result["diff"]["after"]["members_added"]) == sorted(upns(emu, 4)[2:])
    assert writes(emu) == []


def test_unknown_users_fail_before_any_write_naming_all(emu):
    result, failed = run(emu, name="LIC - typo", members=[upns(emu, 1)[0], "ghost@contoso.com", "8f6d0558-4ef8-4a38-9227-66581e27a1c0"])
    assert failed
    assert "2 user(s) not found" in result["msg"] and "'ghost@contoso.com'" in result["msg"]
    assert "8f6d0558-4ef8-4a38-9227-66581e27a1c0" in result["msg"]
    assert writes(emu) == []


def test_unknown_sku_fails_before_any_write(emu):
    result, failed = run(emu, name="LIC - x", members_from_direct_sku="NOT_A_SKU")
    assert failed and "'NOT_A_SKU' is not a subscribed SKU" in result["msg"] and "ENTERPRISEPACK" in result["msg"]
    assert writes(emu) == []


def test_ambiguous_and_unlicensable_groups_fail_clearly(emu, graph):
    run(emu, name="Dup", members=[])
    graph.post("/groups", body={"displayName": "Dup", "mailNickname": "dup2", "mailEnabled": False, "securityEnabled": True})
    emu.reset_stats()
    result, failed = run(emu, name="Dup", members=upns(emu, 1))
    assert failed and "2 groups are named 'Dup'" in result["msg"] and writes(emu) == []
    graph.post("/groups", body={"displayName": "Team site", "mailNickname": "team", "mailEnabled": True, "securityEnabled": False, "groupTypes": ["Unified"]})
    emu.reset_stats()
    result, failed = run(emu, name="Team site", members=upns(emu, 1))
    assert failed and "cannot carry licenses" in result["msg"] and writes(emu) == []


def test_purge_members_removes_only_unnamed_users(emu):
    run(emu, name="LIC - purge", members=upns(emu, 5))
    emu.reset_stats()
    result, failed = run(emu, name="LIC - purge", members=upns(emu, 3), _ansible_diff=True)
    assert not failed and result["changed"] is False and result["members_total"] == 5  # no purge: nobody removed
    result, failed = run(emu, name="LIC - purge", members=upns(emu, 3), purge_members=True, _ansible_diff=True)
    assert not failed and result["changed"] and result["members_removed"] == 2 and result["members_total"] == 3
    assert sorted(result["members_removed_sample"]) == sorted(upns(emu, 5)[3:])
    assert sorted(result["diff"]["before"]["members_removed"]) == sorted(upns(emu, 5)[3:])
    result, failed = run(emu, name="LIC - purge", purge_members=True)
    assert failed and "purge_members=true needs members" in result["msg"]


def test_absent_refused_while_licensed_then_deletes(emu, graph):
    # No members: taking the license back from members would be a loss (the ledger would show it).
    created, dummy = run(emu, name="LIC - gone", members=[])
    group_id = created["group"]["id"]
    graph.post("/groups/%s/assignLicense" % group_id, body={"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []})
    emu.process_all()
    emu.reset_stats()
    result, failed = run(emu, name="LIC - gone", state="absent")
    assert failed and "carries 1 license(s)" in result["msg"] and writes(emu) == []
    graph.post("/groups/%s/assignLicense" % group_id, body={"addLicenses": [], "removeLicenses": [E3]})
    emu.process_all()
    emu.reset_stats()
    result, failed = run(emu, name="LIC - gone", state="absent", _ansible_check_mode=True)
    assert not failed and result["changed"] and writes(emu) == []
    # deleting a group needs Group.ReadWrite.All: the least-privileged app is refused, and nothing is written
    result, failed = run(emu, name="LIC - gone", state="absent")
    assert failed and "Insufficient privileges" in result["msg"]
    result, failed = run_as_group_writer(emu, name="LIC - gone", state="absent")
    assert not failed and result["changed"]
    assert [(w["method"], w["status"]) for w in writes(emu)] == [("DELETE", 403), ("DELETE", 204)]
    result, failed = run(emu, name="LIC - gone", state="absent")
    assert not failed and result["changed"] is False and result["group"] is None


def test_description_is_updated_when_it_differs(emu):
    run(emu, name="LIC - desc", members=[], description="old")
    emu.reset_stats()
    result, failed = run_as_group_writer(emu, name="LIC - desc", description="new", _ansible_diff=True)
    assert not failed and result["changed"] and result["diff"]["after"]["description"] == "new"
    assert [w["method"] for w in writes(emu)] == ["PATCH"]


def test_throttling_and_unavailability_storm(emu):
    emu.add_fault(method="PATCH", route="/groups/", status=429, retry_after=0, count=4)
    emu.add_fault(method="GET", route="/users", status=503, retry_after=0, count=3)
    emu.add_fault(method="POST", route="/groups$", status=429, retry_after=0, count=1)
    result, failed = run(emu, name="LIC - storm", members_from_direct_sku="ENTERPRISEPACK")
    assert not failed, result
    assert result["members_added"] == 60
    group = [g for g in emu.export_state()["groups"] if g["displayName"] == "LIC - storm"]
    assert len(group) == 1 and len(group[0]["members"]) == 60
    statuses = emu.stats()["by_status"]
    assert statuses.get("429", statuses.get(429)) and statuses.get("503", statuses.get(503))
