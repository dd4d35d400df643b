"""Dynamic membership groups over HTTPS with the real client: rules, asynchronous evaluation, the beta status,
refused member writes, licenses following the rule (and the loss ledger when a rule drops users)."""

import time

import pytest

from conftest import E3, EMS_E5, Graph, assert_error_envelope
from graph_emulator import Emulator, generate_tenant
from graph_emulator.dynamic import DYNAMIC_APP_NAME
from graph_emulator.engine import Directory

WRITER = ["Group.ReadWrite.All", "User.ReadWrite.All", "LicenseAssignment.ReadWrite.All", "GroupMember.ReadWrite.All", "Group.Create"]
SALES = 'user.department -eq "Sales"'


@pytest.fixture()
def emu():
    with Emulator(tenant=generate_tenant(users=40, seed=3), dynamic_rate=0) as emulator:
        yield emulator


@pytest.fixture()
def graph(emu):
    return Graph(emu, emu.issue_token(permissions=WRITER))


def dynamic_body(name, rule=SALES, **extra):
    body = {
        "displayName": name,
        "mailNickname": name.replace(" ", ""),
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": ["DynamicMembership"],
        "membershipRule": rule,
        "membershipRuleProcessingState": "On",
    }
    body.update(extra)
    return body


def beta_status(graph, group_id):
    response = graph.get(f"{graph.emu.base_url}/beta/groups/{group_id}?$select=membershipRuleProcessingStatus")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"@odata.context", "id", "membershipRuleProcessingStatus"}
    assert body["@odata.context"].endswith("/beta/$metadata#groups(membershipRuleProcessingStatus)/$entity")
    return body["membershipRuleProcessingStatus"]


def member_ids(graph, group_id):
    items, _ = graph.list_all(f"groups/{group_id}/members?$select=id&$top=999")
    return {item["id"] for item in items}


def users_where(emu, predicate):
    return {user["id"] for _, user in emu.directory.iter_users(0) if predicate(user)}


