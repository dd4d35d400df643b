# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""direct_license end to end against the Graph emulator (real HTTPS, real msal), loss ledger asserted empty."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import signal
import subprocess
import sys
import time

from ansible_collections.entraops.licensing.plugins.module_utils.journal import journal_state, read_journal, restorable
from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info

from .migration_tenant import E3, GROUPS, SAFE_USERS, connection, direct_sku_ids
from .utils import graph_writes, run_module, wait_until_quiet

MODULE_PATH = os.path.join(os.path.dirname(direct_license.__file__), "direct_license.py")
# .../ansible_collections/entraops/licensing/plugins/modules/direct_license.py -> the directory holding ansible_collections
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(MODULE_PATH), *([".."] * 5)))
SAFE_ROLES = ["safe_%d" % index for index in range(SAFE_USERS)] + ["two_groups", "sway_off"]
KEEP_ROLES = ["lossy", "nested", "count_violation", "exclusive", "direct_only"]
REMOVE_ROUTE = r"/users/[^/]+/assignLicense$"


def plan(emu, folder, canary_size=2, batch_size=5, **options):
    plan_path = str(folder / "plan.json")
    result, failed = run_module(
        license_assignment_info.main,
        dict(connection(emu), skus=["ENTERPRISEPACK"], plan_path=plan_path, canary_size=canary_size, batch_size=batch_size, **options),
    )
    assert not failed, result.get("msg")
    return plan_path, result


def run(emu, **options):
    return run_module(direct_license.main, dict(connection(emu), **options))


def removal_writes(emu, status=200):
    """user ids of assignLicense requests (removals and restores) that returned ``status`` (None: any)."""
    return [
        entry["path"].split("/")[3]
        for entry in emu.request_log()
        if entry["method"] == "POST" and entry["path"].endswith("/assignLicense") and status in (None, entry["status"])
    ]


def direct_state(emu):
    """Every user's direct licenses with their disabled plans, from the emulator's exported tenant."""
    return dict(
        (user["id"], sorted((entry["skuId"], sorted(entry.get("disabledPlans") or [])) for entry in user.get("directLicenses") or []))
        for user in emu.export_state()["users"]
    )


def assert_migrated(emu, roles):
    for role in SAFE_ROLES:
        assert direct_sku_ids(emu, roles[role]) == [], role
    for role in KEEP_ROLES:
        assert direct_sku_ids(emu, roles[role]) == [E3], role


def test_canary_batches_second_run_and_restore(emu, roles, tmp_path):
    before = direct_state(emu)
    plan_path, info = plan(emu, tmp_path)
    assert info["batches"] == 4
    journal_path = str(tmp_path / "journal.jsonl")

    canary, failed = run(emu, plan_path=plan_path, batches=[0], journal_path=journal_path)
    assert not failed, canary.get("msg")
    assert canary["changed"] is True and canary["removed_total"] == 2 and canary["failures"] == []
    assert all(entry["batch"] == 0 for entry in canary["removed"])

    rest, failed = run(emu, plan_path=plan_path, batches=[1, 2, 3], journal_path=journal_path)
    assert not failed, rest.get("msg")
    assert rest["removed_total"] == len(SAFE_ROLES) - 2
    assert_migrated(emu, roles)
    assert os.path.exists(rest["rollback_script_path"])
    script = open(rest["rollback_script_path"], encoding="utf-8-sig").read()
    assert script.count("Set-MgUserLicense -UserId") == len(SAFE_ROLES)

    emu.reset_stats()
    again, failed = run(emu, plan_path=plan_path, journal_path=journal_path)
    assert not failed
    assert again["changed"] is False and again["removed_total"] == 0
    assert again["skipped_by_verdict"] == {"inherited_only": len(SAFE_ROLES)}
    assert removal_writes(emu) == []
    emu.process_all()
    assert emu.loss_ledger() == []

    entries = read_journal(journal_path)["entries"]
    states = journal_state(entries)
    assert len(states) == len(SAFE_ROLES)
    assert all(state["outcome"] == "ok" and not state["pending"] for state in states.values())

    restore, failed = run(emu, state="present", restore_from=journal_path)
    assert not failed, restore.get("msg")
    assert restore["restored_total"] == len(SAFE_ROLES)
    assert direct_state(emu) == before
    again, failed = run(emu, state="present", restore_from=journal_path)
    assert not failed and again["changed"] is False and again["restored_total"] == 0
    assert restorable(read_journal(journal_path)["entries"]) == []
    emu.process_all()
    assert emu.loss_ledger() == []


