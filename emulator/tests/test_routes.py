"""Graph routes the collection uses, checked against Microsoft's documented example responses."""

import uuid

import pytest

from conftest import E3, EMS_E5, Graph, assert_error_envelope, licensed_user, users_of

GRAPH_JSON = "application/json;odata.metadata=minimal"


def bind(emu, object_id):
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


def new_security_group(graph, name, members=()):
    body = {"displayName": name, "mailEnabled": False, "mailNickname": name.replace(" ", ""), "securityEnabled": True, "groupTypes": []}
    if members:
        body["members@odata.bind"] = [f"https://graph.microsoft.com/v1.0/directoryObjects/{m}" for m in members]
    response = graph.post("groups", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_user_assign_license_returns_200_and_the_user_like_the_documented_example(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    body = {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []}
    response = fresh_graph.post(f"users/{user['id']}/assignLicense", body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(GRAPH_JSON)
    result = response.json()
    # Learn's example response: accountEnabled bool, assignedLicenses [{disabledPlans, skuId}], city, companyName
    assert isinstance(result["accountEnabled"], bool)
    assert {"city", "companyName"} <= set(result)
    assert result["@odata.context"].endswith("$metadata#users/$entity")
    assert result["id"] == user["id"]
    assigned = {lic["skuId"]: lic for lic in result["assignedLicenses"]}
    assert set(assigned) == {E3, EMS_E5}
    assert all(set(lic) == {"disabledPlans", "skuId"} and isinstance(lic["disabledPlans"], list) for lic in result["assignedLicenses"])
    stored = fresh_emu.directory.get_user(user["id"])
    assert {lic["skuId"] for lic in stored["assignedLicenses"]} == {E3, EMS_E5}


def test_user_assign_license_requires_both_arrays_and_reports_direct_errors(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    missing = fresh_graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": []})
    assert "removeLicenses" in assert_error_envelope(missing, 400, "Request_BadRequest")["message"]
    absent = fresh_graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": [], "removeLicenses": [EMS_E5]})
    assert_error_envelope(absent, 400, "Request_BadRequest")
    unknown = fresh_graph.post(f"users/{uuid.uuid4()}/assignLicense", {"addLicenses": [], "removeLicenses": []})
    error = assert_error_envelope(unknown, 404, "Request_ResourceNotFound")
    assert "does not exist" in error["message"]


def test_user_can_be_addressed_by_user_principal_name(emu, graph):
    user = users_of(emu)[3]
    body = graph.get(f"users/{user['userPrincipalName']}?$select=id,userPrincipalName").json()
    assert body == {"@odata.context": body["@odata.context"], "id": user["id"], "userPrincipalName": user["userPrincipalName"]}


def test_group_assign_license_returns_202_group_and_location(fresh_emu, fresh_graph):
    members = [u["id"] for u in users_of(fresh_emu)[:3]]
    group = new_security_group(fresh_graph, "Licensing E3", members)
    body = {"addLicenses": [{"disabledPlans": [], "skuId": E3}], "removeLicenses": []}
    response = fresh_graph.post(f"groups/{group['id']}/assignLicense", body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == (f"{fresh_emu.base_url}/v2/{fresh_emu.tenant_id}/directoryObjects/{group['id']}/Microsoft.DirectoryServices.Group")
    result = response.json()
    # documented example: id, createdDateTime, groupTypes [], securityEnabled true
    assert result["id"] == group["id"]
    assert isinstance(result["createdDateTime"], str) and result["groupTypes"] == []
    assert result["securityEnabled"] is True
    state = fresh_graph.get(f"groups/{group['id']}?$select=id,assignedLicenses,licenseProcessingState").json()
    assert state["assignedLicenses"] == [{"disabledPlans": [], "skuId": E3}]
    assert set(state["licenseProcessingState"]) == {"state"}
    fresh_emu.process_all()
    done = fresh_graph.get(f"groups/{group['id']}?$select=licenseProcessingState").json()
    assert done["licenseProcessingState"] == {"state": "ProcessingComplete"}
    user = fresh_graph.get(f"users/{members[0]}?$select=licenseAssignmentStates").json()
    sources = {(s["skuId"], s["assignedByGroup"]) for s in user["licenseAssignmentStates"]}
    assert (E3, group["id"]) in sources and (E3, None) in sources


def test_members_ref_add_duplicate_and_remove(fresh_emu, fresh_graph):
    group = new_security_group(fresh_graph, "Ref group")
    user_id = users_of(fresh_emu)[5]["id"]
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"}
    added = fresh_graph.post(f"groups/{group['id']}/members/$ref", ref)
    assert added.status_code == 204 and added.content == b""
    duplicate = fresh_graph.post(f"groups/{group['id']}/members/$ref", ref)
    assert "already exist" in assert_error_envelope(duplicate, 400, "Request_BadRequest")["message"]
    members = fresh_graph.get(f"groups/{group['id']}/members/microsoft.graph.user?$select=id").json()["value"]
    assert [m["id"] for m in members] == [user_id]
    assert fresh_graph.delete(f"groups/{group['id']}/members/{user_id}/$ref").status_code == 204
    assert fresh_graph.get(f"groups/{group['id']}/members").json()["value"] == []
    assert fresh_graph.delete(f"groups/{group['id']}/members/{user_id}/$ref").status_code == 404


def test_members_odata_bind_on_create_and_patch_with_the_20_limit(fresh_emu, fresh_graph):
    ids = [u["id"] for u in users_of(fresh_emu)]
    group = new_security_group(fresh_graph, "Bind group", ids[:2])
    patch = fresh_graph.patch(f"groups/{group['id']}", {"members@odata.bind": [bind(fresh_emu, i) for i in ids[2:22]]})
    assert patch.status_code == 204, patch.text
    members, _ = fresh_graph.list_all(f"groups/{group['id']}/members?$select=id")
    assert len(members) == 22
    too_many = fresh_graph.patch(f"groups/{group['id']}", {"members@odata.bind": [bind(fresh_emu, i) for i in ids[:21]]})
    assert "20" in assert_error_envelope(too_many, 400, "Request_BadRequest")["message"]
    assert len(fresh_graph.list_all(f"groups/{group['id']}/members")[0]) == 22


def test_reprocess_license_details_and_member_of(fresh_emu, fresh_graph):
    user = licensed_user(fresh_emu)
    reprocessed = fresh_graph.post(f"users/{user['id']}/reprocessLicenseAssignment")
    assert reprocessed.status_code == 200 and reprocessed.json()["id"] == user["id"]
    details = fresh_graph.get(f"users/{user['id']}/licenseDetails").json()
    assert details["@odata.context"].endswith(f"users('{user['id']}')/licenseDetails")
    detail = details["value"][0]
    assert set(detail) == {"id", "skuId", "skuPartNumber", "servicePlans"}
    assert detail["skuId"] == E3 and detail["skuPartNumber"] == "ENTERPRISEPACK"
    assert {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"} == set(detail["servicePlans"][0])
    group = new_security_group(fresh_graph, "MemberOf group", [user["id"]])
    member_of = fresh_graph.get(f"users/{user['id']}/memberOf").json()["value"]
    assert group["id"] in [g["id"] for g in member_of]
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in member_of)


def test_subscribed_skus_match_the_documented_example(emu, graph):
    body = graph.get("subscribedSkus").json()
    assert body["@odata.context"].endswith("$metadata#subscribedSkus")
    sku = next(s for s in body["value"] if s["skuId"] == E3)
    example = {
        "accountName": "",
        "accountId": "",
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": 14,
        "id": "",
        "prepaidUnits": {},
        "servicePlans": [],
        "skuId": "",
        "skuPartNumber": "",
        "subscriptionIds": [],
    }
    assert set(sku) == set(example)
    for key, value in example.items():
        assert isinstance(sku[key], type(value)), key
    assert set(sku["prepaidUnits"]) == {"enabled", "lockedOut", "suspended", "warning"}
    assert sku["id"].endswith("_" + E3)
    assert {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"} == set(sku["servicePlans"][0])
    single = graph.get(f"subscribedSkus/{sku['id']}").json()
    assert single["skuId"] == E3 and single["consumedUnits"] == sku["consumedUnits"]
    selected = graph.get("subscribedSkus?$select=skuId,consumedUnits").json()["value"][0]
    assert set(selected) == {"skuId", "consumedUnits"}
    assert graph.get("subscribedSkus?$top=1").status_code == 400
    assert graph.get(f"subscribedSkus/{uuid.uuid4()}").status_code == 404


def test_organization_has_the_country_letter_code(emu, graph):
    org = graph.get("organization").json()["value"][0]
    assert org["id"] == emu.tenant_id
    assert org["countryLetterCode"] == emu.directory.country_letter_code == "US"


def test_members_with_license_errors_and_the_error_state(fresh_emu, fresh_graph):
    emu, graph = fresh_emu, fresh_graph
    users = users_of(emu)
    member_ids = [u["id"] for u in users[:4]]
    group = new_security_group(graph, "Errors group", member_ids)
    emu.directory.set_sku_units(EMS_E5, 2)  # only two seats for four members
    graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"disabledPlans": [], "skuId": EMS_E5}], "removeLicenses": []})
    emu.process_all()
    failing, _ = graph.list_all(f"groups/{group['id']}/membersWithLicenseErrors?$select=id")
    assert len(failing) == 2
    flagged = graph.get("groups?$filter=hasMembersWithLicenseErrors eq true&$select=id").json()["value"]
    assert [g["id"] for g in flagged] == [group["id"]]
    states = graph.get(f"users/{failing[0]['id']}?$select=licenseAssignmentStates").json()["licenseAssignmentStates"]
    entry = next(s for s in states if s["assignedByGroup"] == group["id"])
    assert entry["state"] == "Error" and entry["error"] == "CountViolation"


def test_unknown_route_and_wrong_method(graph):
    assert_error_envelope(graph.get("nonsense"), 400, "BadRequest")
    assert_error_envelope(graph.request("PUT", "users"), 405, "Request_BadRequest")


def test_response_headers_on_every_graph_answer(graph):
    response = graph.get("users?$top=1", headers={"client-request-id": "abc-123"})
    assert response.headers["client-request-id"] == "abc-123"
    assert uuid.UUID(response.headers["request-id"])
    assert int(response.headers["x-ms-resource-unit"]) >= 1
    assert response.headers["Content-Type"].startswith(GRAPH_JSON)
    own = graph.get("users?$top=1")
    assert own.headers["client-request-id"] == own.headers["request-id"]


def test_user_crud_and_read_only_licensing_property(fresh_emu):
    graph = Graph(fresh_emu, fresh_emu.issue_token(permissions=["User.ReadWrite.All"]))
    created = graph.post(
        "users",
        {
            "accountEnabled": True,
            "displayName": "New Person",
            "mailNickname": "newperson",
            "userPrincipalName": "new.person@contoso.onmicrosoft.com",
            "passwordProfile": {"password": "x-Secret-1!", "forceChangePasswordNextSignIn": True},
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert graph.patch(f"users/{user_id}", {"usageLocation": "FR"}).status_code == 204
    assert graph.get(f"users/{user_id}?$select=usageLocation").json()["usageLocation"] == "FR"
    read_only = graph.patch(f"users/{user_id}", {"assignedLicenses": []})
    assert "read-only" in assert_error_envelope(read_only, 400, "Request_BadRequest")["message"]
    assert graph.delete(f"users/{user_id}").status_code == 204
    assert graph.get(f"users/{user_id}").status_code == 404


def test_loss_ledger_through_http(fresh_emu, fresh_graph):
    emu, graph = fresh_emu, fresh_graph
    session = graph.session
    assert session.get(f"{emu.base_url}/_emulator/ledger").json() == {"value": []}
    user = licensed_user(emu)
    response = graph.post(f"users/{user['id']}/assignLicense", {"addLicenses": [], "removeLicenses": [E3]})
    assert response.status_code == 200
    ledger = session.get(f"{emu.base_url}/_emulator/ledger").json()["value"]
    assert len(ledger) == 1
    entry = ledger[0]
    assert entry["user_id"] == user["id"] and entry["sku_id"] == E3 and entry["plans_lost"]
    assert entry["request"]["request_id"] == response.headers["request-id"]
    assert entry["request"]["path"] == f"/v1.0/users/{user['id']}/assignLicense"
    assert emu.loss_ledger() == ledger
    assert session.delete(f"{emu.base_url}/_emulator/ledger").status_code == 200
    assert emu.loss_ledger() == []


def test_member_of_cast_and_transitive_member_of(fresh_emu, fresh_graph):
    user = next(u for u in users_of(fresh_emu) if not fresh_emu.directory.member_of(u["id"]))
    inner = new_security_group(fresh_graph, "Inner group", [user["id"]])
    outer = new_security_group(fresh_graph, "Outer group", [inner["id"]])
    outermost = new_security_group(fresh_graph, "Outermost group", [outer["id"]])
    direct = fresh_graph.get(f"users/{user['id']}/memberOf/microsoft.graph.group?$select=id,displayName")
    assert direct.status_code == 200, direct.text
    assert direct.json()["@odata.context"].endswith("$metadata#groups")
    assert [(g["id"], g["displayName"]) for g in direct.json()["value"]] == [(inner["id"], "Inner group")]
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in direct.json()["value"])
    transitive = fresh_graph.get(f"users/{user['id']}/transitiveMemberOf").json()
    assert transitive["@odata.context"].endswith("$metadata#directoryObjects")
    assert [g["id"] for g in transitive["value"]] == [inner["id"], outer["id"], outermost["id"]]
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in transitive["value"])
    cast, pages = fresh_graph.list_all(f"users/{user['id']}/transitiveMemberOf/microsoft.graph.group?$top=2&$select=id")
    assert [g["id"] for g in cast] == [inner["id"], outer["id"], outermost["id"]] and pages == 2
    assert set(cast[0]) == {"@odata.type", "id"}
    bad = fresh_graph.get(f"users/{user['id']}/memberOf/microsoft.graph.group?$select=userPrincipalName")
    assert bad.status_code == 400 and "microsoft.graph.group" in bad.json()["error"]["message"]
    assert fresh_graph.get("users/00000000-0000-4000-8000-00000000dead/transitiveMemberOf").status_code == 404


@pytest.mark.parametrize(
    "path, allowed, denied",
    [
        ("memberOf/microsoft.graph.group", ["GroupMember.Read.All"], ["User.Read.All"]),
        ("transitiveMemberOf", ["User.Read.All"], ["GroupMember.ReadBasic.All"]),
        ("transitiveMemberOf/microsoft.graph.group", ["GroupMember.Read.All"], ["LicenseAssignment.ReadWrite.All"]),
    ],
)
def test_membership_routes_enforce_their_documented_permissions(emu, path, allowed, denied):
    user_id = users_of(emu)[0]["id"]
    assert Graph(emu, emu.issue_token(permissions=allowed)).get(f"users/{user_id}/{path}").status_code == 200
    refused = Graph(emu, emu.issue_token(permissions=denied)).get(f"users/{user_id}/{path}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "Authorization_RequestDenied"