def create(graph, body):
    response = graph.post("groups", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_dynamic_group_is_created_and_its_members_come_from_the_rule_asynchronously(emu, graph):
    emu.configure(dynamic_rate=10)  # 40 users: four seconds for the whole round
    group = create(graph, dynamic_body("Sales dynamic"))
    assert group["groupTypes"] == ["DynamicMembership"] and group["membershipRule"] == SALES
    assert group["membershipRuleProcessingState"] == "On"
    assert "membershipRuleProcessingStatus" not in group  # beta only
    assert beta_status(graph, group["id"])["status"] in ("NotStarted", "Running")
    time.sleep(0.5)
    status = beta_status(graph, group["id"])
    assert status == {"status": "Running", "lastMembershipUpdated": None, "errorMessage": None}
    sales = users_where(emu, lambda u: u["department"] == "Sales")
    assert len(sales) >= 3
    assert member_ids(graph, group["id"]) < sales  # part of the round evaluated, not all of it
    emu.process_all()
    status = beta_status(graph, group["id"])
    assert status["status"] == "Succeeded" and status["lastMembershipUpdated"].endswith("Z") and status["errorMessage"] is None
    assert member_ids(graph, group["id"]) == sales
    read = graph.get(f"groups/{group['id']}?$select=id,groupTypes,membershipRule,membershipRuleProcessingState").json()
    assert read["membershipRule"] == SALES and read["membershipRuleProcessingState"] == "On"
    audits = [e for e in emu.directory.audit_events() if e["activityDisplayName"] == "Add member to group"]
    assert {e["targetResources"][0]["id"] for e in audits} == sales
    assert {e["initiatedBy"]["app"]["displayName"] for e in audits} == {DYNAMIC_APP_NAME}


def test_v1_refuses_the_status_property_and_beta_serves_only_group_reads(emu, graph):
    group = create(graph, dynamic_body("Sales v1"))
    refused = graph.get(f"groups/{group['id']}?$select=id,membershipRuleProcessingStatus")
    error = assert_error_envelope(refused, 400, "Request_BadRequest")
    assert error["message"] == "Could not find a property named 'membershipRuleProcessingStatus' on type 'microsoft.graph.group'."
    plain = graph.get(f"{emu.base_url}/beta/groups/{group['id']}?$select=id,displayName,membershipRule")
    assert plain.status_code == 200 and plain.json()["membershipRule"] == SALES and "membershipRuleProcessingStatus" not in plain.json()
    whole = graph.get(f"{emu.base_url}/beta/groups/{group['id']}").json()
    assert whole["groupTypes"] == ["DynamicMembership"] and "membershipRuleProcessingStatus" not in whole
    assert_error_envelope(graph.get(f"{emu.base_url}/beta/users"), 400, "BadRequest")
    static = create(graph, {"displayName": "Static", "mailNickname": "Static", "mailEnabled": False, "securityEnabled": True})
    assert beta_status(graph, static["id"]) is None


@pytest.mark.parametrize(
    ("rule", "position", "expected"),
    [
        ('user.department -equals "Sales"', 16, "an operator"),
        ('(user.department -eq "Sales"', 28, "')'"),
        ('user.colour -eq "blue"', 0, "a supported user property"),
    ],
)
def test_a_rule_the_engine_cannot_read_is_refused_with_its_position_on_post_and_patch(emu, graph, rule, position, expected):
    error = assert_error_envelope(graph.post("groups", dynamic_body("Bad rule", rule=rule)), 400, "Request_BadRequest")
    assert f"at position {position}" in error["message"] and expected in error["message"]
    assert not [g for _, g in emu.directory.iter_groups() if g["displayName"] == "Bad rule"]
    group = create(graph, dynamic_body("Good rule"))
    error = assert_error_envelope(graph.patch(f"groups/{group['id']}", {"membershipRule": rule}), 400, "Request_BadRequest")
    assert f"at position {position}" in error["message"]
    assert emu.directory.get_group(group["id"])["membershipRule"] == SALES


def test_dynamic_properties_must_go_together(emu, graph):
    body = dynamic_body("No rule")
    del body["membershipRule"]
    assert "needs a membershipRule" in assert_error_envelope(graph.post("groups", body), 400, "Request_BadRequest")["message"]
    static = {"displayName": "Static rule", "mailNickname": "StaticRule", "mailEnabled": False, "securityEnabled": True, "membershipRule": SALES}
    assert "DynamicMembership" in assert_error_envelope(graph.post("groups", static), 400, "Request_BadRequest")["message"]
    bad_state = dynamic_body("Bad state", membershipRuleProcessingState="Off")
    assert_error_envelope(graph.post("groups", bad_state), 400, "Request_BadRequest")


def test_member_writes_on_a_dynamic_group_are_refused_directly_and_in_batch(emu, graph):
    group = create(graph, dynamic_body("Refuses members"))
    emu.process_all()
    outsider = next(iter(users_where(emu, lambda u: u["department"] != "Sales")))
    member = next(iter(member_ids(graph, group["id"])))
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{outsider}"}
    bind = {"members@odata.bind": [ref["@odata.id"]]}
    for response in (
        graph.post(f"groups/{group['id']}/members/$ref", ref),
        graph.delete(f"groups/{group['id']}/members/{member}/$ref"),
        graph.patch(f"groups/{group['id']}", bind),
        graph.post("groups", dict(dynamic_body("Born with members"), **bind)),
    ):
        error = assert_error_envelope(response, 403, "Authorization_RequestDenied")
        assert error["message"] == "Insufficient privileges to complete the operation."
    items = [
        {"id": "1", "method": "POST", "url": f"/groups/{group['id']}/members/$ref", "headers": {"Content-Type": "application/json"}, "body": ref},
        {"id": "2", "method": "DELETE", "url": f"/groups/{group['id']}/members/{member}/$ref"},
        {"id": "3", "method": "PATCH", "url": f"/groups/{group['id']}", "headers": {"Content-Type": "application/json"}, "body": bind},
    ]
    answers = {r["id"]: r for r in graph.post("$batch", {"requests": items}).json()["responses"]}
    assert {key: answer["status"] for key, answer in answers.items()} == {"1": 403, "2": 403, "3": 403}
    assert all(a["body"]["error"]["code"] == "Authorization_RequestDenied" for a in answers.values())
    assert outsider not in member_ids(graph, group["id"]) and member in member_ids(graph, group["id"])
    # group license assignment is a cloud feature and stays allowed
    assert graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []}).status_code == 202


def test_changing_the_rule_needs_group_readwrite_all_and_creating_needs_only_group_create(emu):
    member_writer = Graph(emu, emu.issue_token(permissions=["GroupMember.ReadWrite.All", "Group.Create"]))
    group = create(member_writer, dynamic_body("Created with Group.Create"))
    for body in ({"membershipRule": 'user.department -eq "HR"'}, {"membershipRuleProcessingState": "Paused"}, {"groupTypes": []}):
        assert_error_envelope(member_writer.patch(f"groups/{group['id']}", body), 403, "Authorization_RequestDenied")
    assert emu.directory.get_group(group["id"])["membershipRule"] == SALES


