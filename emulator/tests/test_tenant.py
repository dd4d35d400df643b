"""Tenant file format: validation errors, export/load round trip, generator determinism, mix and scale."""

import copy
import json
import resource
import time

import pytest

from graph_emulator.engine import Directory, RequestContext
from graph_emulator.tenant import COLLECTION_PERMISSIONS, STANDARD_DISABLED_PLANS, TenantFormatError, generate_tenant, load_sku_fixture, validate_tenant

CATALOG = load_sku_fixture()
E3 = CATALOG["ENTERPRISEPACK"]["skuId"]


def small(**kwargs):
    return generate_tenant(**dict({"users": 40, "seed": 3}, **kwargs))


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t["tenant"].update(id="abc"), "tenant.id: got 'abc', expected a GUID"),
        (lambda t: t["tenant"].update(countryLetterCode="ZZ"), "tenant.countryLetterCode: got 'ZZ'"),
        (lambda t: t["users"][2].update(usageLocation="USA"), "users[2].usageLocation: got 'USA'"),
        (lambda t: t["users"][1].update(userPrincipalName=t["users"][0]["userPrincipalName"].upper()), "users[1].userPrincipalName"),
        (
            lambda t: t["users"][3]["directLicenses"].append({"skuId": "99999999-9999-4999-8999-999999999999"}),
            "users[3].directLicenses[1].skuId: got '99999999-9999-4999-8999-999999999999', expected the skuId of an entry in subscribedSkus",
        ),
        (
            lambda t: t["users"][4]["directLicenses"][0].update(disabledPlans=[CATALOG["EMS"]["servicePlans"][0]["servicePlanId"]]),
            "users[4].directLicenses[0].disabledPlans[0]",
        ),
        (lambda t: t["groups"][0]["members"].append("00000000-0000-4000-8000-000000000001"), "groups[0].members[5]"),
        (lambda t: t["groups"][0].update(assignedLicenses=[{"skuId": E3}], securityEnabled=False), "groups[0].securityEnabled"),
        (lambda t: t["subscribedSkus"][0]["prepaidUnits"].update(enabled=-1), "subscribedSkus[0].prepaidUnits.enabled: got -1"),
        (lambda t: t.update(rules={"mutuallyExclusivePlans": [["NOT_A_PLAN", "SWAY"]]}), "rules.mutuallyExclusivePlans[0][0]: got 'NOT_A_PLAN'"),
        (lambda t: t["users"][0].update(favouriteColour="blue"), "users[0]: unknown key 'favouriteColour'"),
        (lambda t: t.update(processing={"groupLicenses": "sometime"}), "processing.groupLicenses: got 'sometime'"),
    ],
)
def test_load_rejects_bad_documents_naming_path_and_value(mutate, message):
    tenant = small()
    mutate(tenant)
    with pytest.raises(TenantFormatError) as info:
        Directory(tenant)
    assert message in str(info.value)


def test_validation_normalises_guids_to_lower_case_and_accepts_plan_names_in_rules():
    tenant = small()
    tenant["users"][0]["id"] = tenant["users"][0]["id"].upper()
    tenant["rules"] = {"prohibitedUsageLocations": {"SWAY": ["us"]}, "mutuallyExclusivePlans": [["SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE"]]}
    doc = validate_tenant(tenant)
    assert doc["users"][0]["id"] == tenant["users"][0]["id"].lower()
    sway = next(p["servicePlanId"] for p in CATALOG["ENTERPRISEPACK"]["servicePlans"] if p["servicePlanName"] == "SWAY")
    assert doc["rules"]["prohibitedUsageLocations"] == {sway: ["US"]}


