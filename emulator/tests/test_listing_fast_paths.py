"""The listing fast paths answer exactly what building every property of every object would.

User listings build only the selected properties and those the $filter reads; member listings
build the dicts of the page only. These tests compare every page, over several writes and the
background group processing they queue, with a reference computed here from full user dicts.
"""

import pytest

from conftest import E3, EMS_E5, Graph
from graph_emulator import Emulator, generate_tenant, odata

SELECT = "id,userPrincipalName,usageLocation,assignedLicenses,licenseAssignmentStates"
WRITER = ["User.ReadWrite.All", "LicenseAssignment.ReadWrite.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Organization.Read.All"]


def tenant_with_licensed_groups(users=1200, groups=2):
    tenant = generate_tenant(users=users, seed=21)
    ids = [user["id"] for user in tenant["users"]]
    for index in range(groups):
        tenant["groups"].append(
            {
                "id": f"00000000-0000-4000-8000-{index:012d}",
                "displayName": f"LIC {index}",
                "description": None,
                "securityEnabled": True,
                "mailEnabled": False,
                "mailNickname": f"lic{index}",
                "groupTypes": [],
                "members": ids[index::groups],
                "assignedLicenses": [{"skuId": E3, "disabledPlans": []}],
            }
        )
    return tenant


@pytest.fixture()
def licensed():
    with Emulator(tenant=tenant_with_licensed_groups(), processing_rate=0) as emulator:
        yield emulator, Graph(emulator, emulator.issue_token(permissions=WRITER))


def holds(user, sku):
    return any(lic["skuId"] == sku for lic in user["assignedLicenses"])


def reference_users(emu, select, keep):
    """Full user dicts (every computed property), filtered by ``keep``, projected on ``select``."""
    names = odata.parse_select(select, "user")
    return [odata.project(user, names, "user") for _, user in emu.directory.iter_users(0) if keep(user)]


def as_member(entity, names):
    kind = "group" if entity["@odata.type"].endswith(".group") else "user"
    return odata.project(entity, names, kind, with_type=True)


def listed(graph, url, **kwargs):
    items, pages = graph.list_all(url, **kwargs)
    return items


def assert_listings_match(emu, graph):
    plans = [plan["servicePlanId"] for plan in emu.directory.subscribed_skus()[0]["servicePlans"]]
    cases = [
        (f"users?$select={SELECT}&$top=250&$filter=assignedLicenses/any(x:x/skuId eq {E3})", SELECT, lambda u: holds(u, E3)),
        (f"users?$select={SELECT}&$top=999&$filter=assignedLicenses/any(x:x/skuId eq {EMS_E5})", SELECT, lambda u: holds(u, EMS_E5)),
        # the filter reads a property the $select leaves out: it must still be computed, and not returned
        (
            f"users?$select=id,usageLocation&$top=300&$filter=assignedPlans/any(x:x/servicePlanId eq {plans[2]})",
            "id,usageLocation",
            lambda u: any(p["servicePlanId"] == plans[2] for p in u["assignedPlans"]),
        ),
        ("users?$select=id,licenseAssignmentStates,city,businessPhones&$top=400", "id,licenseAssignmentStates,city,businessPhones", lambda u: True),
        ("users?$top=500&$filter=usageLocation eq 'NL'", None, lambda u: u["usageLocation"] == "NL"),
    ]
    for url, select, keep in cases:
        assert listed(graph, url) == reference_users(emu, select, keep), url
    # collection properties a user does not have (or has set to null) are [] in the page, null for the filter
    advanced = {"headers": {"ConsistencyLevel": "eventual"}}
    url = "users?$select=id,proxyAddresses,otherMails,businessPhones,mobilePhone&$filter=proxyAddresses eq null&$count=true&$top=700"
    assert listed(graph, url, **advanced) == reference_users(
        emu, "id,proxyAddresses,otherMails,businessPhones,mobilePhone", lambda u: u.get("proxyAddresses") is None
    )
    body = graph.get(url, **advanced).json()
    assert body["@odata.count"] == len(reference_users(emu, "id", lambda u: True))
    for group_id in [g["id"] for _, g in emu.directory.iter_groups(0)]:
        full = emu.directory.list_members(group_id, select=("id",))
        assert listed(graph, f"groups/{group_id}/members?$select=id&$top=170") == [as_member(m, ["id"]) for m in full]
        users = [m for m in emu.directory.list_members(group_id, select=("id", "assignedLicenses")) if m["@odata.type"].endswith(".user")]
        assert listed(graph, f"groups/{group_id}/members/microsoft.graph.user?$select=id,assignedLicenses&$top=333") == [
            as_member(m, ["id", "assignedLicenses"]) for m in users
        ]
        transitive = emu.directory.list_transitive_members(group_id, select=("id",))
        assert listed(graph, f"groups/{group_id}/transitiveMembers?$select=id&$top=400") == [as_member(m, ["id"]) for m in transitive]
        errors = emu.directory.members_with_license_errors(group_id, select=("id",))
        assert listed(graph, f"groups/{group_id}/membersWithLicenseErrors?$select=id&$top=100") == [as_member(m, ["id"]) for m in errors]