def test_members_the_rule_gains_are_licensed_and_a_rule_change_takes_licenses_from_exactly_the_users_it_drops(emu, graph):
    group = create(graph, dynamic_body("EMS by rule", rule='user.department -in ["Sales", "Engineering"]'))
    assigned = graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []})
    assert assigned.status_code == 202
    emu.process_all()
    chosen = users_where(emu, lambda u: u["department"] in ("Sales", "Engineering"))
    holders = users_where(emu, lambda u: any(lic["skuId"] == EMS_E5 for lic in u["assignedLicenses"]))
    assert holders == chosen and emu.loss_ledger() == []
    assert graph.patch(f"groups/{group['id']}", {"membershipRule": SALES}).status_code == 204
    assert beta_status(graph, group["id"])["status"] == "NotStarted"
    emu.process_all()
    assert beta_status(graph, group["id"])["status"] == "Succeeded"
    dropped = chosen - users_where(emu, lambda u: u["department"] == "Sales")
    assert dropped
    ledger = emu.loss_ledger()
    assert {entry["user_id"] for entry in ledger} == dropped and len(ledger) == len(dropped)
    assert {entry["sku_id"] for entry in ledger} == {EMS_E5}
    assert {entry["cause"] for entry in ledger} == {"dynamic_membership"}
    assert all(entry["request"]["method"] == "DYNAMIC" and SALES in entry["request"]["path"] for entry in ledger)
    assert users_where(emu, lambda u: any(lic["skuId"] == EMS_E5 for lic in u["assignedLicenses"])) == chosen - dropped


def test_a_users_attributes_changing_re_evaluates_the_rule(emu, graph):
    group = create(graph, dynamic_body("Follows attributes"))
    emu.process_all()
    mover = next(iter(users_where(emu, lambda u: u["department"] == "HR")))
    leaver = next(iter(member_ids(graph, group["id"])))
    assert graph.patch(f"users/{mover}", {"department": "Sales"}).status_code == 204
    assert graph.patch(f"users/{leaver}", {"department": "Legal"}).status_code == 204
    assert mover not in member_ids(graph, group["id"])  # asynchronous: nothing yet at dynamic_rate 0
    assert beta_status(graph, group["id"])["status"] == "Running"
    emu.process_all()
    members = member_ids(graph, group["id"])
    assert mover in members and leaver not in members
    assert beta_status(graph, group["id"])["status"] == "Succeeded"


def test_extension_attributes_and_the_other_rule_properties_round_trip_and_drive_rules(emu, graph):
    user = next(iter(users_where(emu, lambda u: True)))
    body = {
        "country": "Germany",
        "companyName": "Contoso GmbH",
        "employeeId": "E-1",
        "city": "Berlin",
        "onPremisesExtensionAttributes": {"extensionAttribute3": "E3"},
    }
    assert graph.patch(f"users/{user}", body).status_code == 204
    read = graph.get(f"users/{user}?$select=country,companyName,employeeId,city,userType,onPremisesExtensionAttributes,onPremisesSyncEnabled").json()
    assert read["onPremisesExtensionAttributes"]["extensionAttribute3"] == "E3" and len(read["onPremisesExtensionAttributes"]) == 15
    assert read["userType"] == "Member" and read["onPremisesSyncEnabled"] is None and read["employeeId"] == "E-1"
    rule = 'user.extensionAttribute3 -eq "e3" -and user.country -eq "germany" -and user.userType -eq "Member" -and user.accountEnabled -eq true'
    group = create(graph, dynamic_body("By attribute", rule=rule))
    emu.process_all()
    assert member_ids(graph, group["id"]) == {user}
    exported = emu.export_state()
    assert Directory(exported).export() == exported
    doc = next(u for u in exported["users"] if u["id"] == user)
    assert doc["companyName"] == "Contoso GmbH" and doc["onPremisesExtensionAttributes"]["extensionAttribute3"] == "E3"
    group_doc = next(g for g in exported["groups"] if g["id"] == group["id"])
    assert group_doc["membershipRule"] == rule and group_doc["membershipRuleProcessingStatus"]["status"] == "Succeeded"


