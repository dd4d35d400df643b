# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""readds: removals that came back, joiners in no plan, and their writers (no HTTP)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils import readds

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
LEGACY = {
    "kind": "other",
    "app_id": "3c1d8a52-6b8e-4f0e-9d7a-2f1e5b7c9a01",
    "display_name": "Legacy licensing script",
    "user_id": None,
    "user_principal_name": None,
}


def uid(n):
    return "00000000-0000-4000-8000-%012d" % n


def intent(op_id, op, n, batch=1):
    return {
        "type": "intent",
        "op_id": op_id,
        "op": op,
        "user_id": uid(n),
        "user_principal_name": "u%d@contoso.com" % n,
        "sku_id": SKU.upper(),
        "sku_part_number": "ENTERPRISEPACK",
        "batch": batch,
    }


def result(op_id, op, n, outcome, time):
    return {"type": "result", "op_id": op_id, "op": op, "user_id": uid(n), "sku_id": SKU, "outcome": outcome, "time": time}


def journal():
    return [
        {"type": "run", "run_id": "r"},
        intent("a", "remove_direct", 1),
        result("a", "remove_direct", 1, "ok", "2026-03-01T10:00:00.000Z"),
        intent("b", "remove_direct", 2),
        result("b", "remove_direct", 2, "ok", "2026-03-01T10:00:01.000Z"),
        intent("c", "remove_direct", 3),
        result("c", "remove_direct", 3, "failed", "2026-03-01T10:00:02.000Z"),
        intent("d", "remove_direct", 4),
        result("d", "remove_direct", 4, "ok", "2026-03-01T10:00:03.000Z"),
        intent("e", "restore_direct", 4, None),
        result("e", "restore_direct", 4, "ok", "2026-03-01T11:00:00.000Z"),
        intent("f", "remove_direct", 5),
        result("f", "remove_direct", 5, "rolled_back", "2026-03-01T10:00:04.000Z"),
    ]


def record(n, direct, inherited=True):
    return {
        "user_id": uid(n),
        "user_principal_name": "u%d@contoso.com" % n,
        "sku_id": SKU,
        "sku_part_number": "ENTERPRISEPACK",
        "direct": direct,
        "direct_disabled_plans": ["p1"] if direct else [],
        "inherited_from": ["g"] if inherited else [],
        "healthy_inherited_from": ["g"] if inherited else [],
    }


def test_only_removals_that_stand_count():
    removed = readds.removed_by_journal(journal())
    assert sorted(removed) == [(uid(1), SKU), (uid(2), SKU)]
    assert removed[(uid(1), SKU)]["removed_at"] == "2026-03-01T10:00:00.000Z" and removed[(uid(1), SKU)]["batch"] == 1


def test_reading_compared_with_journal_and_plan():
    removed = readds.removed_by_journal(journal())
    records = [record(1, True), record(2, False), record(4, True), record(9, True, inherited=False), record(8, False)]
    baseline = readds.direct_keys([record(n, True) for n in (1, 2, 3, 4, 5)] + [record(9, False)])
    assert (uid(9), SKU) not in baseline and (uid(1), SKU) in baseline
    readded, joiners, total = readds.compare_reading(iter(records), removed, baseline)
    assert [row["user_id"] for row in readded] == [uid(1)]
    assert readded[0]["disabled_plans_now"] == ["p1"]
    assert total == 1 and joiners == [
        {"user_id": uid(9), "user_principal_name": "u9@contoso.com", "sku_id": SKU, "sku_part_number": "ENTERPRISEPACK", "inherited": False}
    ]
    assert readds.compare_reading(iter(records), removed, None)[1:] == ([], 0)
    assert readds.earliest_removal(readded) == "2026-03-01T10:00:00.000Z" and readds.earliest_removal([]) is None