def test_unsafe_users_keep_their_direct_copy_with_reasons(emu, roles, tmp_path):
    journal_path = str(tmp_path / "journal.jsonl")
    users = [roles[role] for role in SAFE_ROLES + KEEP_ROLES]
    result, failed = run(emu, users=users, skus=["ENTERPRISEPACK"], journal_path=journal_path)
    assert not failed, result.get("msg")
    assert result["removed_total"] == len(SAFE_ROLES)
    assert result["skipped_by_verdict"] == {"plans_would_be_lost": 1, "not_direct_member": 1, "inherited_in_error": 2, "direct_only": 1}
    lossy = next(entry for entry in result["skipped_sample"] if entry["user_id"] == roles["lossy"])
    assert lossy["verdict"] == "plans_would_be_lost" and lossy["plans_lost"] == ["SWAY"]
    assert_migrated(emu, roles)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_check_mode_writes_nothing(emu, roles, tmp_path):
    plan_path, dummy = plan(emu, tmp_path)
    emu.reset_stats()
    result, failed = run(emu, plan_path=plan_path, _ansible_check_mode=True, _ansible_diff=True)
    assert not failed, result.get("msg")
    assert result["changed"] is True and result["removed_total"] == len(SAFE_ROLES)
    assert result["journal_path"] is None and result["rollback_script_path"] is None
    assert graph_writes(emu) == []
    # Check mode names every row it would remove (the change record's list), after its fresh read.
    assert sorted(entry["user_id"] for entry in result["removed"]) == sorted(roles[role] for role in SAFE_ROLES)
    assert result["plan_fingerprint"] == dummy["plan_fingerprint"]
    # The diff: per user and SKU, the enabled plans before and after; nobody has fewer after.
    assert sorted(result["diff"]["before"]) == sorted(result["diff"]["after"]) == sorted(entry["user"] for entry in result["removed"])
    for upn, skus in result["diff"]["before"].items():
        before, after = skus["ENTERPRISEPACK"], result["diff"]["after"][upn]["ENTERPRISEPACK"]
        assert before["direct_enabled_plans"] and after["direct_enabled_plans"] is None
        assert set(before["enabled_plans"]) <= set(after["enabled_plans"]) == set(after["inherited_enabled_plans"])
    sway_off = next(entry["user"] for entry in result["removed"] if entry["user_id"] == roles["sway_off"])
    # Its direct copy disables Sway, and so does the group that covers it: Sway is in neither side.
    assert "SWAY" not in result["diff"]["before"][sway_off]["ENTERPRISEPACK"]["enabled_plans"]
    assert "SWAY" not in result["diff"]["after"][sway_off]["ENTERPRISEPACK"]["enabled_plans"]
    assert "EXCHANGE_S_ENTERPRISE" in result["diff"]["after"][sway_off]["ENTERPRISEPACK"]["enabled_plans"]
    assert direct_sku_ids(emu, roles["safe_0"]) == [E3]
    assert not list(tmp_path.glob("*.jsonl"))


def test_user_removed_from_group_between_plan_and_write_keeps_it(emu, roles, tmp_path):
    # the group re-processes the leaver at once, so its other members stay covered (with ENTRAOPS_STRICT_EMULATOR's
    # processing delay the whole group is "processing" for a while and its members are rightly skipped)
    emu.configure(processing_delay_s=0)
    plan_path, dummy = plan(emu, tmp_path)
    victim = roles["safe_5"]
    # On the read of the victim's memberships: Graph runs a $batch's items in any order, and whichever of the
    # victim's two reads runs first, the membership read answers without the group (a fault on the user read
    # let the membership read run before the change, and the removal was then rightly caught and put back).
    emu.add_fault(method="GET", route="/users/%s/memberOf" % victim, op={"op": "remove_member", "group": GROUPS["e3_all"], "user": victim})
    result, failed = run(emu, plan_path=plan_path, journal_path=str(tmp_path / "journal.jsonl"))
    assert not failed, result.get("msg")
    assert direct_sku_ids(emu, victim) == [E3]
    assert victim not in [entry["user_id"] for entry in result["removed"]]
    assert result["removed_total"] == len(SAFE_ROLES) - 1
    emu.process_all()
    assert emu.loss_ledger() == []


