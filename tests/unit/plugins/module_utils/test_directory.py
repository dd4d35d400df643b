# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""directory.py against the Graph emulator (real HTTPS, real msal)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import directory
from ansible_collections.entraops.licensing.plugins.module_utils.directory import (
    DirectoryInputError,
    add_members,
    count_members_without_skus,
    create_security_group,
    direct_sku_holders,
    direct_user_member_ids,
    find_group,
    iter_direct_members,
    iter_user_members,
    mail_nickname_for,
    remove_members,
    resolve_users,
    split_members,
)

from graph_emulator import generate_tenant

from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import graph_writes as writes

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


@pytest.fixture
def emu(emulator):
    """The worker's emulator holding a small fresh tenant; the previous tenant is restored afterwards."""
    original = emulator.export_state()
    emulator.load_state(generate_tenant(users=30, seed=5))
    emulator.reset_stats()
    yield emulator
    emulator.load_state(original)


@pytest.fixture
def graph(emu, make_client):
    return make_client(backoff_base=0.01, backoff_cap=0.05, max_retry_time=20)


def users(emu):
    return list(emu.export_state()["users"])


def test_resolve_users_by_upn_and_id_in_batches(emu, graph):
    people = users(emu)
    keys = [people[0]["userPrincipalName"].upper(), people[1]["id"], "nobody@contoso.com", people[0]["userPrincipalName"], "not-a-user"] + [
        p["userPrincipalName"] for p in people[2:25]
    ]
    found, unknown = resolve_users(graph, keys)
    assert unknown == ["nobody@contoso.com", "not-a-user"]
    assert found[keys[0]] == {"id": people[0]["id"], "user_principal_name": people[0]["userPrincipalName"]}
    assert found[keys[1]]["id"] == people[1]["id"]
    assert len(found) == len(keys) - 2
    batches = [entry for entry in emu.request_log() if entry["path"] == "/v1.0/$batch"]
    assert len(batches) == 2  # 27 distinct keys, 20 per $batch
    assert writes(emu) == []


def test_resolve_users_refuses_blank_keys(graph):
    with pytest.raises(DirectoryInputError, match="'' is not a valid user"):
        resolve_users(graph, [""])


def test_find_group_by_name_id_ambiguous_and_unlicensable(emu, graph):
    created = create_security_group(graph, "LIC O'Brien E3", "quotes in names")
    assert find_group(graph, "lic o'brien e3")["id"] == created["id"]
    assert find_group(graph, created["id"].upper())["displayName"] == "LIC O'Brien E3"
    assert find_group(graph, "no such group") is None
    assert find_group(graph, "8f6d0558-4ef8-4a38-9227-66581e27a1c0") is None
    graph.post("/groups", body={"displayName": "Twice", "mailNickname": "t1", "mailEnabled": False, "securityEnabled": True})
    graph.post("/groups", body={"displayName": "Twice", "mailNickname": "t2", "mailEnabled": False, "securityEnabled": True})
    with pytest.raises(DirectoryInputError, match="2 groups are named 'Twice'"):
        find_group(graph, "Twice")
    graph.post("/groups", body={"displayName": "Mail only", "mailNickname": "m", "mailEnabled": True, "securityEnabled": False, "groupTypes": ["Unified"]})
    with pytest.raises(DirectoryInputError, match="cannot carry licenses: it is not security-enabled"):
        find_group(graph, "Mail only")
    assert find_group(graph, "Mail only", require_licensable=False)["securityEnabled"] is False


def test_a_display_name_longer_than_graphs_eq_limit_is_found_with_an_advanced_query(emu, graph):
    # Graph takes at most 120 characters in an eq value outside advanced queries; display names may hold 256
    name = "LIC" + " long name" * 20
    created = create_security_group(graph, name)
    emu.reset_stats()
    assert find_group(graph, name.lower())["id"] == created["id"]
    lookups = [entry for entry in emu.request_log() if entry["route"] == "GET /v1.0/groups"]
    assert [entry["status"] for entry in lookups] == [200]
    assert find_group(graph, name + "x") is None


