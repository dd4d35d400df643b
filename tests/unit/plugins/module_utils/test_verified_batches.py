# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The decisions of direct_license's verified batches, over plain data (no Graph)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.verified_batches import (
    READDED_SAMPLE,
    batch_detail,
    batch_status,
    counts_delta,
    readded_rows,
    readds_evidence,
    readds_stop_message,
    rows_by_batch,
    service_loss_message,
    verification_message,
)


def reading(total, inherited_only=0, in_error=0):
    return {"summary": {"inherited_only": inherited_only, "inherited_in_error": in_error, "safe_to_remove": total - inherited_only}, "records_total": total}


def test_a_batch_verifies_when_every_removal_shows_inherited_only():
    assert verification_message(1, reading(100, 10), reading(100, 60), removed=50, readds_new=0) is None
    # more inherited only than removed (a batch of another run landing) is not a failure
    assert verification_message(1, reading(100, 10), reading(101, 62), removed=50, readds_new=0) is None


@pytest.mark.parametrize(
    "after, removed, readds_new, why",
    [
        (reading(99, 59), 49, 0, "a holder dropped out of the SKUs"),
        (reading(100, 59), 50, 0, "a removal does not show as inherited only"),
        (reading(100, 60, in_error=1), 50, 0, "an inherited copy fell into error"),
        (reading(100, 57), 50, 2, "re-adds allowed for, one removal still missing"),
    ],
)
def test_a_batch_that_does_not_verify_is_named_with_both_readings(after, removed, readds_new, why):
    message = verification_message(3, reading(100, 10), after, removed=removed, readds_new=readds_new)
    assert message is not None, why
    assert message.startswith("Verification after batch 3 failed: before ")
    assert "(100 records), after " in message and message.endswith("%d removed" % removed)


def test_readds_new_since_the_last_reading_lower_the_expected_inherited_only():
    assert verification_message(2, reading(100, 10), reading(100, 58), removed=50, readds_new=2) is None


def test_readds_stop_above_the_threshold_only_naming_writers_and_the_way_on():
    assert readds_stop_message(3, 3, "after batch 1", {"Legacy (app x)": 3}) is None
    message = readds_stop_message(4, 3, "after batch 1", {"Legacy (app x)": 3, "admin@contoso.com": 1})
    assert message.startswith("4 direct assignment(s) this migration removed are direct again after batch 1 (threshold 3), written by: ")
    assert "Legacy (app x): 3; admin@contoso.com: 1." in message
    assert "raise readd_threshold (the role's migrate_direct_to_group_readd_threshold) to 4 to go on" in message
    assert "written by: unknown." in readds_stop_message(1, 0, "before the first batch of this run", {})


def test_a_service_loss_stops_with_every_reason():
    failures = [
        {"kind": "graph_error", "reason": "refused"},
        {"kind": "service_loss", "reason": "adele lost SWAY"},
        {"kind": "service_loss", "reason": "bob lost TEAMS1"},
    ]
    assert service_loss_message(2, failures) == "Batch 2: a removal took a service away and was put back; stopping. adele lost SWAY; bob lost TEAMS1"
    assert service_loss_message(2, failures[:1]) is None


def test_readded_rows_keep_the_record_fields_and_the_first_fifty():
    named = [
        dict(
            user_id="u%d" % n,
            user_principal_name="u%d@x" % n,
            sku_id="s",
            sku_part_number="E3",
            batch=0,
            removed_at="t",
            writer=None,
            writer_label="w",
            written_at="t2",
        )
        for n in range(60)
    ]
    rows = readded_rows(named)
    assert len(rows) == READDED_SAMPLE
    assert set(rows[0]) == {"user_principal_name", "sku_part_number", "batch", "removed_at", "writer_label", "written_at"}
    evidence = readds_evidence(named, [{"user_id": "j", "user_principal_name": None}], 7)
    assert evidence["readded_total"] == 60 and evidence["readded_writers"] == {"unknown (audit log not read or no event yet)": 60}
    assert evidence["joiners_not_in_plan"] == ["j"] and evidence["joiners_not_in_plan_total"] == 7


def test_batch_detail_status_and_deltas():
    assert (
        batch_detail(5, {"inherited_only": 2, "plans_would_be_lost": 1}, [{}])
        == '5 removed, 3 skipped {"inherited_only": 2, "plans_would_be_lost": 1}, 1 failed'
    )
    assert batch_status([], False) == "done" and batch_status([{}], False) == "failed" and batch_status([], True) == "dry run"
    assert counts_delta({"a": 5, "b": 2, "c": 0}, {"a": 3, "b": 2}) == {"a": 2}


def test_rows_are_grouped_by_batch_in_order():
    rows = [{"batch": 2, "n": 1}, {"batch": 0, "n": 2}, {"batch": 2, "n": 3}, {"batch": 1, "n": 4}]
    assert [(batch, [row["n"] for row in group]) for batch, group in rows_by_batch(rows)] == [(0, [2]), (1, [4]), (2, [1, 3])]
    # a batch approved with no row left to remove still gets its turn (its record says 0 removed)
    assert [(batch, len(group)) for batch, group in rows_by_batch(rows, [1, 3])] == [(0, 1), (1, 1), (2, 2), (3, 0)]


def test_the_write_pacer_may_bank_what_a_reading_leaves_unspent():
    from ansible_collections.entraops.licensing.plugins.module_utils.graph_pacing import AdaptivePacer
    from ansible_collections.entraops.licensing.plugins.module_utils.verified_batches import READING_REFILL, VerifiedBatches

    now = [0.0]
    pacer = AdaptivePacer(20.0, clock=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))

    class Client:
        pass

    client = Client()
    client.pacer = pacer
    VerifiedBatches(client, None, None, {}, [], None, None, "sha256:x", False)
    assert pacer.capacity == READING_REFILL
    # a fresh pacer holds a second's worth; 30 s of reading bank 600 writes that go at once, the 601st waits its turn
    assert pacer.acquire(20) == 0.0
    now[0] += 30.0
    assert pacer.acquire(600) == 0.0
    assert pacer.acquire(1) == pytest.approx(0.05)
    # near Graph's limit the bank is one second's worth again
    pacer.answered(0.85)
    now[0] += 30.0
    assert pacer.acquire(20) == 0.0 and pacer.acquire(1) == pytest.approx(0.05)
