"""$select, $filter, $top, paging and $count over real HTTPS (reference sections 3.5 and 5)."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import E3, EMS_E5, Graph, assert_error_envelope
from graph_emulator import Emulator, generate_tenant

ADVANCED = {"ConsistencyLevel": "eventual"}


@pytest.fixture(scope="module")
def big():
    with Emulator(tenant=generate_tenant(users=2100, seed=4)) as emulator:
        yield emulator, Graph(emulator, emulator.issue_token())


def test_paging_all_users_with_select_and_top_999(big):
    emu, graph = big
    users, pages = graph.list_all("users?$select=id,userPrincipalName,assignedLicenses&$top=999")
    assert pages == 3
    assert len(users) == 2100
    assert len({u["id"] for u in users}) == 2100
    assert set(users[0]) == {"id", "userPrincipalName", "assignedLicenses"}
    expected_order = [u["id"] for _, u in emu.directory.iter_users(0, select=("id",))]
    assert [u["id"] for u in users] == expected_order


def test_next_link_keeps_the_query_and_the_skiptoken_is_opaque(big):
    emu, graph = big
    body = graph.get("users?$select=id&$top=999").json()
    link = body["@odata.nextLink"]
    assert link.startswith(f"{emu.base_url}/v1.0/users?")
    query = parse_qs(urlsplit(link).query)
    assert query["$select"] == ["id"] and query["$top"] == ["999"]
    token = query["$skiptoken"][0]
    assert "999" not in token and not token.isdigit()
    # the same position in another listing gives another token
    other = parse_qs(urlsplit(graph.get("users?$select=id,displayName&$top=999").json()["@odata.nextLink"]).query)
    assert other["$skiptoken"][0] != token
    # tampering is detected, not silently mis-paged
    tampered = link.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert_error_envelope(graph.get(tampered), 400, "Directory_ExpiredPageToken")
    # a token moved to another query is refused too
    moved = f"{emu.base_url}/v1.0/users?$select=displayName&$top=999&$skiptoken={token}"
    assert graph.get(moved).status_code == 400


def test_top_limits(graph):
    assert len(graph.get("users?$top=1").json()["value"]) == 1
    assert len(graph.get("users").json()["value"]) == 60  # default page 100 > 60 users
    assert "@odata.nextLink" not in graph.get("users").json()
    error = assert_error_envelope(graph.get("users?$top=1000"), 400, "Request_BadRequest")
    assert "1000" in error["message"]
    assert graph.get("users?$top=0").status_code == 400
    assert graph.get("users?$top=abc").status_code == 400


def test_default_property_set_hides_licensing_properties(graph):
    user = graph.get("users?$top=1").json()["value"][0]
    assert set(user) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }
    single = graph.get(f"users/{user['id']}").json()
    assert "assignedLicenses" not in single and "usageLocation" not in single
    assert single["@odata.context"].endswith("$metadata#users/$entity")


def test_select_returns_licensing_properties_with_their_documented_shapes(emu, graph):
    from conftest import licensed_user

    user_id = licensed_user(emu)["id"]
    body = graph.get(f"users/{user_id}?$select=id,assignedLicenses,licenseAssignmentStates,assignedPlans,usageLocation").json()
    assert set(body) == {"@odata.context", "id", "assignedLicenses", "licenseAssignmentStates", "assignedPlans", "usageLocation"}
    assert body["@odata.context"].endswith("$metadata#users(id,assignedLicenses,licenseAssignmentStates,assignedPlans,usageLocation)/$entity")
    assert body["assignedLicenses"] == [{"disabledPlans": body["assignedLicenses"][0]["disabledPlans"], "skuId": E3}]
    state = body["licenseAssignmentStates"][0]
    # reference 2.2 example entry: same keys and types
    example = {"skuId": "157870f6-e050-4b3c-ad5e-0f0a377c8f4d", "disabledPlans": [], "assignedByGroup": None, "state": "Active", "error": "None"}
    for key, value in example.items():
        assert key in state
        assert value is None and state[key] is None or isinstance(state[key], type(value)), key
    assert state["state"] == "Active" and state["error"] == "None"
    assert isinstance(state["lastUpdatedDateTime"], str)
    plan = body["assignedPlans"][0]
    assert {"assignedDateTime", "capabilityStatus", "service", "servicePlanId"} <= set(plan)


def test_select_validation_and_case_insensitive_names(graph):
    error = assert_error_envelope(graph.get("users?$select=id,notAProperty"), 400, "Request_BadRequest")
    assert "notAProperty" in error["message"]
    body = graph.get("users?$select=ID,DisplayName&$top=1").json()
    assert set(body["value"][0]) == {"id", "displayName"}
    assert graph.get("groups?$select=bogus").status_code == 400


def test_filter_by_assigned_sku_without_advanced_query(emu, graph):
    expected = sorted(u["id"] for _, u in emu.directory.iter_users(0) if any(lic["skuId"] == E3 for lic in u["assignedLicenses"]))
    users, _ = graph.list_all(f"users?$filter=assignedLicenses/any(x:x/skuId eq {E3.upper()})&$select=id")
    assert sorted(u["id"] for u in users) == expected and expected
    none, _ = graph.list_all(f"users?$filter=assignedLicenses/any(s:s/skuId eq {EMS_E5})&$select=id")
    assert none == []


def test_filter_equality_startswith_in_and_boolean_forms(emu, graph):
    users = [u for _, u in emu.directory.iter_users(0)]
    first, second = users[0], users[1]
    by_upn = graph.get(f"users?$filter=userPrincipalName eq '{first['userPrincipalName'].upper()}'").json()["value"]
    assert [u["id"] for u in by_upn] == [first["id"]]
    by_name = graph.get(f"users?$filter=displayName eq '{first['displayName']}'").json()["value"]
    assert [u["id"] for u in by_name] == [first["id"]]
    prefix = first["displayName"][:3]
    starts = graph.list_all(f"users?$filter=startswith(displayName,'{prefix}')&$select=id")[0]
    assert {u["id"] for u in starts} == {u["id"] for u in users if u["displayName"].startswith(prefix)}
    by_ids = graph.get(f"users?$filter=id in ('{first['id']}','{second['id']}')&$select=id").json()["value"]
    assert {u["id"] for u in by_ids} == {first["id"], second["id"]}
    both = graph.get(
        f"users?$filter=userPrincipalName eq '{first['userPrincipalName']}' or userPrincipalName eq '{second['userPrincipalName']}'&$select=id"
    ).json()["value"]
    assert len(both) == 2
    neither = graph.get(f"users?$filter=userPrincipalName eq '{first['userPrincipalName']}' and userPrincipalName eq '{second['userPrincipalName']}'").json()[
        "value"
    ]
    assert neither == []
    groups = graph.get("groups?$filter=securityEnabled eq true&$select=id,securityEnabled").json()["value"]
    assert groups and all(g["securityEnabled"] for g in groups)


def test_advanced_only_operators_need_consistency_level_and_count(emu, graph):
    for query in (
        "users?$filter=usageLocation eq null",
        "users?$filter=displayName ne 'x'",
        f"users?$filter=not(assignedLicenses/any(x:x/skuId eq {E3}))",
        "users?$filter=endswith(mail,'.com')",
        "users?$filter=assignedLicenses/$count eq 0",
    ):
        assert_error_envelope(graph.get(query), 400, "Request_UnsupportedQuery")
        assert graph.get(query, headers=ADVANCED).status_code == 400, "header alone is not enough"
        assert graph.get(query + "&$count=true", headers=ADVANCED).status_code == 200, query
    without_location = graph.get("users?$filter=usageLocation eq null&$count=true&$select=id,usageLocation", headers=ADVANCED).json()
    expected = [u["id"] for _, u in emu.directory.iter_users(0) if u["usageLocation"] is None]
    assert without_location["@odata.count"] == len(expected) > 0
    assert sorted(u["id"] for u in without_location["value"]) == sorted(expected)


def test_has_members_with_license_errors_filter_only_without_advanced_query(graph):
    response = graph.get("groups?$filter=hasMembersWithLicenseErrors eq true&$select=id,displayName")
    assert response.status_code == 200
    for group in graph.get("groups?$select=id,hasMembersWithLicenseErrors").json()["value"]:
        assert "hasMembersWithLicenseErrors" not in group
    refused = graph.get("groups?$filter=hasMembersWithLicenseErrors eq true&$count=true", headers=ADVANCED)
    error = assert_error_envelope(refused, 400, "Request_UnsupportedQuery")
    assert "hasMembersWithLicenseErrors" in error["message"]


def test_count_on_first_page_only_and_silently_ignored_without_header(big):
    emu, graph = big
    first = graph.get("users?$count=true&$top=999&$select=id", headers=ADVANCED).json()
    assert first["@odata.count"] == 2100
    second = graph.get(first["@odata.nextLink"], headers=ADVANCED).json()
    assert "@odata.count" not in second
    assert "@odata.count" not in graph.get("users?$count=true&$top=5").json()
    assert_error_envelope(graph.get("users/$count"), 400, "Request_BadRequest")
    counted = graph.get("users/$count", headers=ADVANCED)
    assert counted.status_code == 200 and counted.text == "2100"


def test_filter_syntax_errors_and_unfilterable_properties(graph):
    assert_error_envelope(graph.get("users?$filter=displayName eq"), 400, "Request_BadRequest")
    assert_error_envelope(graph.get("users?$filter=licenseAssignmentStates/any(x:x/state eq 'Error')"), 400, "Request_UnsupportedQuery")


def test_members_filter_needs_advanced_query(emu, graph):
    group = next(g for _, g in emu.directory.iter_groups(0) if g["displayName"] == "Contractors")
    members = graph.get(f"groups/{group['id']}/members").json()["value"]
    assert members and all(m["@odata.type"] == "#microsoft.graph.user" for m in members)
    target = members[0]
    error = assert_error_envelope(graph.get(f"groups/{group['id']}/members?$filter=id eq '{target['id']}'"), 400, "Request_UnsupportedQuery")
    assert "reference property" in error["message"]
    found = graph.get(f"groups/{group['id']}/members?$filter=id eq '{target['id']}'&$count=true", headers=ADVANCED).json()
    assert [m["id"] for m in found["value"]] == [target["id"]] and found["@odata.count"] == 1


def test_member_paging_and_transitive_members(emu, graph):
    nested = next(g for _, g in emu.directory.iter_groups(0) if g["displayName"] == "All users (nested)")
    direct = graph.get(f"groups/{nested['id']}/members").json()["value"]
    assert [m["@odata.type"] for m in direct] == ["#microsoft.graph.group"]
    assert graph.get(f"groups/{nested['id']}/members/microsoft.graph.user").json()["value"] == []
    transitive, pages = graph.list_all(f"groups/{nested['id']}/transitiveMembers?$top=2")
    assert pages >= 3
    assert {m["@odata.type"] for m in transitive} == {"#microsoft.graph.group", "#microsoft.graph.user"}


def test_audit_log_filter_and_top(emu, graph):
    token = emu.issue_token(permissions=["AuditLog.Read.All", "Directory.Read.All"])
    audit = Graph(emu, token)
    response = audit.get("auditLogs/directoryAudits?$filter=activityDateTime ge 2020-01-01T00:00:00Z&$top=5")
    assert response.status_code == 200
    assert len(response.json()["value"]) <= 5
    assert re.search(r"#auditLogs/directoryAudits$", response.json()["@odata.context"])
