"""Behaviour of the licensing engine alone (no HTTP): facts of graph-api.md 1-3, 8 and entra-licensing.md 1-6, 10-12."""

import pytest

from graph_emulator.engine import Directory, GraphError, RequestContext
from graph_emulator.tenant import load_sku_fixture

CATALOG = load_sku_fixture()
TENANT_ID = "11111111-2222-4333-8444-555555555555"


def sku_id(part):
    return CATALOG[part]["skuId"].lower()


def plan_id(part, name):
    return next(p["servicePlanId"].lower() for p in CATALOG[part]["servicePlans"] if p["servicePlanName"] == name)


E3, E1, EMS = sku_id("ENTERPRISEPACK"), sku_id("STANDARDPACK"), sku_id("EMS")
AUDIOCONF, WA = sku_id("MCOMEETADV"), sku_id("WORKPLACE_ANALYTICS")
SWAY, YAMMER = plan_id("ENTERPRISEPACK", "SWAY"), plan_id("ENTERPRISEPACK", "YAMMER_ENTERPRISE")
SP_STANDARD, SP_ENTERPRISE = plan_id("STANDARDPACK", "SHAREPOINTSTANDARD"), plan_id("ENTERPRISEPACK", "SHAREPOINTENTERPRISE")
OFFICE = plan_id("ENTERPRISEPACK", "OFFICESUBSCRIPTION")
MCOSTANDARD = plan_id("ENTERPRISEPACK", "MCOSTANDARD")
AUDIOCONF_PLAN = CATALOG["MCOMEETADV"]["servicePlans"][0]["servicePlanId"].lower()


def uid(n):
    return f"00000000-0000-4000-8000-{n:012d}"


def gid(n):
    return f"00000000-0000-4000-9000-{n:012d}"


def sku_doc(part, units):
    sku = CATALOG[part]
    return {
        "skuId": sku["skuId"],
        "skuPartNumber": part,
        "prepaidUnits": {"enabled": units},
        "servicePlans": [{"servicePlanId": p["servicePlanId"], "servicePlanName": p["servicePlanName"]} for p in sku["servicePlans"]],
    }


def user_doc(n, location="US", direct=()):
    return {
        "id": uid(n),
        "userPrincipalName": f"user{n}@contoso.com",
        "displayName": f"User {n}",
        "usageLocation": location,
        "directLicenses": [{"skuId": s, "disabledPlans": list(d)} for s, d in direct],
    }


def group_doc(n, members=(), licenses=(), security=True):
    return {
        "id": gid(n),
        "displayName": f"Group {n}",
        "securityEnabled": security,
        "members": list(members),
        "assignedLicenses": [{"skuId": s, "disabledPlans": list(d)} for s, d in licenses],
    }


def make_tenant(users=(), groups=(), units=None, rules=None):
    units = dict({"ENTERPRISEPACK": 10, "STANDARDPACK": 10, "EMS": 10, "MCOMEETADV": 10, "WORKPLACE_ANALYTICS": 10}, **(units or {}))
    return {
        "tenant": {"id": TENANT_ID, "displayName": "Test", "defaultDomain": "contoso.com", "countryLetterCode": "US"},
        "subscribedSkus": [sku_doc(part, count) for part, count in units.items()],
        "users": list(users),
        "groups": list(groups),
        "rules": rules or {},
    }


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def ctx(name="req"):
    return RequestContext(request_id=f"{name}-id", method="POST", path=f"/v1.0/{name}", app_id="app", app_display_name="Tester")


def directory(tenant, rate=1000.0):
    clock = FakeClock()
    return Directory(tenant, processing_rate=rate, clock=clock), clock


def states(d, n, sku=None):
    return [s for s in d.get_user(uid(n))["licenseAssignmentStates"] if sku is None or s["skuId"] == sku]


def consumed(d, sku):
    return next(s["consumedUnits"] for s in d.subscribed_skus() if s["skuId"] == sku)


def assert_graph_error(call, status, message_part, code=None):
    with pytest.raises(GraphError) as info:
        call()
    assert info.value.status == status
    assert message_part in info.value.message
    if code:
        assert info.value.code == code
    return info.value


