"""The generator's multisku profile (multisku.py): two to four SKUs per user, a group with two SKUs, add-ons staying direct."""

from collections import Counter

from graph_emulator import Emulator, generate_tenant
from graph_emulator.multisku import MULTI_GROUP_NAME

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def parts(tenant):
    return {s["skuId"]: s["skuPartNumber"] for s in tenant["subscribedSkus"]}


def test_users_hold_two_to_four_skus_within_the_units():
    tenant = generate_tenant(users=300, seed=7, profile="multisku")
    counts = Counter(len(u["directLicenses"]) for u in tenant["users"])
    assert set(counts) == {2, 3, 4}
    assert all(u["directLicenses"][0]["skuId"] == E3 for u in tenant["users"])
    names = parts(tenant)
    held = Counter(names[lic["skuId"]] for u in tenant["users"] for lic in u["directLicenses"])
    assert set(held) == {"ENTERPRISEPACK", "EMS", "MCOMEETADV", "WORKPLACE_ANALYTICS"}
    units = {s["skuPartNumber"]: s["prepaidUnits"]["enabled"] for s in tenant["subscribedSkus"]}
    assert all(units[part] >= count for part, count in held.items())
    assert generate_tenant(users=300, seed=7, profile="multisku") == tenant  # deterministic for a seed


def test_a_group_carries_e3_and_ems_and_the_other_add_ons_stay_direct():
    tenant = generate_tenant(users=120, seed=3, profile="multisku")
    names = parts(tenant)
    group = next(g for g in tenant["groups"] if g["displayName"] == MULTI_GROUP_NAME)
    assert sorted(names[lic["skuId"]] for lic in group["assignedLicenses"]) == ["EMS", "ENTERPRISEPACK"]
    ems_holders = {u["id"] for u in tenant["users"] if any(names[lic["skuId"]] == "EMS" for lic in u["directLicenses"])}
    assert set(group["members"]) == ems_holders and ems_holders
    with Emulator(tenant=tenant) as emu:
        assert emu.directory.get_group(group["id"])["licenseProcessingState"] == {"state": "ProcessingComplete"}
        member = emu.directory.get_user(sorted(ems_holders)[0])
        inherited = {names[s["skuId"]] for s in member["licenseAssignmentStates"] if s["assignedByGroup"] == group["id"]}
        direct = {names[s["skuId"]] for s in member["licenseAssignmentStates"] if s["assignedByGroup"] is None}
        assert inherited == {"ENTERPRISEPACK", "EMS"} and inherited <= direct
        assert all(s["state"] == "Active" for s in member["licenseAssignmentStates"])
        assert emu.loss_ledger() == []


def test_add_ons_need_the_plans_their_rules_require():
    tenant = generate_tenant(users=400, seed=11, profile="multisku", disabled_plan_ratio=1.0)
    names = parts(tenant)
    required = {plan: set(req) for plan, req in tenant["rules"]["planDependencies"].items()}
    plans = {s["skuId"]: [p["servicePlanId"].lower() for p in s["servicePlans"]] for s in tenant["subscribedSkus"]}
    for user in tenant["users"]:
        disabled = set(p.lower() for p in user["directLicenses"][0]["disabledPlans"])
        for lic in user["directLicenses"][1:]:
            for plan in plans[lic["skuId"]]:
                assert not required.get(plan) or required[plan] - disabled, (user["userPrincipalName"], names[lic["skuId"]])
    with Emulator(tenant=tenant):
        pass  # loads: no rule refuses the generated tenant
