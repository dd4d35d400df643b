"""Groups and users synced from on-premises AD over HTTPS: Graph's refusals, the simulated Entra Connect (changes
appear at a sync cycle, on interval or on demand), licensing of synced members, and the hybrid profile."""

import time

import pytest

from conftest import E3, EMS_E5, Graph, assert_error_envelope, https_session
from graph_emulator import Emulator, generate_tenant
from graph_emulator.engine import ONPREM_MASTERED
from graph_emulator.onprem import SYNC_APP_NAME

WRITER = ["Group.ReadWrite.All", "User.ReadWrite.All", "LicenseAssignment.ReadWrite.All", "GroupMember.ReadWrite.All"]


@pytest.fixture()
def emu():
    with Emulator(tenant=generate_tenant(users=60, seed=1, profile="hybrid"), sync_interval_s=0) as emulator:
        yield emulator


@pytest.fixture()
def graph(emu):
    return Graph(emu, emu.issue_token(permissions=WRITER))


def control(emu, method, path, body=None):
    return https_session(emu).request(method, f"{emu.base_url}/_emulator/{path}", json=body, timeout=30)


def group_named(emu, name):
    return next(g for _, g in emu.directory.iter_groups() if g["displayName"] == name)


def users(emu):
    return [u for _, u in emu.directory.iter_users(0)]


def member_ids(graph, group_id):
    items, _ = graph.list_all(f"groups/{group_id}/members?$select=id&$top=999")
    return {item["id"] for item in items}


def missing_users(emu):
    """Synced users holding E3 directly who are not (yet) in the AD group "All users"."""
    all_users = group_named(emu, "All users")
    members = {mid for mid, _ in emu.directory.member_refs(all_users["id"])}
    contractors = {mid for mid, _ in emu.directory.member_refs(group_named(emu, "Contractors")["id"])}
    return [u for u in users(emu) if u["onPremisesSyncEnabled"] and u["id"] not in members and u["id"] not in contractors]


def test_profile_hybrid_shape(emu):
    tenant = generate_tenant(users=60, seed=1, profile="hybrid")
    assert tenant == generate_tenant(users=60, seed=1, profile="hybrid")
    assert [u["id"] for u in tenant["users"]] == [u["id"] for u in generate_tenant(users=60, seed=1, profile="seed")["users"]]
    everyone = users(emu)
    cloud_only = [u for u in everyone if not u["onPremisesSyncEnabled"]]
    assert len(cloud_only) == 5 and all(u["onPremisesSecurityIdentifier"] is None for u in cloud_only)
    synced = [u for u in everyone if u["onPremisesSyncEnabled"]]
    assert len(synced) == 55
    sids = [u["onPremisesSecurityIdentifier"] for u in synced]
    assert len(set(sids)) == 55 and all(sid.startswith("S-1-5-21-") and len(sid.split("-")) == 8 for sid in sids)
    assert len({sid.rsplit("-", 1)[0] for sid in sids}) == 1  # one domain
    assert all(len(u["onPremisesSamAccountName"]) <= 20 and u["onPremisesDomainName"] == "corp.contoso.com" for u in synced)
    all_users = group_named(emu, "All users")
    contractors = group_named(emu, "Contractors")
    for group in (all_users, contractors):
        assert group["onPremisesSyncEnabled"] is True and group["onPremisesSecurityIdentifier"].startswith("S-1-5-21-")
        assert group["onPremisesSamAccountName"] and group["groupTypes"] == []
    refs = emu.directory.member_refs(all_users["id"])
    assert (contractors["id"], "group") in refs
    user_members = {mid for mid, kind in refs if kind == "user"}
    assert not user_members & {u["id"] for u in cloud_only}
    assert len(missing_users(emu)) == 20
    assert len(user_members) == 60 - 5 - 20 - 5  # minus cloud-only, joiners missing on-premises, nested contractors
    assert all(any(lic["skuId"] == E3 for lic in u["assignedLicenses"]) for u in everyone)
    no_location = [u for u in everyone if u["usageLocation"] is None]
    assert len(no_location) == 3 and all(u["id"] in user_members for u in no_location)


def test_graph_refuses_writes_to_a_synced_group_and_its_members_directly_and_in_batch(emu, graph):
    group = group_named(emu, "All users")
    member = next(mid for mid, kind in emu.directory.member_refs(group["id"]) if kind == "user")
    joiner = missing_users(emu)[0]["id"]
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{joiner}"}
    for response in (
        graph.post(f"groups/{group['id']}/members/$ref", ref),
        graph.delete(f"groups/{group['id']}/members/{member}/$ref"),
        graph.patch(f"groups/{group['id']}", {"members@odata.bind": [ref["@odata.id"]]}),
        graph.patch(f"groups/{group['id']}", {"description": "renamed in the cloud"}),
        graph.delete(f"groups/{group['id']}"),
    ):
        assert assert_error_envelope(response, 400, "Request_BadRequest")["message"] == ONPREM_MASTERED
    items = [
        {"id": "a", "method": "POST", "url": f"/groups/{group['id']}/members/$ref", "headers": {"Content-Type": "application/json"}, "body": ref},
        {"id": "b", "method": "DELETE", "url": f"/groups/{group['id']}/members/{member}/$ref"},
        {"id": "c", "method": "DELETE", "url": f"/groups/{group['id']}"},
    ]
    answers = graph.post("$batch", {"requests": items}).json()["responses"]
    assert {a["id"]: a["status"] for a in answers} == {"a": 400, "b": 400, "c": 400}
    assert {a["body"]["error"]["message"] for a in answers} == {ONPREM_MASTERED}
    assert joiner not in member_ids(graph, group["id"]) and member in member_ids(graph, group["id"])
    # group license assignment is a cloud feature: allowed on a synced group
    assigned = graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []})
    assert assigned.status_code == 202


