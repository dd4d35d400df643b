# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""license_processing_wait in-process against the Graph emulator (real HTTPS, real msal, background processing)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from graph_emulator import generate_tenant

from ansible_collections.entraops.licensing.plugins.module_utils.directory import add_members, create_security_group, find_group
from ansible_collections.entraops.licensing.plugins.modules import group_license, license_processing_wait, licensing_group
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection as connection, graph_writes as writes, run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"


@pytest.fixture
def tenant(emulator):
    """Load a fresh generated tenant of the given size; restores the worker's tenant and knobs afterwards."""
    original = emulator.export_state()

    def load(users=40, seed=3):
        emulator.load_state(generate_tenant(users=users, seed=seed))
        emulator.configure(processing_rate=1000.0)
        emulator.reset_stats()
        return emulator

    yield load
    emulator.configure(processing_rate=1000.0)
    emulator.process_all()
    assert emulator.loss_ledger() == []
    emulator.load_state(original)


@pytest.fixture
def emu(tenant):
    return tenant()


@pytest.fixture
def graph(emu, make_client):
    return make_client(backoff_base=0.01, backoff_cap=0.05, max_retry_time=20)


def wait(emu, **args):
    args.setdefault("poll_interval", 0.2)
    args.setdefault("wait_timeout", 30)
    return run_module(license_processing_wait.main, dict(connection(emu), **args))


def full_e3_user_ids(emu, count):
    return [u["id"] for u in emu.export_state()["users"] if u.get("directLicenses") and not u["directLicenses"][0]["disabledPlans"]][:count]


def licensed_group(emu, graph, name, member_ids, licenses):
    group = create_security_group(graph, name)
    if member_ids:
        add_members(graph, group["id"], member_ids)
    body = {"addLicenses": [{"skuId": sku, "disabledPlans": []} for sku in licenses], "removeLicenses": []}
    graph.post("/groups/%s/assignLicense" % group["id"], body=body)
    emu.reset_stats()
    return group


def test_a_few_thousand_members_processed_in_the_background(tenant):
    emu = tenant(users=2500, seed=13)
    # asserts the documented states and counts member pages (ENTRAOPS_STRICT_EMULATOR may hide the one and shorten the other)
    emu.configure(unknown_processing_states=False, short_pages=False, empty_pages=False)
    created, failed = run_module(licensing_group.main, dict(connection(emu), name="LIC - all E3", members_from_direct_sku="ENTERPRISEPACK"))
    assert not failed and created["members_added"] == 2500
    emu.configure(processing_rate=2500.0)  # about a second of background work
    assigned, failed = run_module(group_license.main, dict(connection(emu), group="LIC - all E3", licenses=[{"sku": "ENTERPRISEPACK"}]))
    assert not failed and assigned["processing_state"] in ("QueuedForProcessing", "ProcessingInProgress")
    emu.reset_stats()
    result, failed = wait(emu, groups=["LIC - all E3"], poll_interval=0.3)
    assert not failed, result["msg"] if failed else None
    group = result["groups"][0]
    assert result["timed_out"] is False and result["polls"] >= 2 and result["elapsed"] > 0
    assert group["processing_state"] == "ProcessingComplete" and group["done"]
    assert (group["members"], group["members_applied"], group["members_in_error"], group["members_pending"]) == (2500, 2500, 0, 0)
    log = emu.request_log()
    assert not [e for e in log if e["route"] == "GET /v1.0/users/{id}"]  # no per-user reads
    member_pages = [e for e in log if e["route"] == "GET /v1.0/groups/{id}/members"]
    assert len(member_pages) == 3 * result["polls"]  # 2500 members in pages of 999
    assert writes(emu) == []


