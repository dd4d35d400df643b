# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""direct_license with verify_batches against the Graph emulator (real HTTPS, real msal): every batch of a plan in one
task, each checked on a fresh reading before the next; the stops (re-adds, a reading that does not verify) and check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.entraops.licensing.plugins.module_utils.journal import read_journal
from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info

from .migration_tenant import E3, GROUPS, connection, direct_sku_ids
from .test_direct_license import SAFE_ROLES, removal_writes
from .utils import graph_writes, run_module


def plan(emu, folder):
    """A plan of canary 2 + batches of 5 (batches 0-3), with its baseline reading as the role writes it."""
    plan_path, baseline = str(folder / "plan.json"), str(folder / "baseline.json")
    result, failed = run_module(
        license_assignment_info.main,
        dict(connection(emu), skus=["ENTERPRISEPACK"], plan_path=plan_path, report_path=baseline, canary_size=2, batch_size=5, sample_size=0),
    )
    assert not failed, result.get("msg")
    return plan_path, baseline, result


def verified(emu, folder, plan_path, baseline, **options):
    verify = dict(reading_path=str(folder / "reading.json"), baseline_path=baseline)
    verify.update(options.pop("verify", {}))
    return run_module(
        direct_license.main, dict(connection(emu), plan_path=plan_path, journal_path=str(folder / "journal.jsonl"), verify_batches=verify, **options)
    )


def plan_and_canary(emu, folder):
    """(plan path, baseline path, users the canary migrated): the plan, then its batch 0 alone, verified."""
    plan_path, baseline, dummy = plan(emu, folder)
    result, failed = verified(emu, folder, plan_path, baseline, batches=[0])
    assert not failed, result.get("msg")
    return plan_path, baseline, sorted(removed_in_journal(folder))


def removed_in_journal(folder):
    return dict(
        (entry["user_id"], entry.get("batch"))
        for entry in read_journal(str(folder / "journal.jsonl"))["entries"]
        if entry.get("type") == "intent" and entry.get("op") == "remove_direct"
    )


def test_every_batch_in_one_task_each_verified_on_a_fresh_reading(emu, roles, tmp_path):
    plan_path, baseline, info = plan(emu, tmp_path)
    assert info["batches"] == 4
    result, failed = verified(emu, tmp_path, plan_path, baseline)
    assert not failed, result.get("msg")
    records = result["batch_results"]
    assert [record["batch"] for record in records] == [0, 1, 2, 3]
    assert all(record["status"] == "done" and record["failures"] == [] and record["readded_total"] == 0 for record in records)
    assert [record["removed"] for record in records] == [int(info["batch_sizes"][str(batch)]) for batch in range(4)]
    assert sum(record["removed"] for record in records) == result["removed_total"] == len(SAFE_ROLES)
    # One reading before the first batch and one after each: inherited only grows by each batch's removals.
    assert result["readings"] == 5
    inherited = [result["reading_before"]["summary"]["inherited_only"]] + [record["reading_after"]["inherited_only"] for record in records]
    assert [later - earlier for earlier, later in zip(inherited, inherited[1:])] == [record["removed"] for record in records]
    # The last reading stays at reading_path, in license_assignment_info's JSON report format.
    with open(str(tmp_path / "reading.json"), encoding="utf-8") as handle:
        reading = json.load(handle)
    assert len(reading["records"]) == result["reading_before"]["records_total"]
    assert sum(1 for record in reading["records"] if record["verdict"] == "inherited_only") == inherited[-1]
    assert all(record["plan_fingerprint"] == info["plan_fingerprint"] for record in records)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_readds_stop_before_the_first_batch_then_count_against_the_threshold(emu, roles, tmp_path):
    plan_path, baseline, [canary_user, dummy_user] = plan_and_canary(emu, tmp_path)
    # Another writer (the legacy script) puts a direct copy back on a migrated user.
    emu.directory.assign_user_license(canary_user, [{"skuId": E3, "disabledPlans": []}], [], None)
    emu.reset_stats()

    result, failed = verified(emu, tmp_path, plan_path, baseline, batches=[1, 2, 3])
    assert failed and "1 direct assignment(s) this migration removed are direct again before the first batch of this run (threshold 0)" in result["msg"]
    [stop] = result["batch_results"]
    assert stop["batch"] is None and stop["status"] == "stopped" and stop["removed"] == 0 and stop["readded_total"] == 1
    assert [row["batch"] for row in stop["readded"]] == [0]
    assert removal_writes(emu) == [] and graph_writes(emu) == []

    result, failed = verified(emu, tmp_path, plan_path, baseline, batches=[1, 2, 3], verify=dict(readd_threshold=1))
    assert not failed, result.get("msg")
    assert [record["batch"] for record in result["batch_results"]] == [1, 2, 3]
    # The re-added copy is counted in every batch's record and allowed for in the first batch's verification.
    assert all(record["readded_total"] == 1 for record in result["batch_results"])
    assert direct_sku_ids(emu, canary_user) == [E3]
    emu.process_all()
    assert emu.loss_ledger() == []