# ---------------------------------------------------------------------------------------------- direct assignment
def test_direct_assignment_returns_the_user_with_the_license():
    d, _ = directory(make_tenant([user_doc(1)]))
    user = d.assign_user_license(uid(1), [{"skuId": E3, "disabledPlans": [SWAY]}], [], ctx())
    assert user["assignedLicenses"] == [{"disabledPlans": [SWAY], "skuId": E3}]
    assert user["licenseAssignmentStates"][0]["assignedByGroup"] is None
    assert user["licenseAssignmentStates"][0]["state"] == "Active" and user["licenseAssignmentStates"][0]["error"] == "None"
    assert consumed(d, E3) == 1
    assert SWAY not in {p["servicePlanId"] for p in user["assignedPlans"]}


def test_direct_add_replaces_the_disabled_plans_of_the_direct_copy():
    d, _ = directory(make_tenant([user_doc(1, direct=[(E3, [SWAY])])]))
    d.assign_user_license(uid(1), [{"skuId": E3, "disabledPlans": [YAMMER]}], [], ctx())
    assert states(d, 1) == [dict(states(d, 1)[0], disabledPlans=[YAMMER])]
    assert consumed(d, E3) == 1


@pytest.mark.parametrize(
    "case", ["unknown_sku", "no_location", "invalid_location", "no_units", "not_held", "inherited_only", "mutually_exclusive", "bad_disabled_plan", "bad_guid"]
)
def test_direct_assignment_errors_are_immediate_and_change_nothing(case):
    unknown = "99999999-9999-4999-8999-999999999999"
    tenant = make_tenant(
        [user_doc(1, direct=[(E1, [])]), user_doc(2, location=None), user_doc(3), user_doc(4, direct=[(EMS, [])])],
        [group_doc(1, members=[uid(3)], licenses=[(E3, [])])],
        units={"EMS": 1},
        rules={"mutuallyExclusivePlans": [[SP_STANDARD, SP_ENTERPRISE]]},
    )
    d, _ = directory(tenant)
    if case == "invalid_location":
        d._users[uid(2)].usage_location = "XX"  # a value Graph would never store; still rejected
    calls = {
        "unknown_sku": (1, [{"skuId": unknown, "disabledPlans": []}], [], f"License {unknown} does not correspond to a valid company License."),
        "no_location": (2, [{"skuId": E3, "disabledPlans": []}], [], "License assignment cannot be done for user with invalid usage location."),
        "invalid_location": (2, [{"skuId": E3, "disabledPlans": []}], [], "License assignment cannot be done for user with invalid usage location."),
        "no_units": (3, [{"skuId": EMS, "disabledPlans": []}], [], f"Subscription with SKU {EMS} does not have any available licenses."),
        "not_held": (3, [], [EMS], "User does not have a corresponding license."),
        "inherited_only": (3, [], [E3], "User license is inherited from a group membership and it cannot be removed directly from the user."),
        "mutually_exclusive": (1, [{"skuId": E3, "disabledPlans": []}], [], "Conflicting Service Plans: SHAREPOINTENTERPRISE, SHAREPOINTSTANDARD."),
        "bad_disabled_plan": (4, [{"skuId": E1, "disabledPlans": [OFFICE]}], [], f"Service plan {OFFICE} does not belong"),
        "bad_guid": (3, [{"skuId": "not-a-guid", "disabledPlans": []}], [], "not-a-guid"),
    }
    n, add, remove, message = calls[case]
    before_user, before_skus = d.get_user(uid(n)), d.subscribed_skus()
    error = assert_graph_error(lambda: d.assign_user_license(uid(n), add, remove, ctx()), 400, message, "Request_BadRequest")
    assert error.code == "Request_BadRequest"
    assert d.get_user(uid(n)) == before_user
    assert d.subscribed_skus() == before_skus
    assert d.loss_ledger() == []


def test_direct_assignment_validation_order_unknown_sku_before_usage_location():
    d, _ = directory(make_tenant([user_doc(2, location=None)]))
    unknown = "99999999-9999-4999-8999-999999999999"
    assert_graph_error(
        lambda: d.assign_user_license(uid(2), [{"skuId": unknown, "disabledPlans": []}], [], ctx()), 400, "does not correspond to a valid company License"
    )