def test_writer_is_the_newest_other_writer_after_the_removal():
    removed = readds.removed_by_journal(journal())
    readded, dummy, dummy = readds.compare_reading([record(1, True), record(2, True)], removed)
    own = dict(LEGACY, kind="this_collection", app_id="own")
    group = dict(LEGACY, kind="group_licensing", app_id=None, display_name="Microsoft Entra group-Based Licensing")
    admin = {"kind": "other", "app_id": None, "display_name": None, "user_id": "a", "user_principal_name": "admin@contoso.com"}
    users = [
        {
            "id": uid(1),
            "changes": [
                {"time": "2026-03-01T09:00:00.000Z", "initiated_by": admin},  # before the removal: not the re-add
                {"time": "2026-03-01T10:00:00.000Z", "initiated_by": own},
                {"time": "2026-03-01T10:05:00.000Z", "initiated_by": LEGACY},
                {"time": "2026-03-01T10:06:00.000Z", "initiated_by": group},
            ],
        },
        {"id": uid(2), "changes": [{"time": "2026-03-01T09:00:00.000Z", "initiated_by": admin}]},
    ]
    named = readds.name_writers(readded, users)
    assert named[0]["writer"] == LEGACY and named[0]["written_at"] == "2026-03-01T10:05:00.000Z"
    assert named[1]["writer"] is None and named[1]["writer_known"] is False
    assert readds.writers_summary(named) == {
        "Legacy licensing script (app 3c1d8a52-6b8e-4f0e-9d7a-2f1e5b7c9a01)": 1,
        "unknown (audit log not read or no event yet)": 1,
    }
    assert readds.writer_label(admin) == "admin@contoso.com"
    assert all(row["writer"] is None for row in readds.name_writers(readded, None))


def test_direct_only_drift_splits_by_the_baseline():
    baseline = readds.inherited_keys([record(1, True), record(2, False), record(3, True, inherited=False)])
    assert baseline == {(uid(1), SKU), (uid(2), SKU)}
    now = [
        record(1, True, inherited=False),
        record(2, True),
        record(3, True, inherited=False),
        record(4, True, inherited=False),
        record(5, False, inherited=False),
    ]
    drift = readds.direct_only_drift(now, baseline)
    assert [row["user_id"] for row in drift["lost_group"]] == [uid(1)] and drift["lost_group_total"] == 1
    assert [row["user_id"] for row in drift["no_group"]] == [uid(3), uid(4)] and drift["no_group_total"] == 2
    assert readds.direct_only_drift(now)["no_group_total"] == 3


def test_a_re_add_between_the_write_and_its_journaled_result_is_named():
    """The result line is journaled after the check that follows the write: a script quicker than that check re-licensed
    the user before removed_at, but after the intent (sent_at), and is still the writer."""
    entries = [dict(intent("a", "remove_direct", 1), time="2026-03-01T10:00:00.000Z"), result("a", "remove_direct", 1, "ok", "2026-03-01T10:00:02.000Z")]
    removed = readds.removed_by_journal(entries)
    assert removed[(uid(1), SKU)]["sent_at"] == "2026-03-01T10:00:00.000Z" and removed[(uid(1), SKU)]["removed_at"] == "2026-03-01T10:00:02.000Z"
    readded, dummy, dummy = readds.compare_reading([record(1, True)], removed)
    assert readds.earliest_removal(readded) == "2026-03-01T10:00:00.000Z"
    named = readds.name_writers(readded, [{"id": uid(1), "changes": [{"time": "2026-03-01T10:00:01.000Z", "initiated_by": LEGACY}]}])
    assert named[0]["writer"] == LEGACY


def test_removals_folded_step_by_step_equal_the_whole_fold_at_every_split():
    entries = journal()
    whole = readds.removed_by_journal(entries)
    for split in range(len(entries) + 1):
        for second in range(split, len(entries) + 1):
            removals = readds.JournalRemovals()
            removals.feed(entries[:split]).feed(entries[split:second])
            assert removals.removed == readds.removed_by_journal(entries[:second])
            removals.feed(entries[second:])
            assert removals.removed == whole
    # An intent read in one step, its result in the next: the removal keeps the intent's names.
    removals = readds.JournalRemovals().feed(entries[:2])
    assert removals.removed == {}
    assert removals.feed(entries[2:3]).removed[(uid(1), SKU)]["user_principal_name"] == "u1@contoso.com"