def test_a_reading_that_does_not_verify_stops_before_the_next_batch(emu, roles, tmp_path):
    plan_path, baseline, migrated = plan_and_canary(emu, tmp_path)
    # During batch 1, another administrator takes a migrated user out of the licensing group: that user drops out of the SKU,
    # which the reading after batch 1 shows (not this run's doing, and not a removal of its own).
    emu.add_fault(method="POST", route=r"/users/[^/]+/assignLicense$", op={"op": "remove_member", "group": GROUPS["e3_all"], "user": migrated[0]})
    result, failed = verified(emu, tmp_path, plan_path, baseline, batches=[1, 2, 3])
    assert failed and result["msg"].startswith("Verification after batch 1 failed: before ")
    assert [(record["batch"], record["status"]) for record in result["batch_results"]] == [(1, "done")]
    assert set(removed_in_journal(tmp_path).values()) == {0, 1}  # batches 2 and 3 were never started
    emu.process_all()
    assert [entry["user_id"] for entry in emu.loss_ledger()] == [migrated[0]]


def test_check_mode_reads_and_records_without_writing(emu, roles, tmp_path):
    plan_path, baseline, dummy = plan(emu, tmp_path)
    emu.reset_stats()
    result, failed = verified(emu, tmp_path, plan_path, baseline, _ansible_check_mode=True)
    assert not failed, result.get("msg")
    assert [(record["batch"], record["status"]) for record in result["batch_results"]] == [(0, "dry run"), (1, "dry run"), (2, "dry run"), (3, "dry run")]
    assert result["removed_total"] == len(SAFE_ROLES) and result["readings"] == 5
    assert graph_writes(emu) == [] and not (tmp_path / "journal.jsonl").exists()


def test_bad_verify_options_fail_before_any_write(emu, roles, tmp_path):
    plan_path, baseline, dummy = plan(emu, tmp_path)
    emu.reset_stats()
    result, failed = verified(emu, tmp_path, plan_path, baseline, verify=dict(readd_threshold=-1))
    assert failed and result["msg"] == "verify_batches.readd_threshold: got -1, expected a whole number of at least 0"
    result, failed = run_module(
        direct_license.main,
        dict(connection(emu), state="present", plan_path=plan_path, journal_path=str(tmp_path / "j.jsonl"), verify_batches=dict(reading_path="r.json")),
    )
    assert failed and "verify_batches applies to state=absent with plan_path" in result["msg"]
    assert graph_writes(emu) == []


def test_a_failed_reading_after_a_batch_stops_with_the_batch_recorded(emu, roles, tmp_path):
    plan_path, baseline, dummy = plan(emu, tmp_path)
    # the reading before the first batch goes through; every later read of the user list is refused
    emu.add_fault(method="GET", route=r"/users$", in_batch=False, skip=1, count=None, status=403)
    result, failed = verified(emu, tmp_path, plan_path, baseline)
    assert failed and "Stopped: a Graph read or write failed" in result["msg"]
    [stopped] = result["batch_results"]
    assert stopped["batch"] == 0 and stopped["status"] == "stopped" and stopped["removed"] == 2
    assert stopped["detail"].startswith("Stopped: the reading after the batch (or its audit read) failed: ")
    assert set(removed_in_journal(tmp_path).values()) == {0}  # batch 1 never started
    emu.clear_faults()
    emu.process_all()
    assert emu.loss_ledger() == []
