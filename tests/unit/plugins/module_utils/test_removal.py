# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The removal engine: chunking and the post-write check (pure), restores of a killed run's journal (emulator)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.assignments import MembershipIndex
from ansible_collections.entraops.licensing.plugins.module_utils.directory import read_sku_catalog
from ansible_collections.entraops.licensing.plugins.module_utils.graph import GraphClient
from ansible_collections.entraops.licensing.plugins.module_utils.journal import Journal, journal_state, read_journal, restorable
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import GroupFacts, SkuCatalog
from ansible_collections.entraops.licensing.plugins.module_utils.removal import RemovalEngine, _chunks_one_row_per_user, durable_enabled_plans

from ..modules.migration_tenant import E3, GROUPS, build_tenant, connection, direct_sku_ids
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
PLANS = ["00000000-0000-0000-0000-00000000000%d" % index for index in range(1, 4)]
GROUP = "10000000-0000-0000-0000-000000000001"
CATALOG = SkuCatalog.from_subscribed_skus(
    [
        {
            "skuId": SKU,
            "skuPartNumber": "E3",
            "servicePlans": [{"servicePlanId": plan, "servicePlanName": "P%d" % index, "appliesTo": "User"} for index, plan in enumerate(PLANS)],
        }
    ]
)


def entry(group=None, disabled=(), state="Active", error="None"):
    return {"skuId": SKU, "assignedByGroup": group, "disabledPlans": list(disabled), "state": state, "error": error}


def user(*entries):
    return {"id": "20000000-0000-0000-0000-000000000001", "licenseAssignmentStates": list(entries)}


def test_chunks_never_hold_a_user_twice():
    rows = [{"user_id": "a", "sku_id": 1}, {"user_id": "a", "sku_id": 2}, {"user_id": "b", "sku_id": 1}, {"user_id": "c", "sku_id": 1}]
    chunks = list(_chunks_one_row_per_user(rows, 2))
    assert chunks == [[rows[0], rows[2]], [rows[3]], [rows[1]]]
    assert all(len(set(row["user_id"] for row in chunk)) == len(chunk) for chunk in chunks)


@pytest.mark.parametrize(
    "groups, member_of, expected",
    [
        ({GROUP: GroupFacts(GROUP, assigned_licenses={SKU: []})}, {GROUP}, set(PLANS)),
        ({GROUP: GroupFacts(GROUP, assigned_licenses={SKU: [PLANS[0]]})}, {GROUP}, set(PLANS[1:])),  # group options win
        ({GROUP: GroupFacts(GROUP, assigned_licenses={SKU: []})}, set(), None),  # left the group
        ({GROUP: GroupFacts(GROUP, assigned_licenses={})}, {GROUP}, None),  # group dropped the SKU
        ({}, {GROUP}, None),  # group gone
    ],
)
def test_durable_plans_count_only_lasting_inheritance(groups, member_of, expected):
    durable = durable_enabled_plans(user(entry(GROUP)), CATALOG, groups, frozenset(member_of))
    assert durable.get(SKU) == (frozenset(expected) if expected is not None else None)


def test_durable_plans_ignore_unhealthy_copies_and_keep_direct():
    groups = {GROUP: GroupFacts(GROUP, assigned_licenses={SKU: []})}
    assert durable_enabled_plans(user(entry(GROUP, state="Error", error="CountViolation")), CATALOG, groups, frozenset([GROUP])) == {}
    assert durable_enabled_plans(user(entry(None, disabled=[PLANS[2]])), CATALOG, {}, frozenset())[SKU] == frozenset(PLANS[:2])