def test_membership_lost_during_the_write_is_put_back(emu, roles, tmp_path):
    # Entra processes the membership change later: the post-write check must see the coming loss and restore.
    emu.configure(processing_rate=0.001)
    victim = roles["safe_3"]
    emu.add_fault(method="POST", route="/users/%s/assignLicense$" % victim, op={"op": "remove_member", "group": GROUPS["e3_all"], "user": victim})
    journal_path = str(tmp_path / "journal.jsonl")
    result, failed = run(emu, users=[roles["safe_%d" % index] for index in range(6)], skus=[E3], journal_path=journal_path, max_failures=1)
    assert not failed, result.get("msg")
    assert [failure["user_id"] for failure in result["failures"]] == [victim]
    assert "put back" in result["failures"][0]["reason"]
    assert result["failures"][0]["kind"] == "service_loss"
    assert result["removed_total"] == 5
    assert direct_sku_ids(emu, victim) == [E3]
    outcomes = [entry["outcome"] for entry in read_journal(journal_path)["entries"] if entry["type"] == "result" and entry["user_id"] == victim]
    assert outcomes == ["ok", "rolled_back"]  # the restore's result, then the removal's
    emu.configure(processing_rate=1000.0)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_throttling_storm_migrates_each_user_once(emu, roles, tmp_path):
    plan_path, dummy = plan(emu, tmp_path)
    emu.reset_stats()
    emu.add_fault(method="POST", route=REMOVE_ROUTE, status=429, retry_after=0, count=6)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=503, retry_after=0, count=6)
    emu.add_fault(method="GET", route=r"/memberOf", status=429, retry_after=0, count=4)
    result, failed = run(emu, plan_path=plan_path, journal_path=str(tmp_path / "journal.jsonl"))
    assert not failed, result.get("msg")
    assert result["removed_total"] == len(SAFE_ROLES)
    writes = removal_writes(emu)
    assert sorted(writes) == sorted(roles[role] for role in SAFE_ROLES)
    assert len(removal_writes(emu, 429)) == 6
    assert_migrated(emu, roles)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_write_applied_then_504_is_reconciled_not_resent(emu, roles, tmp_path):
    victim = roles["safe_1"]
    emu.add_fault(method="POST", route="/users/%s/assignLicense$" % victim, status=504, apply_then=True)
    journal_path = str(tmp_path / "journal.jsonl")
    result, failed = run(emu, users=[roles["safe_%d" % index] for index in range(4)], skus=[E3], journal_path=journal_path)
    assert not failed, result.get("msg")
    assert result["removed_total"] == 4 and result["failures"] == []
    assert [entry["outcome"] for entry in result["reconciled"]] == ["applied"]
    assert [entry["path"] for entry in emu.request_log() if entry["method"] == "POST" and victim in entry["path"]] == ["/v1.0/users/%s/assignLicense" % victim]
    state = journal_state(read_journal(journal_path)["entries"])[(victim, E3)]
    assert state["outcome"] == "ok" and state["restorable"] is True
    emu.process_all()
    assert emu.loss_ledger() == []