def test_count_violation_is_all_or_nothing_and_can_be_reprocessed(emu, graph):
    group = licensed_group(emu, graph, "LIC - E3+EMS E5", full_e3_user_ids(emu, 30), [E3, EMSPREMIUM])
    result, failed = wait(emu, groups=["LIC - E3+EMS E5"])
    assert failed and "1 member" not in result["msg"] and "5 member(s) in error {'CountViolation': 5}" in result["msg"]
    state = result["groups"][0]
    assert (state["members"], state["members_applied"], state["members_in_error"]) == (30, 25, 5)
    assert state["errors_by_code"] == {"CountViolation": 5}
    assert all(item["errors"] == ["CountViolation"] for item in state["members_in_error_sample"])
    assert state["other_users_in_error"] == 0
    # all-or-nothing: the members in error got neither SKU from the group, E3 included
    for item in state["members_in_error_sample"]:
        user = graph.get("/users/%s" % item["id"], params={"$select": "licenseAssignmentStates"})
        from_group = [e for e in user["licenseAssignmentStates"] if e["assignedByGroup"] == group["id"]]
        assert sorted(e["skuId"] for e in from_group) == sorted([E3, EMSPREMIUM])
        assert all(e["state"] == "Error" for e in from_group)
    result, failed = wait(emu, groups=[group["id"]], fail_on_member_errors=False)
    assert not failed and result["changed"] is False and result["groups"][0]["members_in_error"] == 5
    # reprocessing without freeing units: in check mode nothing is sent
    emu.reset_stats()
    emu.directory.set_sku_units(EMSPREMIUM, 30)
    result, failed = wait(emu, groups=[group["id"]], reprocess_errors=True, _ansible_check_mode=True)
    assert failed and result["groups"][0]["reprocessed"] == 5 and writes(emu) == []
    result, failed = wait(emu, groups=[group["id"]], reprocess_errors=True)
    assert not failed, result.get("msg")
    assert result["changed"] is True and result["groups"][0]["members_applied"] == 30 and result["groups"][0]["reprocessed"] == 5
    assert [w["route"] for w in writes(emu)] == ["POST /v1.0/users/{id}/reprocessLicenseAssignment"] * 5


def test_nested_group_members_are_not_counted(emu, graph):
    contractors = find_group(graph, "Contractors", require_licensable=False)
    direct = full_e3_user_ids(emu, 3)
    group = licensed_group(emu, graph, "LIC - nested", direct + [contractors["id"]], [E3])
    result, failed = wait(emu, groups=["LIC - nested"])
    assert not failed
    state = result["groups"][0]
    assert state["members"] == 3 and state["members_applied"] == 3 and state["nested_groups"] == 1
    nested_users = [m["id"] for m in graph.get_all("/groups/%s/members" % contractors["id"])]  # every page: a page may be empty
    assert nested_users and not set(nested_users) & set(direct)
    for user_id in nested_users:
        user = graph.get("/users/%s" % user_id, params={"$select": "licenseAssignmentStates"})
        assert not [e for e in user["licenseAssignmentStates"] if e["assignedByGroup"] == group["id"]]


def test_timeout_reports_progress_and_fails_only_when_asked(emu, graph):
    emu.configure(processing_rate=2.0)
    licensed_group(emu, graph, "LIC - slow", full_e3_user_ids(emu, 20), [E3])
    result, failed = wait(emu, groups=["LIC - slow"], wait_timeout=1, poll_interval=0.3, fail_on_timeout=False)
    assert not failed and result["timed_out"] is True
    state = result["groups"][0]
    assert state["done"] is False and state["members_pending"] > 0 and state["processing_state"] != "ProcessingComplete"
    result, failed = wait(emu, groups=["LIC - slow"], wait_timeout=0)
    assert failed and result["timed_out"] and "timed out after 0s" in result["msg"] and "member(s) pending" in result["msg"]
    assert result["polls"] == 1


def test_unlicensed_group_with_null_state_is_done_and_unknown_group_fails(emu, graph):
    group = create_security_group(graph, "LIC - nothing yet")
    add_members(graph, group["id"], full_e3_user_ids(emu, 2))
    result, failed = wait(emu, groups=["LIC - nothing yet"])
    assert not failed and result["groups"][0]["processing_state"] is None and result["groups"][0]["done"]
    assert result["groups"][0]["members"] == 2 and result["groups"][0]["skus"] == []
    result, failed = wait(emu, groups=["LIC - nothing yet", "LIC - missing"])
    assert failed and "'LIC - missing': no group has this object id or display name" in result["msg"]
    result, failed = wait(emu, groups=["LIC - nothing yet"], poll_interval=0)
    assert failed and "poll_interval must be a positive number" in result["msg"]


def test_throttling_and_unavailability_storm(emu, graph):
    licensed_group(emu, graph, "LIC - storm", full_e3_user_ids(emu, 12), [E3])
    emu.add_fault(method="GET", route="/members$", status=429, retry_after=0, count=3)
    emu.add_fault(method="GET", route="/groups/", status=503, retry_after=0, count=3)
    result, failed = wait(emu, groups=["LIC - storm"])
    assert not failed, result.get("msg")
    assert result["groups"][0]["members_applied"] == 12
    statuses = emu.stats()["by_status"]
    assert statuses.get("429", statuses.get(429)) and statuses.get("503", statuses.get(503))
