# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""group_license in-process against the Graph emulator (real HTTPS, real msal)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest


from graph_emulator import generate_tenant

from ansible_collections.entraops.licensing.plugins.module_utils.directory import add_members, create_security_group
from ansible_collections.entraops.licensing.plugins.modules import group_license
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import emulator_connection as connection, graph_writes as writes, run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"


@pytest.fixture
def emu(emulator):
    original = emulator.export_state()
    emulator.load_state(generate_tenant(users=40, seed=3))
    emulator.reset_stats()
    yield emulator
    assert emulator.loss_ledger() == []
    emulator.load_state(original)


@pytest.fixture
def graph(emu, make_client):
    return make_client(backoff_base=0.01, backoff_cap=0.05, max_retry_time=20)


def run(emu, **args):
    return run_module(group_license.main, dict(connection(emu), **args))


def full_e3_user_ids(emu, count):
    """Users whose direct E3 enables every plan: a group change can never take a plan from them."""
    return [u["id"] for u in emu.export_state()["users"] if u.get("directLicenses") and not u["directLicenses"][0]["disabledPlans"]][:count]


def make_group(emu, graph, name, member_count=0):
    group = create_security_group(graph, name)
    if member_count:
        add_members(graph, group["id"], full_e3_user_ids(emu, member_count))
    emu.reset_stats()
    return group


def carried(emu, group_id):
    group = [g for g in emu.export_state()["groups"] if g["id"] == group_id][0]
    return dict((lic["skuId"], sorted(lic["disabledPlans"])) for lic in group["assignedLicenses"])


def test_assign_diff_and_idempotent_by_enabled_plans(emu, graph):
    emu.configure(unknown_processing_states=False)  # asserts the documented states (ENTRAOPS_STRICT_EMULATOR may hide them)
    group = make_group(emu, graph, "LIC - E3", member_count=5)
    result, failed = run(emu, group="LIC - E3", licenses=[{"sku": "enterprisepack", "disabled_plans": ["sway"]}], _ansible_diff=True)
    assert not failed, result
    assert result["changed"] and result["group"] == {"id": group["id"], "display_name": "LIC - E3"}
    assert result["licenses"]["before"] == {}
    assert "SWAY" not in result["licenses"]["after"]["ENTERPRISEPACK"] and "EXCHANGE_S_ENTERPRISE" in result["licenses"]["after"]["ENTERPRISEPACK"]
    assert result["diff"]["after"]["licenses"] == result["licenses"]["after"]
    assert result["new_consumers"] == {"ENTERPRISEPACK": 0} and result["members"] == 5  # they hold E3 directly already
    assert result["processing_state"] in ("QueuedForProcessing", "ProcessingInProgress", "ProcessingComplete")
    assert [w["path"] for w in writes(emu)] == ["/v1.0/groups/%s/assignLicense" % group["id"]]
    assert carried(emu, group["id"]) == {E3: [SWAY]}
    emu.reset_stats()
    enabled = list(result["licenses"]["after"]["ENTERPRISEPACK"])
    again, failed = run(emu, group=group["id"].upper(), licenses=[{"sku": E3, "enabled_plans": list(reversed(enabled))}])
    assert not failed and again["changed"] is False and writes(emu) == []
    assert again["licenses"]["before"] == again["licenses"]["after"] == result["licenses"]["after"]