# ---------------------------------------------------------------------------------------------- round trip
def test_export_load_round_trip_keeps_licenses_memberships_units_states_and_pending_work():
    tenant = small()
    d = Directory(tenant, processing_rate=0.0)
    users = [u for _, u in d.iter_users()]
    contractors = next(g for _, g in d.iter_groups() if g["displayName"] == "Contractors")
    ctx = RequestContext(request_id="r1")
    group = d.create_group(
        {"displayName": "GBL", "mailNickname": "gbl", "mailEnabled": False, "securityEnabled": True}, ctx, member_ids=[users[0]["id"], users[1]["id"]]
    )
    d.assign_group_license(group["id"], [{"skuId": E3, "disabledPlans": []}], [], ctx)
    d.process_all()
    d.set_sku_units("EMS", 0)
    d.add_members(group["id"], [users[2]["id"]], ctx)  # left pending: rate 0
    exported = d.export()
    assert exported["processing"]["pending"] == [[group["id"], users[2]["id"]]]
    again = Directory(copy.deepcopy(exported), processing_rate=0.0)
    assert again.export() == exported
    assert json.loads(json.dumps(exported)) == exported
    assert again.subscribed_skus() == d.subscribed_skus()
    assert again.get_user(users[0]["id"])["licenseAssignmentStates"] == d.get_user(users[0]["id"])["licenseAssignmentStates"]
    assert again.get_group(group["id"])["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    assert [m["id"] for m in again.list_members(contractors["id"])] == [m["id"] for m in d.list_members(contractors["id"])]
    again.process_all()
    assert again.get_user(users[2]["id"])["licenseAssignmentStates"][-1]["assignedByGroup"] == group["id"]


def test_load_applies_group_licenses_processed_by_default_or_queued_on_request():
    tenant = small()
    first_user = tenant["users"][0]["id"]
    tenant["groups"].append(
        {
            "id": "00000000-0000-4000-9000-000000000001",
            "displayName": "GBL E3",
            "members": [first_user],
            "assignedLicenses": [{"skuId": E3, "disabledPlans": []}],
        }
    )
    processed = Directory(tenant)
    assert processed.get_group("00000000-0000-4000-9000-000000000001")["licenseProcessingState"] == {"state": "ProcessingComplete"}
    assert len(processed.get_user(first_user)["licenseAssignmentStates"]) == 2
    assert processed.audit_events() == [] and processed.loss_ledger() == []
    tenant["processing"] = {"groupLicenses": "queued"}
    queued = Directory(tenant)
    assert queued.get_group("00000000-0000-4000-9000-000000000001")["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    assert len(queued.get_user(first_user)["licenseAssignmentStates"]) == 1 and queued.pending_work() == 1


# ---------------------------------------------------------------------------------------------- generator
def test_generator_is_deterministic_for_a_seed():
    assert generate_tenant(users=200, seed=5) == generate_tenant(users=200, seed=5)
    assert generate_tenant(users=200, seed=5) != generate_tenant(users=200, seed=6)


def test_generator_mix():
    tenant = generate_tenant(users=1000, seed=11, no_usage_location=3, nested_users=5, disabled_plan_ratio=0.1)
    users = tenant["users"]
    assert len(users) == 1000
    assert all(u["directLicenses"][0]["skuId"] == E3 for u in users)
    with_disabled = [u for u in users if u["directLicenses"][0]["disabledPlans"]]
    assert 50 <= len(with_disabled) <= 150
    assert all(1 <= len(u["directLicenses"][0]["disabledPlans"]) <= 2 for u in with_disabled)
    assert sum(1 for u in users if u["usageLocation"] is None) == 3
    assert len({u["usageLocation"] for u in users}) > 4
    parts = {s["skuPartNumber"]: s for s in tenant["subscribedSkus"]}
    assert {"ENTERPRISEPACK", "STANDARDPACK", "EMS", "SPE_E3", "ENTERPRISEPREMIUM"} <= set(parts)
    assert parts["ENTERPRISEPACK"]["prepaidUnits"]["enabled"] == 1100
    contractors, nested = tenant["groups"]
    assert (contractors["displayName"], nested["displayName"]) == ("Contractors", "All users (nested)")
    assert len(contractors["members"]) == 5 and nested["members"] == [contractors["id"]]
    [app] = tenant["apps"]
    assert set(COLLECTION_PERMISSIONS) <= set(app["permissions"]) and app["secrets"]
    d = Directory(tenant)
    assert next(s for s in d.subscribed_skus() if s["skuPartNumber"] == "ENTERPRISEPACK")["consumedUnits"] == 1000
    assert d.apps[0]["clientId"] == app["clientId"]


def test_generator_rejects_unknown_skus():
    with pytest.raises(ValueError, match="NOT_A_SKU"):
        generate_tenant(users=1, sku="NOT_A_SKU")


def test_add_app_validates_and_registers():
    d = Directory(small())
    app = d.add_app({"displayName": "Reader", "secrets": ["s3cret-value"], "permissions": ["User.Read.All"]})
    assert app["clientId"] in {a["clientId"] for a in d.apps}
    with pytest.raises(TenantFormatError, match="clientId"):
        d.add_app({"clientId": app["clientId"]})


def test_twenty_thousand_users_load_and_iterate_compactly():
    started = time.perf_counter()
    tenant = generate_tenant(users=20_000, seed=1)
    generated = time.perf_counter()
    d = Directory(tenant)
    loaded = time.perf_counter()
    count = sum(1 for _ in d.iter_users())
    iterated = time.perf_counter()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n20k users: generate {generated - started:.2f}s, load {loaded - generated:.2f}s, "
        f"iterate full dicts {iterated - loaded:.2f}s, process peak RSS {peak_mib:.0f} MiB"
    )
    assert count == d.user_count() == 20_000
    selected = [u for _, u in d.iter_users(start=19_990, select=("id",))]
    assert len(selected) == 10 and "assignedPlans" not in selected[0]


# ---------------------------------------------------------------------------------------------- seed profile
def _plan_id(name):
    return next(p["servicePlanId"].lower() for p in CATALOG["ENTERPRISEPACK"]["servicePlans"] if p["servicePlanName"] == name)


def test_seed_profile_is_the_migration_seed_example():
    tenant = generate_tenant(users=1000, seed=1, profile="seed")
    assert tenant == generate_tenant(users=1000, seed=1, profile="seed")
    users = {u["id"]: u for u in tenant["users"]}
    standard = sorted(_plan_id(name) for name in STANDARD_DISABLED_PLANS)
    exceptions = [u for u in users.values() if u["directLicenses"][0]["disabledPlans"] != standard]
    assert len(exceptions) == 12
    # each exception enables exactly one plan of the standard set, and both plans occur
    assert all(len(u["directLicenses"][0]["disabledPlans"]) == 1 for u in exceptions)
    assert {u["directLicenses"][0]["disabledPlans"][0] for u in exceptions} == set(standard)
    without_location = [u for u in users.values() if u["usageLocation"] is None]
    assert len(without_location) == 3
    all_users, contractors = tenant["groups"]
    assert (all_users["displayName"], contractors["displayName"]) == ("All users", "Contractors")
    assert all_users["assignedLicenses"] == [] and all_users["securityEnabled"]
    assert len(contractors["members"]) == 5 and contractors["id"] in all_users["members"]
    assert set(contractors["members"]).isdisjoint(all_users["members"])
    assert set(all_users["members"]) | set(contractors["members"]) == set(users) | {contractors["id"]}
    special = [{u["id"] for u in exceptions}, {u["id"] for u in without_location}, set(contractors["members"])]
    assert sum(len(s) for s in special) == len(set().union(*special)) == 20  # one reason per special user
    # a rehearsed rollback sets the usage location of users who have none (PATCH /users needs User.ReadWrite.All)
    assert "User.ReadWrite.All" in tenant["apps"][0]["permissions"]
    assert "User.ReadWrite.All" not in generate_tenant(users=1, seed=1)["apps"][0]["permissions"]


def test_seed_profile_under_group_licensing_the_nested_lose_nothing_and_exceptions_keep_their_plan_only_directly():
    tenant = generate_tenant(users=60, seed=2, profile="seed", plan_exceptions=2, no_usage_location=2, nested_users=2)
    d = Directory(tenant)
    all_users, contractors = tenant["groups"]
    standard = sorted(_plan_id(name) for name in STANDARD_DISABLED_PLANS)
    d.assign_group_license(all_users["id"], [{"skuId": E3, "disabledPlans": standard}], [], RequestContext(request_id="r1"))
    d.process_all()
    for user in tenant["users"]:
        states = d.get_user(user["id"])["licenseAssignmentStates"]
        inherited = [s for s in states if s["assignedByGroup"]]
        if user["id"] in contractors["members"]:
            assert inherited == []  # nested: Entra licenses direct members only
        else:
            # tenant country stands in for a missing usage location
            assert [s["state"] for s in inherited] == ["Active"], (user["usageLocation"], inherited)
    assert d.loss_ledger() == []


def test_generator_rejects_an_unknown_profile_and_negative_counts():
    with pytest.raises(ValueError, match="profile: got 'demo'"):
        generate_tenant(users=1, profile="demo")
    with pytest.raises(ValueError, match="plan_exceptions: got -1"):
        generate_tenant(users=1, profile="seed", plan_exceptions=-1)
    with pytest.raises(ValueError, match="KAIZALA_O365_P3"):
        generate_tenant(users=1, profile="seed", sku="STANDARDPACK")


# ---------------------------------------------------------------------------------------------- dynamic and synced groups (issue 15)
def dynamic(t, **extra):
    t["groups"][0].update(dict({"groupTypes": ["DynamicMembership"], "membershipRule": 'user.department -eq "Sales"', "members": []}, **extra))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: dynamic(t, membershipRule='user.department -eq "Sales'), "groups[0].membershipRule: got 'user.department -eq \"Sales'"),
        (lambda t: dynamic(t, membershipRule='user.department -eq "Sales'), "at position 20"),
        (lambda t: dynamic(t, membershipRuleProcessingState="Off"), "groups[0].membershipRuleProcessingState: got 'Off', expected one of On, Paused"),
        (lambda t: dynamic(t, members=[t["groups"][1]["id"]]), "groups[0].members[0]"),
        (lambda t: t["groups"][0].update(membershipRule="user.objectId -ne null"), "groups[0].membershipRule"),
        (lambda t: dynamic(t, onPremisesSyncEnabled=True), "groups[0].onPremisesSyncEnabled"),
        (lambda t: t["groups"][0].update(onPremisesSyncEnabled=True), "groups[0].members[0]"),
        (lambda t: t["users"][0].update(onPremisesSyncEnabled=False), "users[0].onPremisesSyncEnabled: got false"),
        (lambda t: t["users"][0].update(userType="Robot"), "users[0].userType: got 'Robot'"),
        (lambda t: t["users"][0].update(onPremisesExtensionAttributes={"extensionAttribute16": "x"}), "unknown key 'extensionAttribute16'"),
    ],
)
def test_load_rejects_bad_dynamic_and_synced_groups_naming_path_and_value(mutate, message):
    tenant = small()
    mutate(tenant)
    with pytest.raises(TenantFormatError) as info:
        Directory(tenant)
    assert message in str(info.value)


def test_a_dynamic_group_without_a_recorded_status_is_evaluated_at_load_and_everything_round_trips():
    tenant = small()
    dynamic(tenant)
    tenant["users"][0]["onPremisesExtensionAttributes"] = {"extensionAttribute2": "x"}
    directory = Directory(tenant)
    group = directory.get_group(tenant["groups"][0]["id"])
    sales = {u["id"] for u in tenant["users"] if u["department"] == "Sales"}
    assert {mid for mid, _ in directory.member_refs(group["id"])} == sales
    assert group["membershipRuleProcessingStatus"]["status"] == "Succeeded"
    exported = directory.export()
    assert Directory(exported).export() == exported
    assert exported["users"][0]["onPremisesExtensionAttributes"]["extensionAttribute2"] == "x"
    assert len(exported["users"][0]["onPremisesExtensionAttributes"]) == 15
    for profile in ("dynamic", "hybrid"):
        generated = Directory(generate_tenant(users=50, seed=2, profile=profile)).export()
        assert Directory(generated).export() == generated