def test_listings_match_full_dicts_before_and_after_writes_and_processing(licensed):
    emu, graph = licensed
    assert_listings_match(emu, graph)
    users = [u["id"] for _, u in emu.directory.iter_users(0, select=("id",))]
    group_ids = [g["id"] for _, g in emu.directory.iter_groups(0) if g["displayName"].startswith("LIC")]
    assert graph.patch(f"users/{users[3]}", {"city": "Delft", "businessPhones": ["+31 15"], "usageLocation": "DE"}).status_code == 204
    assert graph.patch(f"users/{users[7]}", {"businessPhones": None, "otherMails": ["x@example.com"], "mobilePhone": "+31 6"}).status_code == 204
    assert graph.post(f"users/{users[4]}/assignLicense", {"addLicenses": [], "removeLicenses": [E3]}).status_code == 200
    assert graph.post(f"users/{users[5]}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []}).status_code == 200
    assert graph.delete(f"groups/{group_ids[0]}/members/{users[0]}/$ref").status_code == 204
    assert graph.delete(f"users/{users[6]}").status_code == 204
    plan = emu.directory.subscribed_skus()[0]["servicePlans"][4]["servicePlanId"]
    assert (
        graph.post(f"groups/{group_ids[1]}/assignLicense", {"addLicenses": [{"skuId": E3, "disabledPlans": [plan]}], "removeLicenses": []}).status_code == 202
    )
    assert_listings_match(emu, graph)  # queued, not processed: entries still the old ones
    for _ in range(200):  # part of the background processing
        emu.directory._process_one()
    assert_listings_match(emu, graph)
    emu.directory.process_all()
    assert_listings_match(emu, graph)
    # what changed is visible in the very next listing
    fresh = {u["id"]: u for u in listed(graph, f"users?$select={SELECT}&$top=999")}
    assert users[6] not in fresh
    assert not holds(fresh[users[4]], E3) or any(s["assignedByGroup"] for s in fresh[users[4]]["licenseAssignmentStates"])
    assert holds(fresh[users[5]], EMS_E5)
    assert fresh[users[3]]["usageLocation"] == "DE"
    moved = fresh[users[1]]["licenseAssignmentStates"]
    assert any(s["assignedByGroup"] == group_ids[1] and s["disabledPlans"] == [plan] for s in moved)
    assert not any(s["assignedByGroup"] == group_ids[0] for s in fresh[users[0]]["licenseAssignmentStates"])


def test_member_listing_errors_keep_their_order(licensed):
    emu, graph = licensed
    unknown = "00000000-0000-4000-8000-ffffffffffff"
    # a bad $select is refused before the group is looked up, as before the lazy member pages
    assert graph.get(f"groups/{unknown}/members?$select=nope").status_code == 400
    assert graph.get(f"groups/{unknown}/members?$select=id").status_code == 404
    group_id = next(g["id"] for _, g in emu.directory.iter_groups(0) if g["displayName"] == "LIC 0")
    body = graph.get(f"groups/{group_id}/members?$count=true&$select=id&$top=5", headers={"ConsistencyLevel": "eventual"}).json()
    assert body["@odata.count"] == 600 and len(body["value"]) == 5


def test_filter_reads_only_what_it_names():
    _, properties = odata.parse_filter_with_properties(
        f"assignedLicenses/any(x:x/skuId eq {E3}) and startswith(displayName,'A') or not (usageLocation eq 'NL')", "user", advanced=True
    )
    assert properties == {"assignedLicenses", "displayName", "usageLocation"}
    assert odata.parse_filter_with_properties(None, "user", False) == (None, frozenset())


@pytest.mark.parametrize(
    "operator, left, right, expected",
    [
        ("eq", "ABC", "abc", True),
        ("ne", "ABC", "abc", False),
        ("gt", 3, 2, True),
        ("le", None, 2, False),
        ("ge", "2024-01-02T00:00:00Z", "2024-01-01T23:00:00+00:00", True),
        ("lt", "x", 1, False),
        ("gt", 1, None, False),
        ("eq", None, None, True),
        ("eq", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", True),
        ("lt", "2024-01-01T00:00:00", "2024-01-01T00:00:01Z", True),
        ("eq", "2024-13-01T00:00:00Z", "2024-13-01t00:00:00z", True),
    ],
)
def test_comparisons(operator, left, right, expected):
    assert odata._compare(left, operator, right) is expected