def test_dropped_connection_then_rerun_finishes_once(emu, roles, tmp_path):
    plan_path, dummy = plan(emu, tmp_path)
    emu.reset_stats()
    # The whole $batch reply is lost after the first removal was applied: every item's outcome is unknown.
    emu.add_fault(method="POST", route=REMOVE_ROUTE, apply_then=True, drop=True)
    journal_path = str(tmp_path / "journal.jsonl")
    first, failed = run(emu, plan_path=plan_path, journal_path=journal_path, max_failures=100)
    assert not failed, first.get("msg")
    second, failed = run(emu, plan_path=plan_path, journal_path=journal_path)
    assert not failed, second.get("msg")
    assert_migrated(emu, roles)
    assert [entry["outcome"] for entry in first["reconciled"]] == ["applied"]
    assert first["failures"] and all("not re-sent" in failure["reason"] for failure in first["failures"])
    assert set(failure["kind"] for failure in first["failures"]) == set(["outcome_unknown"])
    # every safe user got exactly one removal request over both runs (the lost one was never re-sent)
    assert sorted(removal_writes(emu, status=None)) == sorted(roles[role] for role in SAFE_ROLES)
    assert first["removed_total"] + second["removed_total"] == len(SAFE_ROLES)
    states = journal_state(read_journal(journal_path)["entries"])
    assert all(states[(roles[role], E3)]["restorable"] for role in SAFE_ROLES)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_killed_process_then_rerun_and_restore(emu, roles, tmp_path):
    before = direct_state(emu)
    plan_path, dummy = plan(emu, tmp_path, canary_size=0, batch_size=100)
    emu.reset_stats()
    emu.configure(latency_ms=40)
    journal_path = str(tmp_path / "journal.jsonl")
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(connection(emu), plan_path=plan_path, journal_path=journal_path)}))
    # The module runs as its own process: give it the collection root this test imported, whichever
    # interpreter or ansible-test leg runs it (only the main venv has a .pth for the checkout).
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, MODULE_PATH, str(args_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while len(removal_writes(emu)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    dummy_stdout, stderr = process.communicate()
    done_before_kill = len(set(removal_writes(emu)))
    assert 3 <= done_before_kill < len(SAFE_ROLES), stderr.decode("utf-8", "replace")[-2000:]
    emu.configure(latency_ms=0)

    wait_until_quiet(emu)  # the emulator finishes the $batch the killed process had sent
    pending = [state for state in journal_state(read_journal(journal_path)["entries"]).values() if state["pending"]]
    applied = set(state["user_id"] for state in pending if direct_sku_ids(emu, state["user_id"]) == [])
    assert pending  # killed while its $batch of removals was in flight: intents without results
    rerun, failed = run(emu, plan_path=plan_path, journal_path=journal_path)
    assert not failed, rerun.get("msg")
    # every intent the killed run left without a result is reconciled from a fresh read
    assert sorted(entry["op_id"] for entry in rerun["reconciled"]) == sorted(state["op_id"] for state in pending)
    for entry in rerun["reconciled"]:
        assert (entry["outcome"] == "applied") == (entry["user_id"] in applied)
    # ... and journaled by the rerun: no intent in the file is left without a result
    lines = read_journal(journal_path)["entries"]
    answered = dict((line["op_id"], line) for line in lines if line["type"] == "result")
    assert [line["op_id"] for line in lines if line["type"] == "intent" and line["op_id"] not in answered] == []
    assert all(answered[state["op_id"]].get("reconciled") is True for state in pending)
    writes = removal_writes(emu)
    assert sorted(writes) == sorted(roles[role] for role in SAFE_ROLES)  # each user exactly once
    assert_migrated(emu, roles)

    restore, failed = run(emu, state="present", restore_from=journal_path)
    assert not failed, restore.get("msg")
    assert restore["restored_total"] == len(SAFE_ROLES)
    assert direct_state(emu) == before
    emu.process_all()
    assert emu.loss_ledger() == []


def test_manual_restore_with_disabled_plans(emu, roles, tmp_path):
    emu.configure(read_lag_ms=0)  # runs the module again right after its writes (ENTRAOPS_STRICT_EMULATOR lags reads)
    journal_path = str(tmp_path / "journal.jsonl")
    user = roles["safe_0"]
    removed, failed = run(emu, users=[user], skus=["ENTERPRISEPACK"], journal_path=journal_path)
    assert not failed and removed["removed_total"] == 1
    result, failed = run(emu, state="present", users=[user], skus=["ENTERPRISEPACK"], disabled_plans=["SWAY"], journal_path=journal_path)
    assert not failed, result.get("msg")
    assert result["restored_total"] == 1 and result["restored"][0]["disabled_plans"] != []
    entry = next(
        entry for entry in emu.directory.get_user(user, select=("licenseAssignmentStates",))["licenseAssignmentStates"] if entry["assignedByGroup"] is None
    )
    assert len(entry["disabledPlans"]) == 1
    again, failed = run(emu, state="present", users=[user], skus=["ENTERPRISEPACK"], disabled_plans=["SWAY"], journal_path=journal_path)
    assert not failed and again["changed"] is False and again["skipped_by_verdict"] == {"already_present": 1}
    emu.process_all()
    assert emu.loss_ledger() == []


def test_refused_writes_stop_at_max_failures(emu, roles, tmp_path):
    emu.add_fault(method="POST", route=REMOVE_ROUTE, status=400, count=None)
    users = [roles["safe_%d" % index] for index in range(SAFE_USERS)]
    result, failed = run(emu, users=users, skus=[E3], journal_path=str(tmp_path / "journal.jsonl"), max_failures=1)
    assert failed and result["stopped"] is True
    assert "max_failures=1" in result["msg"]
    # the first chunk (10 rows) was attempted and every row of it settled; the rest never sent
    assert len(removal_writes(emu, 400)) == 10
    assert len(result["failures"]) == 10
    assert set(failure["kind"] for failure in result["failures"]) == {"graph_error"}
    assert all(direct_sku_ids(emu, user) == [E3] for user in users)


def test_a_failure_in_a_chunk_leaves_no_written_row_unsettled(emu, roles, tmp_path):
    """Graph runs a $batch's items in any order: rows written after a failed one are still verified and journaled."""
    plan_path, dummy = plan(emu, tmp_path, canary_size=2, batch_size=50)
    emu.add_fault(method="POST", route=REMOVE_ROUTE, status=500, skip=2, count=None)
    journal_path = str(tmp_path / "journal.jsonl")
    result, failed = run(emu, plan_path=plan_path, journal_path=journal_path)
    assert failed and result["stopped"] is True
    applied = removal_writes(emu, 200)
    assert len(applied) == 2
    # Both applied removals were verified and counted, wherever they stood in the chunk ...
    assert result["removed_total"] == 2
    assert sorted(entry["user_id"] for entry in result["removed"]) == sorted(applied)
    # ... and every intent of the chunk has its result: nothing left open for a later run to guess about.
    entries = read_journal(journal_path)["entries"]
    intents = set(entry["op_id"] for entry in entries if entry["type"] == "intent")
    results = set(entry["op_id"] for entry in entries if entry["type"] == "result")
    assert intents and intents == results
    assert emu.loss_ledger() == []


def test_bad_input_fails_before_any_write(emu, roles, tmp_path):
    result, failed = run(emu, users=[roles["safe_0"]], skus=["NOT_A_SKU"], journal_path=str(tmp_path / "j.jsonl"))
    assert failed and "'NOT_A_SKU'" in result["msg"] and "ENTERPRISEPACK" in result["msg"]
    result, failed = run(emu, users=[roles["safe_0"]], skus=[E3])
    assert failed and "journal_path is required" in result["msg"]
    result, failed = run(emu, plan_path=str(tmp_path / "missing.json"), journal_path=str(tmp_path / "j.jsonl"))
    assert failed and "does not exist" in result["msg"]
    assert graph_writes(emu) == []
    assert direct_sku_ids(emu, roles["safe_0"]) == [E3]


def test_plan_of_another_tenant_is_refused_and_plan_trust_applies(emu, roles, tmp_path):
    plan_path, dummy = plan(emu, tmp_path)
    with open(plan_path, encoding="utf-8") as stream:
        document = json.load(stream)
    assert document["tenant_id"] == emu.tenant_id.lower()
    other = dict(document, tenant_id="00000000-0000-0000-0000-0000000000aa")
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    result, failed = run(emu, plan_path=str(other_path), journal_path=str(tmp_path / "journal.jsonl"))
    assert failed and "not for tenant" in result["msg"]
    # A plan made with trusted groups is re-checked with them even when the task does not repeat them.
    trusted_path = tmp_path / "trusted.json"
    trusted_path.write_text(json.dumps(dict(document, trusted_groups=[GROUPS["e3_no_sway"]])))
    result, failed = run(emu, plan_path=str(trusted_path), _ansible_check_mode=True)
    assert not failed, result.get("msg")
    assert result["removed_total"] == 1 and result["removed"][0]["user_id"] == roles["sway_off"]
    assert result["skipped_by_verdict"] == {"inherited_from_untrusted_group": len(SAFE_ROLES) - 1}
    assert graph_writes(emu) == []


def test_failed_reread_still_leaves_a_complete_journal(emu, roles, tmp_path):
    victim = roles["safe_2"]
    users = [roles["safe_%d" % index] for index in range(4)]
    # reads of the victim: resolving the input, the fresh read, then the check after the write (refused)
    emu.add_fault(method="GET", route="/users/%s$" % victim, skip=2, status=403)
    journal_path = str(tmp_path / "journal.jsonl")
    result, failed = run(emu, users=users, skus=[E3], journal_path=journal_path)
    assert failed and result["rollback_script_path"] is not None
    states = journal_state(read_journal(journal_path)["entries"])
    assert sorted(user_id for user_id, dummy in states) == sorted(users)
    assert all(state["outcome"] == "ok" and not state["pending"] for state in states.values())
    again, failed = run(emu, users=users + [roles["direct_only"]], skus=[E3, "AAD_PREMIUM"], journal_path=journal_path)
    assert not failed, again.get("msg")
    assert again["removed_total"] == 0
    assert again["skipped_by_verdict"] == {"inherited_only": 4, "direct_only": 1, "not_held": 5}
    emu.process_all()
    assert emu.loss_ledger() == []


def test_a_user_without_usage_location_is_migrated_then_restored_with_the_tenant_country(emu, roles, tenant_and_roles, tmp_path):
    tenant = copy.deepcopy(tenant_and_roles[0])
    user_id = roles["safe_0"]
    next(user for user in tenant["users"] if user["id"] == user_id)["usageLocation"] = None
    emu.load_state(tenant)
    journal_path = str(tmp_path / "journal.jsonl")
    removed, failed = run(emu, users=[user_id], skus=[E3], journal_path=journal_path)
    assert not failed and removed["removed_total"] == 1  # group licensing uses the tenant's country: nothing stands in the way
    assert direct_sku_ids(emu, user_id) == []

    writes_before = len(graph_writes(emu))
    refused, failed = run(emu, state="present", restore_from=journal_path, restore_usage_location="none", max_failures=1)
    assert [failure["kind"] for failure in refused["failures"]] == ["usage_location_missing"]
    assert len(graph_writes(emu)) == writes_before  # nothing sent that Graph would refuse

    # the default app may not PATCH users: Graph's 403 is a graph_error, the license is not sent
    denied, failed = run(emu, state="present", restore_from=journal_path, max_failures=1)
    assert [failure["kind"] for failure in denied["failures"]] == ["graph_error"] and direct_sku_ids(emu, user_id) == []

    app = emu.add_app(
        permissions=["LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "GroupMember.Read.All", "Organization.Read.All"], secret="restorer-secret"
    )
    restored, failed = run_module(
        direct_license.main, dict(connection(emu), client_id=app["clientId"], client_secret="restorer-secret", state="present", restore_from=journal_path)
    )
    assert not failed, restored.get("msg")
    assert restored["restored_total"] == 1 and restored["failures"] == []
    assert restored["restored"][0]["usage_location_set"] == "US"  # the tenant's countryLetterCode
    assert direct_sku_ids(emu, user_id) == [E3]
    assert emu.directory.get_user(user_id, select=("id", "usageLocation"))["usageLocation"] == "US"
    entries = read_journal(journal_path)["entries"]
    assert restorable(entries) == []
    intents = [entry for entry in entries if entry.get("type") == "intent" and entry["op"] == "restore_direct"]
    assert intents[-1]["extra"] == {"usage_location_set": "US"}
    assert emu.loss_ledger() == []