@pytest.fixture(scope="module")
def setup():
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    tenant, roles = build_tenant()
    with Emulator(tenant=copy.deepcopy(tenant), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu, tenant, roles


@pytest.fixture
def emu(setup):
    emu, tenant, dummy = setup
    emu.clear_faults()
    emu.configure(**STRICT_KNOBS)
    emu.load_state(copy.deepcopy(tenant))
    emu.clear_ledger()
    emu.reset_stats()
    return emu


@pytest.fixture
def roles(setup):
    return setup[2]


@pytest.fixture
def client(emu):
    options = connection(emu)
    options["max_retry_time"] = 20
    graph = GraphClient(backoff_base=0.01, backoff_cap=0.05, **options)
    yield graph
    graph.close()


def engine_for(client, journal, **options):
    index = MembershipIndex(client).load_licensed_groups()
    return RemovalEngine(client, read_sku_catalog(client), journal=journal, transitive_of=index.transitive_of, licensed_group_ids=list(index.groups), **options)


def test_a_resumed_run_journals_the_intents_left_pending_by_a_killed_run(emu, roles, client, tmp_path):
    emu.configure(read_lag_ms=0)  # the "resumed run" reads right after the killed one's writes (ENTRAOPS_STRICT_EMULATOR lags reads)
    journal_path = str(tmp_path / "journal.jsonl")
    applied, not_applied = roles["safe_0"], roles["safe_1"]
    # A killed run: two intents written, only the first write reached Graph, no result line at all.
    with Journal(journal_path) as journal:
        for user_id in (applied, not_applied):
            journal.intent("remove_direct", user_id, None, E3, "ENTERPRISEPACK", [], batch=0)
    client.post("/users/%s/assignLicense" % applied, body={"addLicenses": [], "removeLicenses": [E3]})
    entries = read_journal(journal_path)["entries"]
    rows = restorable(entries)
    assert [row["removal_outcome"] for row in rows] == ["pending", "pending"]
    with Journal(journal_path) as journal:
        outcomes = engine_for(client, journal).reconcile_pending(journal_state(entries).values()).result()["reconciled"]
    assert [(entry["user_id"], entry["outcome"]) for entry in outcomes] == [(applied, "applied"), (not_applied, "not_applied")]
    # The resumed run journals what it found: no intent is left without a result.
    lines = read_journal(journal_path)["entries"]
    answered = dict((line["op_id"], line) for line in lines if line["type"] == "result")
    assert all(line["op_id"] in answered for line in lines if line["type"] == "intent")
    assert sorted((line["user_id"], line["outcome"], line["reconciled"]) for line in answered.values()) == sorted(
        [(applied, "ok", True), (not_applied, "unknown", True)]
    )
    # The applied removal is restorable as done; the one not seen applied stays "unknown" (a late write may land).
    rows = restorable(lines)
    assert [(row["user_id"], row["removal_outcome"]) for row in rows] == [(applied, "ok"), (not_applied, "unknown")]
    with Journal(journal_path) as journal:
        engine = engine_for(client, journal).restore(rows)
    result = engine.result()
    assert [entry["user_id"] for entry in result["restored"]] == [applied]
    assert result["skipped_by_verdict"] == {"already_present": 1}
    assert direct_sku_ids(emu, applied) == [E3] and direct_sku_ids(emu, not_applied) == [E3]
    assert restorable(read_journal(journal_path)["entries"]) == []
    states = journal_state(read_journal(journal_path)["entries"])
    assert states[(applied, E3)]["outcome"] == "ok" and states[(not_applied, E3)]["outcome"] == "skipped"
    assert emu.loss_ledger() == []


def test_each_sku_of_one_user_is_judged_on_its_own(emu, roles, client, tmp_path):
    user_id = roles["safe_2"]
    other_sku = read_sku_catalog(client).resolve_sku("AAD_PREMIUM")
    client.post("/users/%s/assignLicense" % user_id, body={"addLicenses": [{"skuId": other_sku, "disabledPlans": []}], "removeLicenses": []})
    rows = [{"user_id": user_id, "sku_id": E3}, {"user_id": user_id, "sku_id": other_sku}]
    with Journal(str(tmp_path / "journal.jsonl")) as journal:
        engine = engine_for(client, journal).remove(rows)
    result = engine.result()
    assert [entry["sku_id"] for entry in result["removed"]] == [E3]
    assert result["skipped_by_verdict"] == {"direct_only": 1}
    assert direct_sku_ids(emu, user_id) == [other_sku]
    assert emu.loss_ledger() == []


def test_check_mode_engine_sends_reads_only(emu, roles, client):
    rows = [{"user_id": roles["safe_0"], "sku_id": E3}, {"user_id": roles["lossy"], "sku_id": E3}]
    engine = engine_for(client, None, check_mode=True).remove(rows)
    result = engine.result()
    assert len(result["removed"]) == 1 and result["skipped_by_verdict"] == {"plans_would_be_lost": 1}
    assert [entry for entry in emu.request_log() if entry["write"] and entry["path"].startswith("/v1.0/")] == []
    assert GROUPS["e3_all"] in engine.licensed_group_ids


def test_pending_restores_of_a_killed_run_are_journaled_from_a_fresh_read(emu, roles, client, tmp_path):
    emu.configure(read_lag_ms=0)  # the "resumed run" reads right after the killed one's writes (ENTRAOPS_STRICT_EMULATOR lags reads)
    journal_path = str(tmp_path / "journal.jsonl")
    landed, lost = roles["safe_0"], roles["safe_1"]
    client.post("/users/%s/assignLicense" % lost, body={"addLicenses": [], "removeLicenses": [E3]})
    with Journal(journal_path) as journal:
        for user_id in (landed, lost):
            journal.result(journal.intent("remove_direct", user_id, None, E3, "ENTERPRISEPACK", [], batch=0), "ok")
        for user_id in (landed, lost):  # killed with both restores in flight: only the first one landed
            journal.intent("restore_direct", user_id, None, E3, "ENTERPRISEPACK", [])
    with Journal(journal_path) as journal:
        engine = engine_for(client, journal).reconcile_pending(journal_state(read_journal(journal_path)["entries"]).values())
    assert sorted((entry["user_id"], entry["outcome"]) for entry in engine.result()["reconciled"]) == sorted([(landed, "applied"), (lost, "not_applied")])
    lines = read_journal(journal_path)["entries"]
    answered = set(line["op_id"] for line in lines if line["type"] == "result")
    assert all(line["op_id"] in answered for line in lines if line["type"] == "intent")
    # the restore that landed closes its removal; the one that did not leaves it to restore
    assert [row["user_id"] for row in restorable(lines)] == [lost]
