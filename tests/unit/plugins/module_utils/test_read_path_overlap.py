# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The read path's overlap (deeper prefetch, member lists read in the background) and classification shortcuts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import licensing
from ansible_collections.entraops.licensing.plugins.module_utils.assignments import MembershipIndex, iter_records
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphError
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    LicensingInputError,
    SkuCatalog,
    classify,
    classify_user,
    user_assignment_states,
)


def user_page_requests(emulator):
    return [entry for entry in emulator.request_log() if entry["method"] == "GET" and entry["path"].endswith("/users")]


def wait_for(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("prefetch, ahead, page_size", [(True, 1, 25), (4, 4, 10)])
def test_prefetch_depth_runs_the_chain_ahead_and_keeps_order(emulator, client, prefetch, ahead, page_size):
    emulator.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    params = {"$select": "id", "$top": page_size}
    plain = [user["id"] for page in client.iter_pages("/users", params=params) for user in page["value"]]
    emulator.reset_stats()
    pages = client.iter_pages("/users", params=params, prefetch=prefetch)
    first = next(pages)
    # `ahead` pages requested beyond the one the caller holds, and no more
    assert wait_for(lambda: len(user_page_requests(emulator)) == ahead + 1)
    time.sleep(0.1)
    assert len(user_page_requests(emulator)) == ahead + 1
    ids = [user["id"] for page in [first] + list(pages) for user in page["value"]]
    assert ids == plain
    assert len(user_page_requests(emulator)) == -(-len(plain) // page_size)


def test_prefetch_depth_stopped_early_leaves_nothing_running(emulator, client):
    pages = client.iter_pages("/users", params={"$select": "id", "$top": 10}, prefetch=3)
    next(pages)
    pages.close()
    count = len(user_page_requests(emulator))
    time.sleep(0.2)
    assert len(user_page_requests(emulator)) == count <= 5


def test_prefetch_error_is_raised_after_the_pages_before_it(emulator, client):
    emulator.configure(short_pages=False, empty_pages=False)  # counts pages: full ones (ENTRAOPS_STRICT_EMULATOR may shorten them)
    emulator.add_fault(method="GET", route=r"/users$", status=400, skip=2)
    pages = client.iter_pages("/users", params={"$select": "id", "$top": 10}, prefetch=4)
    assert len(next(pages)["value"]) == 10
    assert len(next(pages)["value"]) == 10
    with pytest.raises(GraphError):
        next(pages)


def licensed_group_state(emulator, count=3):
    state = emulator.export_state()
    sku_id = state["subscribedSkus"][0]["skuId"]
    users = [user["id"] for user in state["users"][:30]]
    group_ids = ["7d0c5a3e-0000-4000-8000-0000000001%02d" % index for index in range(count)]
    for index, group_id in enumerate(group_ids):
        state["groups"].append(
            {
                "id": group_id,
                "displayName": "overlap test %d" % index,
                "description": None,
                "securityEnabled": True,
                "mailEnabled": False,
                "mailNickname": "overlap%d" % index,
                "groupTypes": [],
                "members": users[index * 10 : (index + 1) * 10],
                "assignedLicenses": [{"skuId": sku_id, "disabledPlans": []}],
            }
        )
    state["processing"] = {"groupLicenses": "processed"}
    return state, sku_id, group_ids


def test_background_loading_gives_the_same_records_as_loading_first(emulator, client):
    original = emulator.export_state()
    state, sku_id, group_ids = licensed_group_state(emulator)
    emulator.load_state(state)
    try:
        catalog = SkuCatalog.from_subscribed_skus(client.get("/subscribedSkus"))
        first = list(iter_records(client, catalog, MembershipIndex(client).load_licensed_groups(), sku_ids=[sku_id]))
        emulator.configure(latency_ms=30)  # member pages take a while: users are paged meanwhile
        index = MembershipIndex(client).start_loading()
        assert not index.loaded()
        assert index.pages_ahead() > 1
        second = list(iter_records(client, catalog, index, sku_ids=[sku_id]))
        assert index.wait().loaded() and index.pages_ahead() is True
        assert second == first
        assert sum(1 for record in second if record["verdict"] == "safe_to_remove") >= 30
    finally:
        emulator.load_state(original)


def test_background_loading_error_is_raised_by_classify_and_wait(emulator, client):
    original = emulator.export_state()
    state, sku_id, group_ids = licensed_group_state(emulator)
    emulator.load_state(state)
    try:
        emulator.add_fault(method="GET", route=r"/groups/[^/]+/members$", status=403, count=None)
        catalog = SkuCatalog.from_subscribed_skus(client.get("/subscribedSkus"))
        index = MembershipIndex(client).start_loading()
        with pytest.raises(GraphError):
            list(iter_records(client, catalog, index, sku_ids=[sku_id]))
        index = MembershipIndex(client).start_loading()
        with pytest.raises(GraphError):
            index.wait()  # no user classified: the caller still sees the failure
        index.wait()  # raised once
    finally:
        emulator.clear_faults()
        emulator.load_state(original)


# ---------------------------------------------------------------- classification shortcuts

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
GROUP = "11111111-2222-4333-8444-555555555555"
PLANS = ["%08d-0000-4000-8000-000000000000" % index for index in range(4)]


def catalog_e3():
    return SkuCatalog.from_subscribed_skus(
        [
            {
                "skuId": E3,
                "skuPartNumber": "ENTERPRISEPACK",
                "prepaidUnits": {"enabled": 10},
                "consumedUnits": 1,
                "servicePlans": [{"servicePlanId": plan, "servicePlanName": name, "appliesTo": "User"} for plan, name in zip(PLANS, ["b", "A", "a", "C"])],
            }
        ]
    )


def a_user(disabled=()):
    return {
        "id": "AAAAAAAA-0000-4000-8000-000000000001",
        "userPrincipalName": "u@x",
        "usageLocation": "NL",
        "licenseAssignmentStates": [
            {"skuId": E3.upper(), "assignedByGroup": None, "disabledPlans": list(disabled), "state": "Active", "error": "None"},
            {"skuId": E3, "assignedByGroup": GROUP.upper(), "disabledPlans": [], "state": "Active", "error": None},
        ],
    }


def test_plan_names_cache_returns_fresh_lists():
    catalog = catalog_e3()
    names = catalog.plan_names(E3, frozenset(PLANS))
    assert names == ["A", "a", "b", "C"]
    names.append("changed")
    assert catalog.plan_names(E3, set(PLANS)) == ["A", "a", "b", "C"]
    assert catalog.plan_names(E3, [PLANS[3], "unknown"]) == ["C", "unknown"]


def test_classify_user_with_precomputed_entries_is_classify_per_sku():
    catalog = catalog_e3()
    groups = {GROUP: licensing.GroupFacts(GROUP, "g", {E3: []}, "ProcessingComplete", True)}
    for disabled in ((), (PLANS[1],)):
        user = a_user(disabled)
        member_of = frozenset([GROUP])
        expected = [classify(user, E3, catalog, groups, [GROUP.upper()])]
        assert classify_user(user, catalog, groups, member_of) == expected
        assert classify_user(user, catalog, groups, member_of, entries=user_assignment_states(user)) == expected
        assert classify_user(user, catalog, groups, member_of, sku_ids=[E3.upper()]) == expected


def test_memoised_normalisation_still_refuses_bad_ids_every_time():
    catalog = catalog_e3()
    user = a_user()
    bad = frozenset(["not-a-guid"])
    for dummy in range(2):
        with pytest.raises(LicensingInputError, match="not-a-guid"):
            classify_user(user, catalog, {}, bad)
    user["licenseAssignmentStates"][1]["assignedByGroup"] = "nope"
    for dummy in range(2):
        with pytest.raises(LicensingInputError, match="nope"):
            user_assignment_states(user)
    # a membership that is never checked because no SKU in scope is held raises nothing, as before
    other = "6fd2c87f-b296-42f0-b197-1e91e994b901"
    records = classify_user(a_user(), catalog, {}, bad, sku_ids=[other])
    assert [record["verdict"] for record in records] == ["sku_not_subscribed"]


def test_in_background_returns_or_raises_in_the_caller_and_never_holds_the_process():
    import threading
    from ansible_collections.entraops.licensing.plugins.module_utils.assignments import InBackground

    release = threading.Event()
    slow = InBackground(lambda value: release.wait(5) and value * 2, 21)
    assert not slow.done()
    assert slow._thread.daemon  # a task that fails meanwhile exits without waiting for this read
    release.set()
    assert slow.result() == 42 and slow.done()

    def fails():
        raise ValueError("organization read failed")

    failing = InBackground(fails, name="tenant-id")
    with pytest.raises(ValueError, match="organization read failed"):
        failing.result()