def test_user_already_consuming_a_sku_can_change_it_with_zero_free_units():
    d, _ = directory(make_tenant([user_doc(1, direct=[(EMS, [])])], units={"EMS": 1}))
    assert consumed(d, EMS) == 1
    user = d.assign_user_license(uid(1), [{"skuId": EMS, "disabledPlans": []}], [], ctx())
    assert user["assignedLicenses"][0]["skuId"] == EMS


def test_unknown_user_is_404():
    d, _ = directory(make_tenant())
    assert_graph_error(lambda: d.get_user(uid(9)), 404, f"Resource '{uid(9)}' does not exist", "Request_ResourceNotFound")
    assert_graph_error(lambda: d.assign_user_license(uid(9), [], [], ctx()), 404, uid(9))


def test_get_user_by_upn_is_case_insensitive():
    d, _ = directory(make_tenant([user_doc(1)]))
    assert d.get_user("USER1@Contoso.com")["id"] == uid(1)


def test_patch_assigned_licenses_is_read_only_and_usage_location_is_validated():
    d, _ = directory(make_tenant([user_doc(1)]))
    assert_graph_error(lambda: d.update_user(uid(1), {"assignedLicenses": []}, ctx()), 400, "Property 'assignedLicenses' is read-only and cannot be set.")
    assert_graph_error(lambda: d.update_user(uid(1), {"usageLocation": "XX"}, ctx()), 400, "usageLocation")
    d.update_user(uid(1), {"usageLocation": "gb", "displayName": "Renamed"}, ctx())
    user = d.get_user(uid(1))
    assert (user["usageLocation"], user["displayName"]) == ("GB", "Renamed")
    d.update_user(uid(1), {"usageLocation": None}, ctx())
    assert d.get_user(uid(1))["usageLocation"] is None


# ---------------------------------------------------------------------------------------------- combining sources
def test_one_unit_per_user_per_sku_across_direct_and_several_groups():
    tenant = make_tenant([user_doc(1, direct=[(E3, [SWAY])])], [group_doc(1, [uid(1)], [(E3, [YAMMER])]), group_doc(2, [uid(1)], [(E3, [])])])
    d, _ = directory(tenant)
    assert consumed(d, E3) == 1
    assert len(states(d, 1, E3)) == 3
    assert {s["assignedByGroup"] for s in states(d, 1)} == {None, gid(1), gid(2)}


def test_group_adding_a_sku_the_user_holds_directly_needs_no_free_unit():
    d, _ = directory(make_tenant([user_doc(1, direct=[(E3, [])]), user_doc(2)], [group_doc(1)], units={"ENTERPRISEPACK": 1}))
    d.add_members(gid(1), [uid(1)], ctx())
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert [s["state"] for s in states(d, 1)] == ["Active", "Active"]
    assert consumed(d, E3) == 1


def test_enabled_plans_are_the_union_and_disabled_plans_the_intersection():
    d, _ = directory(
        make_tenant([user_doc(1, direct=[(E3, [SWAY])]), user_doc(2, direct=[(E3, [SWAY, YAMMER])])], [group_doc(1, [uid(1), uid(2)], [(E3, [YAMMER, SWAY])])])
    )
    one, two = d.get_user(uid(1)), d.get_user(uid(2))
    assert one["assignedLicenses"] == [{"disabledPlans": [SWAY], "skuId": E3}]  # YAMMER enabled by the direct copy
    assert two["assignedLicenses"] == [{"disabledPlans": sorted([SWAY, YAMMER]), "skuId": E3}]
    assert YAMMER in {p["servicePlanId"] for p in one["assignedPlans"]}


def test_sku_held_directly_and_by_a_group_appears_twice_in_license_assignment_states():
    d, _ = directory(make_tenant([user_doc(1, direct=[(E3, [])])], [group_doc(1, [uid(1)], [(E3, [SWAY])])]))
    entries = states(d, 1, E3)
    assert sorted((e["assignedByGroup"] or "", tuple(e["disabledPlans"])) for e in entries) == [("", ()), (gid(1), (SWAY,))]
    assert all(e["state"] == "Active" and e["error"] == "None" and e["lastUpdatedDateTime"] for e in entries)
    assert len(d.get_user(uid(1))["assignedLicenses"]) == 1
    assert [lic["skuPartNumber"] for lic in d.license_details(uid(1))] == ["ENTERPRISEPACK"]


