# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Outputs that must survive a throw-away container (issue 17, part 3): against the Graph emulator, real HTTPS and msal.

- The remove phase refuses a batch whose approved plan, or the journal of the earlier batches, is missing, before any
  call to Graph, instead of starting an empty journal; the canary still starts a new journal.
- A restore works from the plan alone when the journal is lost: exactly the removed direct assignments come back,
  with their original disabled plans, in check mode as a list, and a second run writes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


from ansible_collections.entraops.licensing.plugins.module_utils.journal import read_journal
from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan
from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info

from .migration_tenant import connection
from .utils import graph_writes, run_module, wait_until_quiet


def make_plan(emu, folder, canary_size=2, batch_size=5):
    plan_path = str(folder / "plan.json")
    result, failed = run_module(
        license_assignment_info.main,
        dict(connection(emu), skus=["ENTERPRISEPACK"], plan_path=plan_path, canary_size=canary_size, batch_size=batch_size),
    )
    assert not failed, result.get("msg")
    return plan_path, result["plan_fingerprint"]


def run(emu, **options):
    return run_module(direct_license.main, dict(connection(emu), **options))


def quiet_reset(emu):
    wait_until_quiet(emu, quiet_seconds=0.2)
    emu.reset_stats()


def direct_state(emu):
    """{user id: {sku id: sorted disabled plans}} of every direct assignment, from the emulator's exported tenant."""
    return dict(
        (user["id"], dict((entry["skuId"], sorted(entry.get("disabledPlans") or [])) for entry in user.get("directLicenses") or []))
        for user in emu.export_state()["users"]
    )


def written_users(emu):
    """User ids of every assignLicense the emulator received."""
    return sorted(entry["path"].split("/")[3] for entry in graph_writes(emu) if entry["path"].endswith("/assignLicense"))


def batch_users(plan_path, batches):
    return sorted(row["user_id"] for row in read_plan(plan_path)["rows"] if row["batch"] in batches)


def assert_no_loss(emu):
    emu.process_all()
    assert emu.loss_ledger() == []


# ---- the remove phase refuses a missing journal or plan ----------------------------------------------------------


def test_a_batch_after_the_canary_is_refused_when_the_journal_of_the_canary_is_missing(emu, tmp_path):
    plan_path, fingerprint = make_plan(emu, tmp_path)
    journal_path = str(tmp_path / "journal.jsonl")
    canary, failed = run(emu, plan_path=plan_path, batches=[0], journal_path=journal_path, plan_fingerprint=fingerprint)
    assert not failed, canary.get("msg")
    assert canary["removed_total"] == 2 and os.path.exists(journal_path)
    os.remove(journal_path)  # the container of the next window has no volume: the journal is not there
    quiet_reset(emu)
    for batches, earlier in (([1], "batch(es) 0"), ([2, 3], "batch(es) 0-1")):
        refused, failed = run(emu, plan_path=plan_path, batches=batches, journal_path=journal_path, plan_fingerprint=fingerprint)
        assert failed
        message = refused["msg"]
        assert "journal %s does not exist" % journal_path in message
        assert "batch %d of plan %s (fingerprint %s) comes after %s" % (batches[0], plan_path, fingerprint, earlier) in message
        assert "Refusing to start an empty journal" in message and "Nothing was sent to Graph" in message
        assert not os.path.exists(journal_path)
    assert emu.request_log() == []  # not even a token
    assert_no_loss(emu)


def test_the_canary_or_the_earlier_batches_with_this_one_start_a_new_journal(emu, tmp_path):
    plan_path, dummy = make_plan(emu, tmp_path)
    first = str(tmp_path / "canary.jsonl")
    canary, failed = run(emu, plan_path=plan_path, batches=[0], journal_path=first)
    assert not failed and canary["removed_total"] == 2
    # A lost journal, and the operator chooses to go on with a new one: batch 1 with the earlier batch 0, which is done.
    second = str(tmp_path / "new.jsonl")
    quiet_reset(emu)
    both, failed = run(emu, plan_path=plan_path, batches=[0, 1], journal_path=second)
    assert not failed, both.get("msg")
    assert both["removed_total"] == 5 and both["skipped_by_verdict"] == {"inherited_only": 2}
    assert any("journal %s was started by this run, but 2 row(s) of the plan were already migrated" % second in warning for warning in both["warnings"])
    assert written_users(emu) == batch_users(plan_path, [1])
    # The whole plan (no batches) is not "a batch after earlier ones" either.
    whole, failed = run(emu, plan_path=plan_path, journal_path=str(tmp_path / "whole.jsonl"))
    assert not failed, whole.get("msg")
    assert_no_loss(emu)


def test_check_mode_writes_no_journal_and_is_not_refused(emu, tmp_path):
    """A dry run of batch 1 (the role's dry runs use their own journal path, never written) lists the batch."""
    plan_path, dummy = make_plan(emu, tmp_path)
    journal_path = str(tmp_path / "missing.jsonl")
    dry, failed = run(emu, plan_path=plan_path, batches=[1], journal_path=journal_path, _ansible_check_mode=True)
    assert not failed, dry.get("msg")
    assert sorted(entry["user_id"] for entry in dry["removed"]) == batch_users(plan_path, [1])
    assert not os.path.exists(journal_path) and graph_writes(emu) == []


