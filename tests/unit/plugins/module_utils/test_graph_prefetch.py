# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Paging with prefetch and concurrent member reads, against the Graph emulator (benchmark-driven changes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import MembershipIndex


def user_page_requests(emulator):
    return [entry for entry in emulator.request_log() if entry["method"] == "GET" and entry["path"].endswith("/users")]


def test_prefetch_stopped_early_leaves_nothing_running(emulator, client):
    pages = client.iter_pages("/users", params={"$select": "id", "$top": 10}, prefetch=True)
    next(pages)
    pages.close()
    count = len(user_page_requests(emulator))
    time.sleep(0.2)
    assert len(user_page_requests(emulator)) == count <= 2


def add_licensed_groups(state, count, members_each):
    """``count`` groups carrying the tenant's first SKU, each with its own ``members_each`` users; (users, group ids)."""
    sku_id = state["subscribedSkus"][0]["skuId"]
    users = [user["id"] for user in state["users"][: count * members_each]]
    group_ids = ["7d0c5a3e-0000-4000-8000-%012d" % index for index in range(count)]
    for index, group_id in enumerate(group_ids):
        state["groups"].append(
            {
                "id": group_id,
                "displayName": "prefetch test %d" % index,
                "description": None,
                "securityEnabled": True,
                "mailEnabled": False,
                "mailNickname": "prefetch%d" % index,
                "groupTypes": [],
                "members": users[index * members_each : (index + 1) * members_each],
                "assignedLicenses": [{"skuId": sku_id, "disabledPlans": []}],
            }
        )
    return users, group_ids


def test_concurrent_member_reads_index_every_licensed_group(emulator, client):
    original = emulator.export_state()
    state = emulator.export_state()
    users, group_ids = add_licensed_groups(state, 3, 10)
    state["processing"] = {"groupLicenses": "queued", "pending": []}
    emulator.load_state(state)
    try:
        index = MembershipIndex(client).load_licensed_groups()
        for position, group_id in enumerate(group_ids):
            assert group_id in index.groups
            for user_id in users[position * 10 : (position + 1) * 10]:
                assert group_id in index.direct_of(user_id.lower())
        other_users = set(user["id"].lower() for user in state["users"]) - set(user_id.lower() for user_id in users)
        assert not any(set(group_ids) & index.direct_of(user_id) for user_id in other_users)
    finally:
        emulator.load_state(original)


def test_next_link_is_read_from_the_raw_page_exactly_as_json_gives_it():
    import json
    from ansible_collections.entraops.licensing.plugins.module_utils import graph_paging

    link = 'https://graph.microsoft.com/v1.0/users?$top=999&$skiptoken=RFNwdAIAAQAAAD8\u00e9x"y\\z'
    tricky_user = {"id": "1", "displayName": 'say "@odata.nextLink": "https://evil.example/"', "@odata.nextLink": None}
    for page in ({"@odata.context": "c", "@odata.nextLink": link, "value": [tricky_user]}, {"value": [tricky_user], "@odata.nextLink": link}):
        for text in (json.dumps(page), json.dumps(page, ensure_ascii=False, indent=2)):
            assert graph_paging._next_link(text.encode("utf-8")) == link
            assert graph_paging._parse_page(text.encode("utf-8")) == page
    last = {"value": [{"id": "1", "displayName": 'a \\"@odata.nextLink\\": \\"x\\"'}]}
    assert graph_paging._next_link(json.dumps(last).encode("utf-8")) is None
    assert graph_paging._next_link(b"") is None and graph_paging._parse_page(b"") == {} and graph_paging._parse_page(b"[1]") == {}


def test_prefetch_sends_the_next_request_before_the_caller_parses_and_checks_the_link(emulator, client, monkeypatch):
    from ansible_collections.entraops.licensing.plugins.module_utils import graph_paging
    from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
    import pytest

    params = {"$select": "id", "$top": 10}
    plain = [user["id"] for page in client.iter_pages("/users", params=params) for user in page["value"]]
    assert [user["id"] for page in client.iter_pages("/users", params=params, prefetch=3) for user in page["value"]] == plain
    # a link found in the raw page that is not the page's own stops the paging with an error, never a wrong page
    monkeypatch.setattr(graph_paging, "_next_link", lambda content: "https://graph.example/elsewhere")
    with pytest.raises(GraphError, match="is not the page's own"):
        list(client.iter_pages("/users", params=params, prefetch=True))


def test_member_chains_of_every_licensed_group_run_side_by_side(emulator, client, monkeypatch):
    original = emulator.export_state()
    state = emulator.export_state()
    users, group_ids = add_licensed_groups(state, 6, 2)
    in_flight = []
    peak = []
    lock = threading.Lock()
    original_request = client.request

    def counting_request(method, path, *args, **kwargs):
        if "/members" not in path:
            return original_request(method, path, *args, **kwargs)
        with lock:
            in_flight.append(path)
            peak.append(len(in_flight))
        try:
            return original_request(method, path, *args, **kwargs)
        finally:
            with lock:
                in_flight.remove(path)

    monkeypatch.setattr(client, "request", counting_request)
    emulator.load_state(state)
    # every answer takes 300 ms, so chains that run side by side are in flight together
    emulator.configure(answer_time_ms=300)
    try:
        assert client.max_concurrency == 4 and client.read_chains >= 6
        index = MembershipIndex(client).load_licensed_groups()
        assert set(group_ids) <= set(index.groups)
        for position, group_id in enumerate(group_ids):
            for user_id in users[position * 2 : (position + 1) * 2]:
                assert group_id in index.direct_of(user_id.lower())
        licensed = sum(1 for group in state["groups"] if group.get("assignedLicenses"))
        assert max(peak) == min(licensed, client.read_chains) > client.max_concurrency
    finally:
        emulator.configure(answer_time_ms=0)
        emulator.load_state(original)