# ---------------------------------------------------------------------------------------------- group processing
def test_group_assignment_goes_through_the_documented_states_at_the_configured_rate():
    tenant = make_tenant([user_doc(n) for n in range(1, 5)], [group_doc(1, [uid(n) for n in range(1, 5)])])
    d, clock = directory(tenant, rate=2.0)
    assert d.get_group(gid(1))["licenseProcessingState"] is None
    group = d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx("setlicense"))
    assert group["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    assert d.pending_work() == 4
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    clock.now += 0.5  # one evaluation at 2 per second
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"] == {"state": "ProcessingInProgress"}
    assert d.pending_work() == 3
    assert len(states(d, 1)) == 1 and states(d, 2) == []
    clock.now += 1.0
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"] == {"state": "ProcessingInProgress"}
    clock.now += 10.0
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"] == {"state": "ProcessingComplete"}
    assert d.pending_work() == 0
    assert all(states(d, n)[0]["state"] == "Active" for n in range(1, 5))
    assert consumed(d, E3) == 4
    activities = [e["activityDisplayName"] for e in d.audit_events()]
    assert activities[0] == "Set group license"
    assert activities.index("Start applying group based license to users") < activities.index("Finish applying group based license to users")
    finish = [e for e in d.audit_events() if e["activityDisplayName"] == "Finish applying group based license to users"][0]
    assert finish["initiatedBy"]["app"]["displayName"] == "Microsoft Azure AD Group-Based Licensing"
    assert finish["targetResources"][0]["id"] == gid(1)
    assert (
        finish["targetResources"][0]["modifiedProperties"][0]["newValue"]
        == "[Users successfully assigned licenses: 4, Users for whom license assignment failed: 0.];"
    )


def test_time_scale_speeds_up_processing_and_idle_time_gives_no_credit():
    d, clock = directory(make_tenant([user_doc(n) for n in range(1, 5)], [group_doc(1, [uid(n) for n in range(1, 5)])]), rate=1.0)
    clock.now += 1000.0  # idle before any work: must not pre-pay processing
    d.advance()
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.advance()
    assert d.pending_work() == 4
    d.configure(time_scale=4.0)
    clock.now += 0.5  # 2 emulated seconds
    d.advance()
    assert d.pending_work() == 2


def test_empty_group_still_completes_in_the_background():
    d, clock = directory(make_tenant([], [group_doc(1)]), rate=10.0)
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    assert d.get_group(gid(1))["licenseProcessingState"]["state"] == "QueuedForProcessing"
    clock.now += 1
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"]["state"] == "ProcessingComplete"


def test_only_direct_user_members_get_group_licenses_not_nested_ones():
    tenant = make_tenant([user_doc(1), user_doc(2)], [group_doc(1, [uid(1), gid(2)]), group_doc(2, [uid(2)])])
    d, _ = directory(tenant)
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert states(d, 1)[0]["assignedByGroup"] == gid(1)
    assert states(d, 2) == []
    assert {m["id"] for m in d.list_transitive_members(gid(1))} == {uid(1), gid(2), uid(2)}
    assert [m["@odata.type"] for m in d.list_members(gid(1))] == ["#microsoft.graph.user", "#microsoft.graph.group"]
    assert [g["id"] for g in d.member_of(uid(2))] == [gid(2)]


def test_group_must_be_security_enabled_and_licensed_groups_cannot_be_deleted():
    d, _ = directory(make_tenant([], [group_doc(1, security=False), group_doc(2)]))
    assert_graph_error(lambda: d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx()), 400, "security")
    d.assign_group_license(gid(2), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    assert_graph_error(lambda: d.delete_group(gid(2), ctx()), 400, "licenses")
    d.assign_group_license(gid(2), [], [E3], ctx())
    d.delete_group(gid(2), ctx())
    assert_graph_error(lambda: d.get_group(gid(2)), 404, gid(2))


def test_users_without_usage_location_are_evaluated_with_the_tenant_country_which_is_never_written():
    d, _ = directory(make_tenant([user_doc(1, location=None)], [group_doc(1, [uid(1)])]))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    user = d.get_user(uid(1))
    assert user["licenseAssignmentStates"][0]["state"] == "Active"
    assert user["usageLocation"] is None


def test_prohibited_usage_location_uses_the_tenant_country_as_fallback():
    rules = {"prohibitedUsageLocations": {"SWAY": ["US"]}}
    d, _ = directory(
        make_tenant([user_doc(1, location=None), user_doc(2, location="GB"), user_doc(3, location="US")], [group_doc(1, [uid(1), uid(2), uid(3)])], rules=rules)
    )
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert (states(d, 1)[0]["state"], states(d, 1)[0]["error"]) == ("Error", "ProhibitedInUsageLocationViolation")
    assert states(d, 2)[0]["state"] == "Active"
    assert states(d, 3)[0]["error"] == "ProhibitedInUsageLocationViolation"
    assert d.get_user(uid(1))["assignedLicenses"] == []
    assert {u["id"] for u in d.members_with_license_errors(gid(1))} == {uid(1), uid(3)}
    assert d.get_group(gid(1))["hasMembersWithLicenseErrors"] is True


def test_all_or_nothing_per_group_with_count_violation():
    d, _ = directory(make_tenant([user_doc(1), user_doc(2)], [group_doc(1, [uid(1), uid(2)])], units={"EMS": 1}))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}, {"skuId": EMS, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert {(s["skuId"], s["state"]) for s in states(d, 1)} == {(E3, "Active"), (EMS, "Active")}
    second = states(d, 2)
    assert {(s["skuId"], s["state"], s["error"]) for s in second} == {(E3, "Error", "CountViolation"), (EMS, "Error", "CountViolation")}
    assert d.get_user(uid(2))["assignedLicenses"] == []
    assert (consumed(d, E3), consumed(d, EMS)) == (1, 1)
    assert [u["id"] for u in d.members_with_license_errors(gid(1))] == [uid(2)]
    finish = [e for e in d.audit_events() if e["activityDisplayName"].startswith("Finish")][-1]
    assert (
        "Users successfully assigned licenses: 1, Users for whom license assignment failed: 1."
        in finish["targetResources"][0]["modifiedProperties"][0]["newValue"]
    )


def test_mutually_exclusive_violation_and_group_level_conflict():
    rules = {"mutuallyExclusivePlans": [["SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE"]]}
    d, _ = directory(make_tenant([user_doc(1, direct=[(E1, [])]), user_doc(2)], [group_doc(1, [uid(1), uid(2)])], rules=rules))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert states(d, 1, E3)[0]["error"] == "MutuallyExclusiveViolation"
    assert states(d, 2, E3)[0]["state"] == "Active"
    # Disabling the conflicting plan in the group resolves it on the next processing.
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": [SP_ENTERPRISE]}], [], ctx())
    d.process_all()
    assert states(d, 1, E3)[0]["state"] == "Active"
    assert_graph_error(
        lambda: d.assign_group_license(gid(1), [{"skuId": E1, "disabledPlans": []}, {"skuId": E3, "disabledPlans": []}], [], ctx()),
        400,
        "Conflicting Service Plans",
    )


def test_dependency_violation_on_removal_keeps_the_license():
    rules = {"planDependencies": {AUDIOCONF_PLAN: [MCOSTANDARD]}}
    d, _ = directory(make_tenant([user_doc(1, direct=[(AUDIOCONF, [])])], [group_doc(1, [uid(1)], [(E3, [])])], rules=rules))
    assert states(d, 1, E3)[0]["state"] == "Active"
    d.remove_member(gid(1), uid(1), ctx("remove"))
    d.process_all()
    entry = states(d, 1, E3)[0]
    assert (entry["state"], entry["error"]) == ("ActiveWithError", "DependencyViolation")
    assert consumed(d, E3) == 1
    assert d.loss_ledger() == []
    assert [u["id"] for u in d.members_with_license_errors(gid(1))] == [uid(1)]
    d.add_members(gid(1), [uid(1)], ctx("readd"))
    d.process_all()
    assert (states(d, 1, E3)[0]["state"], states(d, 1, E3)[0]["error"]) == ("Active", "None")
    assert d.get_group(gid(1))["hasMembersWithLicenseErrors"] is False
    # Direct assignment of the add-on without its prerequisite fails at once; group add-on without prerequisite is rejected.
    d2, _ = directory(make_tenant([user_doc(2)], [group_doc(2)], rules=rules))
    assert_graph_error(lambda: d2.assign_user_license(uid(2), [{"skuId": AUDIOCONF, "disabledPlans": []}], [], ctx()), 400, "depend")
    assert_graph_error(
        lambda: d2.assign_group_license(gid(2), [{"skuId": AUDIOCONF, "disabledPlans": []}], [], ctx()),
        400,
        "License operation failed. Make sure that the group has necessary services",
    )


# ---------------------------------------------------------------------------------------------- membership and the ledger
def test_removed_member_keeps_the_license_until_processed_then_the_ledger_records_the_loss():
    d, clock = directory(make_tenant([user_doc(1)], [group_doc(1, [uid(1)], [(E3, [SWAY])])]), rate=1.0)
    assert d.get_user(uid(1))["assignedLicenses"][0]["skuId"] == E3
    d.remove_member(gid(1), uid(1), ctx("remove"))
    assert d.get_user(uid(1))["assignedLicenses"][0]["skuId"] == E3  # background: not yet processed
    assert d.get_group(gid(1))["licenseProcessingState"]["state"] == "QueuedForProcessing"
    assert d.loss_ledger() == []
    clock.now += 1.0
    d.advance()
    assert d.get_user(uid(1))["assignedLicenses"] == []
    assert consumed(d, E3) == 0
    [entry] = d.loss_ledger()
    assert (entry["user_id"], entry["sku_id"], entry["sku_part_number"], entry["cause"]) == (uid(1), E3, "ENTERPRISEPACK", "group_processing")
    assert entry["request"] == {"request_id": "remove-id", "client_request_id": "", "method": "POST", "path": "/v1.0/remove"}
    lost = {p["servicePlanId"] for p in entry["plans_lost"]}
    assert SWAY not in lost and SP_ENTERPRISE in lost
    assert entry["user_principal_name"] == "user1@contoso.com" and entry["time"].endswith("Z")
    d.clear_ledger()
    assert d.loss_ledger() == []


def test_no_ledger_entry_when_the_direct_copy_goes_and_a_healthy_group_covers_it():
    d, _ = directory(make_tenant([user_doc(1, direct=[(E3, [SWAY])])], [group_doc(1, [uid(1)], [(E3, [SWAY])])]))
    d.assign_user_license(uid(1), [], [E3], ctx())
    assert d.loss_ledger() == []
    assert [s["assignedByGroup"] for s in states(d, 1)] == [gid(1)]
    assert consumed(d, E3) == 1


def test_ledger_entry_when_the_direct_copy_is_removed_while_the_group_copy_is_in_count_violation():
    # All-or-nothing: EMS has no unit left, so the group's E3 copy is in Error too although E3 needs no new unit.
    d, _ = directory(
        make_tenant([user_doc(1, direct=[(E3, [])]), user_doc(2, direct=[(EMS, [])])], [group_doc(1, [uid(1)], [(E3, []), (EMS, [])])], units={"EMS": 1})
    )
    assert {(s["skuId"], s["error"]) for s in states(d, 1) if s["assignedByGroup"]} == {(E3, "CountViolation"), (EMS, "CountViolation")}
    d.assign_user_license(uid(1), [], [E3], ctx("removedirect"))
    [entry] = d.loss_ledger()
    assert (entry["user_id"], entry["sku_id"], entry["cause"], entry["request"]["request_id"]) == (uid(1), E3, "direct", "removedirect-id")
    assert consumed(d, E3) == 0


def test_direct_removal_with_group_copy_in_error_is_recorded():
    d, _ = directory(
        make_tenant(
            [user_doc(1, direct=[(E3, [])])],
            [
                group_doc(
                    1,
                    [uid(1)],
                    [(E3, [])],
                )
            ],
            rules={"prohibitedUsageLocations": {"SWAY": ["US"]}},
        )
    )
    assert states(d, 1)[1]["error"] == "ProhibitedInUsageLocationViolation"
    d.assign_user_license(uid(1), [], [E3], ctx("removedirect"))
    [entry] = d.loss_ledger()
    assert (entry["user_id"], entry["cause"], entry["request"]["request_id"]) == (uid(1), "direct", "removedirect-id")
    assert d.get_user(uid(1))["assignedLicenses"] == []


def test_group_disabling_more_plans_costs_group_only_users_those_plans():
    d, _ = directory(make_tenant([user_doc(1), user_doc(2, direct=[(E3, [])])], [group_doc(1, [uid(1), uid(2)], [(E3, [])])]))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": [SWAY]}], [], ctx("narrow"))
    d.process_all()
    [entry] = d.loss_ledger()
    assert entry["user_id"] == uid(1)
    assert [p["servicePlanName"] for p in entry["plans_lost"]] == ["SWAY"]


def test_reprocess_after_freeing_units_clears_count_violation():
    d, _ = directory(make_tenant([user_doc(1, direct=[(EMS, [])]), user_doc(2)], [group_doc(1, [uid(2)])], units={"EMS": 1}))
    d.assign_group_license(gid(1), [{"skuId": EMS, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert states(d, 2)[0]["error"] == "CountViolation"
    d.assign_user_license(uid(1), [], [EMS], ctx())
    d.process_all()
    assert states(d, 2)[0]["error"] == "CountViolation"  # Entra does not retry by itself
    user = d.reprocess_user(uid(2), ctx("reprocess"))
    assert (user["licenseAssignmentStates"][0]["state"], user["licenseAssignmentStates"][0]["error"]) == ("Active", "None")
    assert d.get_group(gid(1))["hasMembersWithLicenseErrors"] is False
    assert consumed(d, EMS) == 1


def test_set_sku_units_makes_new_members_fail_with_count_violation():
    d, _ = directory(make_tenant([user_doc(1), user_doc(2)], [group_doc(1, [uid(1)], [(E3, [])])]))
    d.set_sku_units("enterprisepack", 1)
    assert next(s for s in d.subscribed_skus() if s["skuId"] == E3)["prepaidUnits"]["enabled"] == 1
    d.add_members(gid(1), [uid(2)], ctx())
    d.process_all()
    assert states(d, 2)[0]["error"] == "CountViolation"
    with pytest.raises(ValueError, match="NOPE"):
        d.set_sku_units("NOPE", 1)


def test_membership_errors():
    d, _ = directory(make_tenant([user_doc(1)], [group_doc(1, [uid(1)])]))
    assert_graph_error(
        lambda: d.add_members(gid(1), [uid(1)], ctx()),
        400,
        "One or more added object references already exist for the following modified properties: 'members'.",
    )
    assert_graph_error(lambda: d.add_members(gid(1), [uid(7)], ctx()), 404, uid(7))
    assert_graph_error(lambda: d.add_members(gid(1), ["nope"], ctx()), 400, "Invalid object identifier 'nope'.")
    assert_graph_error(lambda: d.remove_member(gid(1), uid(7), ctx()), 404, uid(7))


def test_group_ids_must_be_guids():
    d, _ = directory(make_tenant())
    assert_graph_error(lambda: d.get_group("not-a-guid"), 400, "Invalid object identifier 'not-a-guid'.")
    assert_graph_error(lambda: d.get_group(gid(5)), 404, gid(5))


def test_membership_of_an_unlicensed_group_queues_nothing():
    d, _ = directory(make_tenant([user_doc(1)], [group_doc(1)]))
    d.add_members(gid(1), [uid(1)], ctx())
    assert d.pending_work() == 0
    assert d.get_group(gid(1))["licenseProcessingState"] is None


def test_removing_all_group_licenses_removes_the_copies_in_the_background():
    d, clock = directory(make_tenant([user_doc(1, direct=[(E3, [])]), user_doc(2)], [group_doc(1, [uid(1), uid(2)], [(E3, [])])]), rate=1.0)
    group = d.assign_group_license(gid(1), [], [E3], ctx("unlicense"))
    assert group["assignedLicenses"] == [] and group["licenseProcessingState"] == {"state": "QueuedForProcessing"}
    assert len(states(d, 2)) == 1
    clock.now += 5
    d.advance()
    assert d.get_group(gid(1))["licenseProcessingState"] == {"state": "ProcessingComplete"}
    assert [s["assignedByGroup"] for s in states(d, 1)] == [None] and states(d, 2) == []
    assert [e["user_id"] for e in d.loss_ledger()] == [uid(2)]
    assert consumed(d, E3) == 1


def test_user_deletion_frees_its_units_and_memberships():
    d, _ = directory(make_tenant([user_doc(1, direct=[(EMS, [])])], [group_doc(1, [uid(1)], [(E3, [])])]))
    d.delete_user(uid(1), ctx())
    assert (consumed(d, E3), consumed(d, EMS), d.user_count()) == (0, 0, 0)
    assert d.list_members(gid(1)) == []
    assert list(d.iter_users()) == []


def test_create_user_and_group_then_license_through_the_group():
    d, _ = directory(make_tenant())
    user = d.create_user({"displayName": "New", "userPrincipalName": "new@contoso.com", "accountEnabled": True}, ctx())
    assert_graph_error(lambda: d.create_user({"displayName": "Dup", "userPrincipalName": "NEW@contoso.com"}, ctx()), 400, "already exists")
    group = d.create_group({"displayName": "GBL E3", "mailNickname": "gble3", "mailEnabled": False, "securityEnabled": True}, ctx(), member_ids=[user["id"]])
    assert group["licenseProcessingState"] is None and group["membershipRule"] is None
    d.assign_group_license(group["id"], [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    assert d.get_user(user["id"])["licenseAssignmentStates"][0]["assignedByGroup"] == group["id"]


# ---------------------------------------------------------------------------------------------- audit
def test_direct_change_audit_events():
    d, _ = directory(make_tenant([user_doc(1)]))
    d.assign_user_license(uid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx("assign"))
    events = d.audit_events()
    assert [e["activityDisplayName"] for e in events] == ["Change user license", "Update user"]
    assert all(e["category"] == "UserManagement" and e["loggedByService"] == "Core Directory" for e in events)
    assert events[0]["initiatedBy"]["app"] == {"appId": "app", "displayName": "Tester", "servicePrincipalId": None, "servicePrincipalName": "Tester"}
    assert events[0]["targetResources"][0]["userPrincipalName"] == "user1@contoso.com"
    assert "ENTERPRISEPACK" in events[1]["targetResources"][0]["modifiedProperties"][0]["newValue"]


def test_group_processing_changes_users_as_the_group_licensing_app():
    d, _ = directory(make_tenant([user_doc(1)], [group_doc(1, [uid(1)])]))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": []}], [], ctx())
    d.process_all()
    change = [e for e in d.audit_events() if e["activityDisplayName"] == "Change user license"]
    assert change and change[0]["initiatedBy"]["app"]["displayName"] == "Microsoft Azure AD Group-Based Licensing"
    set_license = d.audit_events()[0]
    assert set_license["activityDisplayName"] == "Set group license" and set_license["category"] == "GroupManagement"


def test_in_process_calls_without_a_request_context_are_audited_as_emulator_control():
    d, _ = directory(make_tenant([user_doc(1, direct=[(E3, [])])], [group_doc(1, [uid(1)])]))
    d.assign_group_license(gid(1), [{"skuId": E3, "disabledPlans": [SWAY]}], [], None)
    d.process_all()
    d.assign_user_license(uid(1), [], [E3], None)
    d.remove_member(gid(1), uid(1), None)
    d.process_all()
    set_license = [e for e in d.audit_events() if e["activityDisplayName"] == "Set group license"]
    assert set_license and set_license[0]["initiatedBy"]["app"]["displayName"] == "emulator control"
    # the loss it caused (direct copy gone, then the group) is still recorded, naming the in-process caller
    ledger = d.loss_ledger()
    assert ledger and {entry["request"]["method"] for entry in ledger} == {"CONTROL"}
    assert [p["servicePlanName"] for p in ledger[0]["plans_lost"]] == ["SWAY"]