def test_a_missing_plan_is_refused_naming_its_path_and_the_approved_fingerprint(emu, tmp_path):
    plan_path, fingerprint = make_plan(emu, tmp_path)
    journal_path = str(tmp_path / "journal.jsonl")
    moved = str(tmp_path / "elsewhere.json")
    os.rename(plan_path, moved)
    quiet_reset(emu)
    for state, extra in (("absent", {"batches": [0]}), ("present", {})):
        refused, failed = run(emu, state=state, plan_path=plan_path, journal_path=journal_path, plan_fingerprint=fingerprint, **extra)
        assert failed
        assert "plan file %s does not exist: the approved plan (fingerprint %s) is expected there" % (plan_path, fingerprint) in refused["msg"]
        assert "Nothing was sent to Graph" in refused["msg"]
    refused, failed = run(emu, plan_path=plan_path, batches=[0], journal_path=journal_path)
    assert failed and "plan file %s does not exist: the plan the batches were approved with is expected there" % plan_path in refused["msg"]
    assert emu.request_log() == [] and not os.path.exists(journal_path)


# ---- a restore from the plan alone ---------------------------------------------------------------------------------


def test_a_lost_journal_is_restored_from_the_plan_exactly_and_idempotently(emu, roles, tmp_path):
    before = direct_state(emu)
    plan_path, fingerprint = make_plan(emu, tmp_path)
    planned = batch_users(plan_path, range(100))
    assert roles["sway_off"] in planned and before[roles["sway_off"]] != {}  # a row whose direct copy disables a plan
    journal_path = str(tmp_path / "journal.jsonl")
    removed, failed = run(emu, plan_path=plan_path, journal_path=journal_path)
    assert not failed and removed["removed_total"] == len(planned)
    emu.process_all()
    os.remove(journal_path)
    os.remove(removed["rollback_script_path"])
    migrated = direct_state(emu)
    assert all(migrated[user] == {} for user in planned)

    restore_journal = str(tmp_path / "restore.jsonl")
    quiet_reset(emu)
    dry, failed = run(emu, state="present", plan_path=plan_path, plan_fingerprint=fingerprint, journal_path=restore_journal, _ansible_check_mode=True)
    assert not failed, dry.get("msg")
    assert dry["changed"] is True and dry["restored_total"] == len(planned)
    assert sorted(entry["user_id"] for entry in dry["restored"]) == planned
    assert graph_writes(emu) == [] and not os.path.exists(restore_journal)

    restored, failed = run(emu, state="present", plan_path=plan_path, plan_fingerprint=fingerprint, journal_path=restore_journal)
    assert not failed, restored.get("msg")
    assert restored["changed"] is True and restored["restored_total"] == len(planned) and restored["failures"] == []
    assert restored["plan_fingerprint"] == fingerprint
    assert written_users(emu) == planned  # one write per plan row, nobody else
    assert direct_state(emu) == before  # every direct assignment back, with its original disabled plans
    run_lines = [entry for entry in read_journal(restore_journal)["entries"] if entry["type"] == "run"]
    assert [(line["plan_path"], line["plan_fingerprint"]) for line in run_lines] == [(plan_path, fingerprint)]

    quiet_reset(emu)
    size = os.path.getsize(restore_journal)
    again, failed = run(emu, state="present", plan_path=plan_path, journal_path=restore_journal)
    assert not failed, again.get("msg")
    assert again["changed"] is False and again["restored_total"] == 0
    assert again["skipped_by_verdict"] == {"already_present": len(planned)}
    assert graph_writes(emu) == [] and os.path.getsize(restore_journal) == size
    assert_no_loss(emu)


def test_a_restore_from_the_plan_of_some_batches_puts_back_only_what_is_missing_from_them(emu, tmp_path):
    before = direct_state(emu)
    plan_path, dummy = make_plan(emu, tmp_path)
    journal_path = str(tmp_path / "journal.jsonl")
    canary, failed = run(emu, plan_path=plan_path, batches=[0], journal_path=journal_path)
    assert not failed and canary["removed_total"] == 2
    os.remove(journal_path)
    quiet_reset(emu)
    restore_journal = str(tmp_path / "restore.jsonl")
    restored, failed = run(emu, state="present", plan_path=plan_path, batches=[0, 1], journal_path=restore_journal)
    assert not failed, restored.get("msg")
    assert restored["restored_total"] == 2 and restored["skipped_by_verdict"] == {"already_present": 5}
    assert written_users(emu) == batch_users(plan_path, [0])
    assert direct_state(emu) == before
    intents = [entry for entry in read_journal(restore_journal)["entries"] if entry["type"] == "intent"]
    assert sorted(entry["user_id"] for entry in intents) == batch_users(plan_path, [0])  # rows in place are not journaled
    assert all(entry["op"] == "restore_direct" and entry["batch"] == 0 for entry in intents)
    assert_no_loss(emu)


def test_bad_restore_from_plan_input_fails_naming_it_before_any_write(emu, tmp_path):
    plan_path, fingerprint = make_plan(emu, tmp_path)
    journal_path = str(tmp_path / "journal.jsonl")
    other = "sha256:" + "0" * 64
    quiet_reset(emu)
    cases = [
        (dict(plan_path=plan_path, batches=[9]), "batch 9 is not in the plan; the plan has batches 0-"),
        (dict(plan_path=plan_path, skus=["ENTERPRISEPACK"]), "skus and disabled_plans apply to users only"),
        (dict(plan_path=plan_path, plan_fingerprint=other), "its content has fingerprint %s, the approved fingerprint is %s" % (fingerprint, other)),
        (dict(), "state=present needs exactly one of restore_from (a journal), plan_path"),
    ]
    for options, expected in cases:
        result, failed = run(emu, state="present", journal_path=journal_path, **options)
        assert failed and expected in result["msg"], (options, result["msg"])
    result, failed = run(emu, state="present", plan_path=plan_path, restore_from=journal_path)
    assert failed and "plan_path" in result["msg"] and "restore_from" in result["msg"]
    assert graph_writes(emu) == [] and not os.path.exists(journal_path)