def test_a_synced_users_ad_attributes_are_refused_but_its_usage_location_is_writable(emu, graph):
    synced = next(u for u in users(emu) if u["onPremisesSyncEnabled"])
    cloud = next(u for u in users(emu) if not u["onPremisesSyncEnabled"])
    error = assert_error_envelope(graph.patch(f"users/{synced['id']}", {"department": "Sales"}), 400, "Request_BadRequest")
    assert error["message"] == ONPREM_MASTERED
    assert graph.patch(f"users/{synced['id']}", {"usageLocation": "FR"}).status_code == 204
    assert graph.patch(f"users/{cloud['id']}", {"department": "Sales"}).status_code == 204
    assert_error_envelope(graph.patch(f"users/{cloud['id']}", {"onPremisesSyncEnabled": True}), 400, "Request_BadRequest")


def test_onprem_changes_appear_only_after_a_sync_cycle_run_on_demand_and_license_the_members(emu, graph):
    group = group_named(emu, "All users")
    emu.directory.set_sku_units("EMSPREMIUM", 100)  # enough for every user
    graph.post(f"groups/{group['id']}/assignLicense", {"addLicenses": [{"skuId": EMS_E5, "disabledPlans": []}], "removeLicenses": []})
    emu.process_all()
    assert emu.loss_ledger() == []
    joiners = missing_users(emu)[:3]
    leaver = next(mid for mid, kind in emu.directory.member_refs(group["id"]) if kind == "user")
    by = [joiners[0]["id"], joiners[1]["onPremisesSecurityIdentifier"], joiners[2]["onPremisesSamAccountName"].upper()]
    answer = control(emu, "POST", f"onprem/groups/{group['id']}/members", {"add": by, "remove": [leaver]})
    assert answer.status_code == 202 and answer.json() == {"pending": 4}
    members = member_ids(graph, group["id"])
    assert not {j["id"] for j in joiners} & members and leaver in members  # AD changed, Entra not yet
    emu.process_all()  # group licensing is not a sync cycle
    assert leaver in member_ids(graph, group["id"])
    cycle = control(emu, "POST", "sync")
    assert cycle.status_code == 200
    assert cycle.json() == {"applied": [{"groupId": group["id"], "added": [j["id"] for j in joiners], "removed": [leaver]}], "pending": 0}
    members = member_ids(graph, group["id"])
    assert {j["id"] for j in joiners} <= members and leaver not in members
    emu.process_all()
    holders = {u["id"] for u in users(emu) if any(lic["skuId"] == EMS_E5 for lic in u["assignedLicenses"])}
    assert {j["id"] for j in joiners} <= holders and leaver not in holders
    ledger = emu.loss_ledger()
    assert [(e["user_id"], e["sku_id"], e["cause"]) for e in ledger] == [(leaver, EMS_E5, "onprem_sync")]
    events = [e for e in emu.directory.audit_events() if e["activityDisplayName"] in ("Add member to group", "Remove member from group")]
    assert len(events) == 4 and {e["initiatedBy"]["app"]["displayName"] for e in events} == {SYNC_APP_NAME}
    assert graph.get(f"groups/{group['id']}?$select=onPremisesLastSyncDateTime").json()["onPremisesLastSyncDateTime"] != "2026-01-05T06:00:00Z"


def test_a_sync_cycle_runs_on_its_interval(emu, graph):
    group = group_named(emu, "All users")
    joiner = missing_users(emu)[0]["id"]
    config = control(emu, "POST", "config", {"sync_interval_s": 1.5}).json()
    assert config["sync_interval_s"] == 1.5
    emu.run_sync_cycle()  # the interval counts from this cycle
    assert emu.onprem_change_members(group["id"], add=[joiner]) == 1
    assert joiner not in member_ids(graph, group["id"])
    time.sleep(1.6)
    assert joiner in member_ids(graph, group["id"])  # the read ran the cycle that was due
    assert emu.directory.sync_pending() == 0


def test_interval_zero_means_on_demand_only(emu, graph):
    group = group_named(emu, "All users")
    joiner = missing_users(emu)[0]["id"]
    emu.onprem_change_members(group["id"], add=[joiner])
    time.sleep(0.2)
    emu.process_all()
    assert joiner not in member_ids(graph, group["id"]) and emu.directory.sync_pending() == 1
    assert emu.run_sync_cycle()["applied"][0]["added"] == [joiner]