def test_mail_nickname_is_ascii():
    assert mail_nickname_for("LIC - Office 365 E3 (München)") == "LICOffice365E3Mnchen"
    assert mail_nickname_for("ÄÖÜ") == "licensinggroup"


def test_add_members_in_chunks_and_already_present_ones(emu, graph):
    people = users(emu)
    group = create_security_group(graph, "LIC add")
    add_members(graph, group["id"], [people[0]["id"], people[1]["id"]])
    emu.reset_stats()
    ids = [p["id"] for p in people[:25]]
    outcome = add_members(graph, group["id"], ids)
    # chunk 1 (20) was refused because 2 already existed: re-read, then the 18 missing were sent one by one
    assert sorted(outcome["already_members"]) == sorted(ids[:2])
    assert sorted(outcome["added"]) == sorted(ids[2:])
    assert set(direct_user_member_ids(graph, group["id"])) == set(ids)


def test_add_members_settles_an_unknown_outcome_by_reading_back(emu, graph):
    people = users(emu)
    group = create_security_group(graph, "LIC unknown")
    emu.add_fault(method="PATCH", route="/groups/", status=500, apply_then=True, count=1)
    outcome = add_members(graph, group["id"], [p["id"] for p in people[:3]])
    assert sorted(outcome["already_members"]) == sorted(p["id"] for p in people[:3])
    assert len(direct_user_member_ids(graph, group["id"])) == 3


def test_members_listing_paging_nested_groups_and_removal(emu, graph, monkeypatch):
    monkeypatch.setattr(directory, "PAGE_SIZE", 4)
    emu.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    people = users(emu)
    group = create_security_group(graph, "LIC list")
    nested = create_security_group(graph, "LIC nested")
    add_members(graph, group["id"], [p["id"] for p in people[:10]] + [nested["id"]])
    members, nested_ids, others = split_members(iter_direct_members(graph, group["id"]))
    assert len(members) == 10 and nested_ids == [nested["id"]] and others == 0
    streamed_nested = []
    streamed = iter_user_members(iter_direct_members(graph, group["id"]), streamed_nested)
    assert next(streamed)["id"] == members[0]["id"]  # one member at a time, before the listing is read to its end
    assert [member["id"] for member in streamed] == [member["id"] for member in members[1:]] and streamed_nested == nested_ids
    assert len(direct_user_member_ids(graph, group["id"])) == 10  # the user cast leaves the group out
    pages = [entry for entry in emu.request_log() if entry["path"].endswith("/members/microsoft.graph.user")]
    assert len(pages) == 3
    removed = remove_members(graph, group["id"], [people[0]["id"], people[0]["id"], people[1]["id"]])
    assert len(removed) == 3  # the second removal of the same user found it gone: still removed
    assert len(direct_user_member_ids(graph, group["id"])) == 8


def test_direct_sku_holders_keep_direct_assignments_only(emu, graph):
    emu.configure(read_lag_ms=0)  # lists right after its own write (ENTRAOPS_STRICT_EMULATOR lags reads)
    people = users(emu)
    group = create_security_group(graph, "LIC holders")
    add_members(graph, group["id"], [people[0]["id"]])
    graph.post("/groups/%s/assignLicense" % group["id"], body={"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []})
    emu.process_all()
    graph.post("/users/%s/assignLicense" % people[0]["id"], body={"addLicenses": [], "removeLicenses": [E3]})
    holders = direct_sku_holders(graph, E3.upper())
    assert people[0]["id"] not in [h["id"] for h in holders]  # holds E3 only through the group now
    assert len(holders) == len(people) - 1
    missing, total = count_members_without_skus(graph, group["id"], [E3, "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"])
    assert total == 1 and missing == {E3: 0, "efccb6f7-5641-4e0e-bd10-b4976e1bf68e": 1}
    assert emu.loss_ledger() == []