def test_check_mode_writes_nothing(emu, graph):
    group = make_group(emu, graph, "LIC - check")
    result, failed = run(emu, group="LIC - check", licenses=[{"sku": "EMS"}], _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"] and "EMS" in result["licenses"]["after"]
    assert result["diff"]["before"]["licenses"] == {}
    assert writes(emu) == [] and carried(emu, group["id"]) == {}


@pytest.mark.parametrize(
    "licenses, message",
    [
        ([{"sku": "NOPE"}], "'NOPE' is not a subscribed SKU"),
        ([{"sku": "ENTERPRISEPACK", "disabled_plans": ["NOT_A_PLAN"]}], "'NOT_A_PLAN' is not a service plan of SKU ENTERPRISEPACK"),
        ([{"sku": "EMS"}, {"sku": EMS}], "names SKU EMS a second time"),
        ([{"sku": "ENTERPRISEPACK", "disabled_plans": ["not-a-guid-{"]}], "is not a service plan of SKU ENTERPRISEPACK"),
    ],
)
def test_bad_input_fails_before_any_write(emu, graph, licenses, message):
    make_group(emu, graph, "LIC - bad")
    result, failed = run(emu, group="LIC - bad", licenses=licenses)
    assert failed and message in result["msg"], result["msg"]
    assert writes(emu) == []


def test_both_plan_lists_are_refused(emu, graph):
    make_group(emu, graph, "LIC - both")
    result, failed = run(emu, group="LIC - both", licenses=[{"sku": "EMS", "disabled_plans": [], "enabled_plans": []}])
    assert failed and "mutually exclusive" in result["msg"]
    assert writes(emu) == []


def test_unknown_group_fails(emu):
    result, failed = run(emu, group="LIC - nowhere", licenses=[{"sku": "EMS"}])
    assert failed and "'LIC - nowhere': no group has this object id or display name" in result["msg"]
    result, failed = run(emu, group="LIC - nowhere", licenses=[{"sku": "EMS"}], state="absent", exclusive=True)
    assert failed and "exclusive=true applies only to state=present" in result["msg"]


def test_service_loss_is_refused_unless_allowed(emu, graph):
    group = make_group(emu, graph, "LIC - loss", member_count=4)
    run(emu, group="LIC - loss", licenses=[{"sku": "ENTERPRISEPACK"}])
    emu.process_all()
    emu.reset_stats()
    result, failed = run(emu, group="LIC - loss", licenses=[{"sku": "ENTERPRISEPACK", "disabled_plans": ["SWAY"]}])
    assert failed and "would lose services (ENTERPRISEPACK: SWAY)" in result["msg"]
    assert result["service_loss"] == {"ENTERPRISEPACK": ["SWAY"]}
    assert writes(emu) == []
    # the members hold full E3 directly as well, so allowing the change loses them nothing (the ledger stays empty)
    result, failed = run(emu, group="LIC - loss", licenses=[{"sku": "ENTERPRISEPACK", "disabled_plans": ["SWAY"]}], allow_service_loss=True)
    assert not failed and result["changed"] and carried(emu, group["id"]) == {E3: [SWAY]}
    emu.process_all()


def test_insufficient_units_fail_with_the_shortfall_unless_allowed(emu, graph):
    group = make_group(emu, graph, "LIC - units", member_count=30)
    result, failed = run(emu, group="LIC - units", licenses=[{"sku": "ENTERPRISEPACK"}, {"sku": "EMSPREMIUM"}])
    assert failed and "EMSPREMIUM needs 5 more unit(s) (25 available, 30 member(s) do not hold it yet)" in result["msg"]
    assert "all-or-nothing" in result["msg"] and result["shortfall"] == {"EMSPREMIUM": 5}
    assert writes(emu) == [] and carried(emu, group["id"]) == {}
    result, failed = run(emu, group="LIC - units", licenses=[{"sku": "ENTERPRISEPACK"}, {"sku": "EMSPREMIUM"}], allow_insufficient_units=True)
    assert not failed and result["changed"]
    assert any("EMSPREMIUM needs 5 more unit(s)" in warning for warning in result["warnings"])
    emu.process_all()
    states = [u for u in emu.export_state()["users"] if any(g["groupId"] == group["id"] for g in u.get("groupLicenses") or [])]
    errors = [g for u in states for g in u["groupLicenses"] if g["groupId"] == group["id"] and g.get("error") == "CountViolation"]
    assert len(errors) == 5


def test_exclusive_and_absent_on_a_group_without_members(emu, graph):
    group = make_group(emu, graph, "LIC - empty")
    run(emu, group="LIC - empty", licenses=[{"sku": "EMS"}, {"sku": "AAD_PREMIUM"}])
    emu.reset_stats()
    result, failed = run(emu, group="LIC - empty", licenses=[{"sku": "EMS"}], exclusive=True, _ansible_diff=True)
    assert not failed and result["changed"] and set(result["licenses"]["after"]) == {"EMS"}
    assert result["service_loss"] == {"AAD_PREMIUM": result["licenses"]["before"]["AAD_PREMIUM"]}
    assert set(carried(emu, group["id"])) == {EMS}
    result, failed = run(emu, group="LIC - empty", licenses=[{"sku": "EMS"}], state="absent")
    assert not failed and result["changed"] and carried(emu, group["id"]) == {}
    emu.reset_stats()
    result, failed = run(emu, group="LIC - empty", licenses=[{"sku": "EMS"}], state="absent")
    assert not failed and result["changed"] is False and writes(emu) == []


def test_throttling_and_unavailability_storm(emu, graph):
    group = make_group(emu, graph, "LIC - storm", member_count=10)
    emu.add_fault(method="POST", route="/assignLicense$", status=429, retry_after=0, count=3)
    emu.add_fault(method="GET", route="/groups", status=503, retry_after=0, count=3)
    emu.add_fault(method="GET", route="/subscribedSkus", status=429, retry_after=0, count=2)
    result, failed = run(emu, group="LIC - storm", licenses=[{"sku": "ENTERPRISEPACK"}])
    assert not failed, result
    assert carried(emu, group["id"]) == {E3: []}
    assert len([w for w in writes(emu) if w["status"] == 202]) == 1
    emu.process_all()