def test_onprem_changes_refuse_cloud_only_users_non_synced_groups_and_unknown_names(emu, graph):
    group = group_named(emu, "All users")
    cloud = next(u for u in users(emu) if not u["onPremisesSyncEnabled"])
    refused = control(emu, "POST", f"onprem/groups/{group['id']}/members", {"add": [cloud["id"]]})
    assert refused.status_code == 400 and "cloud-only" in refused.json()["error"] and cloud["userPrincipalName"] in refused.json()["error"]
    with pytest.raises(ValueError, match="cloud-only"):
        emu.onprem_change_members(group["id"], add=[cloud["id"]])
    created = graph.post("groups", {"displayName": "Cloud group", "mailNickname": "CloudGroup", "mailEnabled": False, "securityEnabled": True}).json()
    with pytest.raises(ValueError, match="not synced from on-premises"):
        emu.onprem_change_members(created["id"], add=[missing_users(emu)[0]["id"]])
    unknown = control(emu, "POST", f"onprem/groups/{group['id']}/members", {"add": ["S-1-5-21-1-2-3-999999"]})
    assert unknown.status_code == 400 and "S-1-5-21-1-2-3-999999" in unknown.json()["error"]
    assert control(emu, "POST", f"onprem/groups/{group['id']}/members", {"add": "x"}).status_code == 400
    assert emu.directory.sync_pending() == 0  # nothing half-recorded


def test_msgraph_sdk_reads_dynamic_and_synced_groups_and_users_with_their_typed_models(emu):
    import asyncio

    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.groups.item.group_item_request_builder import GroupItemRequestBuilder
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    from test_sdk import sdk_client

    synced_group = group_named(emu, "All users")
    synced_user = next(u for u in users(emu) if u["onPremisesSyncEnabled"])
    dynamic = emu.directory.create_group(
        {
            "displayName": "Dynamic",
            "mailNickname": "Dynamic",
            "mailEnabled": False,
            "securityEnabled": True,
            "groupTypes": ["DynamicMembership"],
            "membershipRule": "user.objectId -ne null",
            "membershipRuleProcessingState": "On",
        },
        None,
    )

    async def scenario():
        client, _ = sdk_client(emu)
        group_select = [
            "id",
            "groupTypes",
            "membershipRule",
            "membershipRuleProcessingState",
            "onPremisesSyncEnabled",
            "onPremisesSecurityIdentifier",
            "onPremisesSamAccountName",
            "onPremisesDomainName",
            "onPremisesLastSyncDateTime",
        ]
        query = GroupItemRequestBuilder.GroupItemRequestBuilderGetQueryParameters(select=group_select)
        read_dynamic = await client.groups.by_group_id(dynamic["id"]).get(request_configuration=RequestConfiguration(query_parameters=query))
        read_synced = await client.groups.by_group_id(synced_group["id"]).get(request_configuration=RequestConfiguration(query_parameters=query))
        user_query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "onPremisesSyncEnabled", "onPremisesSecurityIdentifier", "onPremisesSamAccountName", "onPremisesExtensionAttributes", "userType"]
        )
        read_user = await client.users.by_user_id(synced_user["id"]).get(request_configuration=RequestConfiguration(query_parameters=user_query))
        return read_dynamic, read_synced, read_user

    read_dynamic, read_synced, read_user = asyncio.run(scenario())
    assert read_dynamic.group_types == ["DynamicMembership"] and read_dynamic.membership_rule == "user.objectId -ne null"
    assert read_dynamic.membership_rule_processing_state == "On" and read_dynamic.on_premises_sync_enabled is None
    assert read_synced.on_premises_sync_enabled is True
    assert read_synced.on_premises_security_identifier == synced_group["onPremisesSecurityIdentifier"]
    assert read_synced.on_premises_sam_account_name == "AllUsers" and read_synced.on_premises_domain_name == "corp.contoso.com"
    assert read_synced.on_premises_last_sync_date_time.year == 2026
    assert read_user.on_premises_sync_enabled is True and read_user.user_type == "Member"
    assert read_user.on_premises_sam_account_name == synced_user["onPremisesSamAccountName"]
    assert read_user.on_premises_extension_attributes.extension_attribute1 is None


def test_filters_on_the_onprem_properties(emu, graph):
    synced, _ = graph.list_all("users?$filter=onPremisesSyncEnabled eq true&$select=id,onPremisesSamAccountName&$top=999")
    assert len(synced) == 55
    groups, _ = graph.list_all("groups?$filter=onPremisesSyncEnabled eq true&$select=id,displayName")
    assert {g["displayName"] for g in groups} == {"All users", "Contractors"}
    sid = group_named(emu, "All users")["onPremisesSecurityIdentifier"]
    by_sid, _ = graph.list_all(f"groups?$filter=onPremisesSecurityIdentifier eq '{sid}'&$select=id")
    assert [g["id"] for g in by_sid] == [group_named(emu, "All users")["id"]]
    typed = graph.get("users?$filter=onPremisesSyncEnabled eq 'true'")
    assert_error_envelope(typed, 400, "BadRequest")