def test_a_static_group_made_dynamic_loses_every_member_first_then_the_rule_adds_them_back(emu, graph):
    users = sorted(users_where(emu, lambda u: u["department"] == "Sales"))
    bind = [f"https://graph.microsoft.com/v1.0/directoryObjects/{u}" for u in users]
    static = create(
        graph, {"displayName": "Sales static", "mailNickname": "SalesStatic", "mailEnabled": False, "securityEnabled": True, "members@odata.bind": bind}
    )
    graph.post(f"groups/{static['id']}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []})
    emu.process_all()
    assert emu.loss_ledger() == []
    emu.configure(processing_rate=1e6)  # group licensing of the removals runs at once; the rule (dynamic_rate 0) waits
    converted = graph.patch(f"groups/{static['id']}", {"groupTypes": ["DynamicMembership"], "membershipRule": SALES, "membershipRuleProcessingState": "On"})
    assert converted.status_code == 204
    assert member_ids(graph, static["id"]) == set()  # removed at once, before the rule ran (this read ran the licensing due)
    lost = {entry["user_id"] for entry in emu.loss_ledger()}
    assert lost == set(users)
    assert {entry["cause"] for entry in emu.loss_ledger()} == {"dynamic_membership"}
    emu.process_all()
    assert member_ids(graph, static["id"]) == set(users)
    assert users_where(emu, lambda u: any(lic["skuId"] == EMS_E5 for lic in u["assignedLicenses"])) == set(users)


def test_paused_rules_are_not_evaluated_until_switched_on(emu, graph):
    group = create(graph, dynamic_body("Paused", membershipRuleProcessingState="Paused"))
    emu.process_all()
    assert member_ids(graph, group["id"]) == set() and beta_status(graph, group["id"])["status"] == "NotStarted"
    assert graph.patch(f"groups/{group['id']}", {"membershipRuleProcessingState": "On"}).status_code == 204
    emu.process_all()
    assert member_ids(graph, group["id"]) == users_where(emu, lambda u: u["department"] == "Sales")
    assert graph.patch(f"groups/{group['id']}", {"membershipRuleProcessingState": "Paused"}).status_code == 204
    mover = next(iter(users_where(emu, lambda u: u["department"] == "HR")))
    graph.patch(f"users/{mover}", {"department": "Sales"})
    emu.process_all()
    assert mover not in member_ids(graph, group["id"])


def test_a_dynamic_group_made_static_keeps_its_members(emu, graph):
    group = create(graph, dynamic_body("Becomes static"))
    emu.process_all()
    before = member_ids(graph, group["id"])
    assert graph.patch(f"groups/{group['id']}", {"groupTypes": []}).status_code == 204
    read = graph.get(f"groups/{group['id']}?$select=groupTypes,membershipRule,membershipRuleProcessingState").json()
    assert read["groupTypes"] == [] and read["membershipRule"] is None and read["membershipRuleProcessingState"] is None
    assert member_ids(graph, group["id"]) == before


def test_process_all_and_the_control_api_finish_pending_evaluation(emu, graph):
    group = create(graph, dynamic_body("Drained"))
    assert emu.directory.dynamic_pending() == 40
    control = graph.session.post(f"{emu.base_url}/_emulator/process", timeout=30)
    assert control.status_code == 200 and emu.directory.dynamic_pending() == 0
    assert member_ids(graph, group["id"]) == users_where(emu, lambda u: u["department"] == "Sales")
    config = graph.session.post(f"{emu.base_url}/_emulator/config", json={"dynamic_rate": 123}, timeout=30).json()
    assert config["dynamic_rate"] == 123.0 and emu.config()["dynamic_rate"] == 123.0
    refused = graph.session.post(f"{emu.base_url}/_emulator/config", json={"dynamic_rate": -1}, timeout=30)
    assert refused.status_code == 400 and "dynamic_rate" in refused.json()["error"]


def test_profile_dynamic_is_the_seed_example_with_all_users_by_rule_already_evaluated():
    tenant = generate_tenant(users=200, seed=1, profile="dynamic")
    assert tenant == generate_tenant(users=200, seed=1, profile="dynamic")
    seed = generate_tenant(users=200, seed=1, profile="seed")
    assert [u["id"] for u in tenant["users"]] == [u["id"] for u in seed["users"]]
    with Emulator(tenant=tenant) as emulator:
        groups = {g["displayName"]: g for _, g in emulator.directory.iter_groups()}
        all_users = groups["All users"]
        assert all_users["groupTypes"] == ["DynamicMembership"] and all_users["membershipRule"] == "user.objectId -ne null"
        assert all_users["membershipRuleProcessingState"] == "On"
        assert all_users["membershipRuleProcessingStatus"]["status"] == "Succeeded"
        assert emulator.directory.dynamic_pending() == 0
        refs = emulator.directory.member_refs(all_users["id"])
        assert len(refs) == 200 and {kind for _, kind in refs} == {"user"}
        assert groups["Contractors"]["groupTypes"] == [] and len(emulator.directory.member_refs(groups["Contractors"]["id"])) == 5
        holders = [u for _, u in emulator.directory.iter_users(0) if any(lic["skuId"] == E3 for lic in u["assignedLicenses"])]
        assert len(holders) == 200
