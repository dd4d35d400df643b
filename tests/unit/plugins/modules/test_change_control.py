# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Change control against the Graph emulator: the plan is a change artifact, approval binds to its content, every task converges.

Real HTTPS and msal, every module run in-process (or as its own process where two run at once); the loss
ledger is asserted empty wherever anything was removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.entraops.licensing.plugins.module_utils.journal import read_journal
from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan
from ansible_collections.entraops.licensing.plugins.modules import (
    direct_license,
    group_license,
    license_assignment_info,
    license_processing_wait,
    licensing_group,
    migration_report,
    sku_info,
)

from .migration_tenant import GROUPS, SAFE_USERS, build_tenant, connection, reset_migration_emulator
from .utils import graph_writes, run_module, wait_until_quiet
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS

MODULE_PATH = os.path.join(os.path.dirname(direct_license.__file__), "direct_license.py")
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(MODULE_PATH), *([".."] * 5)))
CANARY = 2
BATCH = 5
# Safe rows of the migration tenant: the safe_N users plus two_groups and sway_off.
SAFE_ROWS = SAFE_USERS + 2


def quiet_reset(emu):
    """Empty the request log once it stops growing, so that "no request at all" is this run's (see reset_migration_emulator)."""
    wait_until_quiet(emu, quiet_seconds=0.2)
    emu.reset_stats()


def info(emu, plan_path, **options):
    args = dict(
        connection(emu),
        skus=["ENTERPRISEPACK"],
        trusted_groups=[GROUPS["e3_all"], GROUPS["e3_no_sway"], GROUPS["e3_no_yammer"]],
        plan_path=plan_path,
        canary_size=CANARY,
        batch_size=BATCH,
    )
    args.update(options)
    return run_module(license_assignment_info.main, args)


def remove(emu, plan_path, journal_path, **options):
    return run_module(direct_license.main, dict(connection(emu), state="absent", plan_path=plan_path, journal_path=journal_path, **options))


def removals(emu):
    """(user id, status) of every assignLicense the emulator received."""
    return [
        (entry["path"].split("/")[3], entry["status"]) for entry in emu.request_log() if entry["method"] == "POST" and entry["path"].endswith("/assignLicense")
    ]


def plan_users(plan_path, batch):
    return sorted(row["user_id"] for row in read_plan(plan_path)["rows"] if row["batch"] == batch)


def assert_no_loss(emu):
    emu.process_all()
    assert emu.loss_ledger() == []


# ---- 1. a plan is a change artifact; 3. every play converges --------------------------------------------


def test_the_canary_play_run_twice_removes_exactly_the_canary(emu, tmp_path):
    """The issue's play (modules alone, no role): run twice, it removes the canary once and nothing else."""
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    first_info, failed = info(emu, plan_path, canary_size=5)
    assert not failed, first_info.get("msg")
    assert first_info["plan_kept"] is False and first_info["plan_fingerprint"].startswith("sha256:")
    canary = plan_users(plan_path, 0)
    assert len(canary) == 5
    first, failed = remove(emu, plan_path, journal_path, batches=[0])
    assert not failed and first["changed"] is True and first["removed_total"] == 5
    assert first["plan_fingerprint"] == first_info["plan_fingerprint"]
    plan_bytes = open(plan_path, "rb").read()

    emu.reset_stats()
    second_info, failed = info(emu, plan_path, canary_size=5)
    assert not failed, second_info.get("msg")
    assert second_info["plan_kept"] is True
    assert second_info["plan_fingerprint"] == first_info["plan_fingerprint"]
    assert second_info["batch_sizes"] == first_info["batch_sizes"]
    assert second_info["summary"]["safe_to_remove"] == first_info["summary"]["safe_to_remove"] - 5  # the report is this run's read
    assert open(plan_path, "rb").read() == plan_bytes
    second, failed = remove(emu, plan_path, journal_path, batches=[0])
    assert not failed and second["changed"] is False and second["removed_total"] == 0
    assert second["skipped_by_verdict"] == {"inherited_only": 5}
    assert graph_writes(emu) == []
    assert sorted(user for user, dummy in removals(emu)) == []
    assert sorted(entry["user_id"] for entry in first["removed"]) == canary
    assert_no_loss(emu)


def test_a_done_plan_run_again_is_nothing_to_do_and_a_typo_is_still_an_error(emu, tmp_path):
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    written, dummy = info(emu, plan_path)
    whole, failed = remove(emu, plan_path, journal_path)
    assert not failed and whole["removed_total"] == SAFE_ROWS
    emu.reset_stats()
    for batches in (None, [0], [1, 2]):
        kept, failed = info(emu, plan_path)
        assert not failed and kept["plan_kept"] is True and kept["batches"] == written["batches"]
        again, failed = remove(emu, plan_path, journal_path, **({} if batches is None else {"batches": batches}))
        assert not failed, again.get("msg")
        assert again["changed"] is False and again["removed_total"] == 0
    assert graph_writes(emu) == []
    typo, failed = remove(emu, plan_path, journal_path, batches=[40])
    assert failed and "batch 40 is not in the plan; the plan has batches 0-" in typo["msg"]
    assert graph_writes(emu) == []
    assert_no_loss(emu)


def test_an_empty_plan_is_nothing_to_do(emu, roles, tmp_path):
    plan_path = str(tmp_path / "plan.json")
    args = dict(connection(emu), users=[roles["lossy"], roles["direct_only"]], skus=["ENTERPRISEPACK"], plan_path=plan_path)
    written, failed = run_module(license_assignment_info.main, args)
    assert not failed and written["batches"] == 0 and written["batch_sizes"] == {}
    result, failed = remove(emu, plan_path, str(tmp_path / "journal.jsonl"), batches=[0])
    assert not failed, result.get("msg")
    assert result["changed"] is False and result["removed_total"] == 0
    assert graph_writes(emu) == []


def test_replace_plan_writes_a_new_plan_and_names_the_one_it_replaced(emu, tmp_path):
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    first, dummy = info(emu, plan_path)
    remove(emu, plan_path, journal_path, batches=[0])
    new, failed = info(emu, plan_path, replace_plan=True)
    assert not failed, new.get("msg")
    assert new["plan_kept"] is False
    assert new["previous_plan_fingerprint"] == first["plan_fingerprint"] != new["plan_fingerprint"]
    # The canary is gone from the tenant's safe rows, so the new plan's batch 0 names other users.
    assert sum(new["batch_sizes"].values()) == SAFE_ROWS - CANARY
    script = open(new["planned_script_path"], encoding="utf-8-sig").read()
    assert "Plan fingerprint: %s" % new["plan_fingerprint"] in script
    assert_no_loss(emu)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"canary_size": 3}, "canary_size: the plan has 2, this task asks for 3"),
        ({"batch_size": 50}, "batch_size: the plan has 5, this task asks for 50"),
        ({"trusted_groups": [GROUPS["e3_all"]]}, "trusted_groups: the plan has"),
        ({"skus": None, "groups": ["LIC E3 all"]}, "scope: the plan has"),
    ],
)
def test_a_kept_plan_must_match_the_task(emu, tmp_path, change, named):
    plan_path = str(tmp_path / "plan.json")
    info(emu, plan_path)
    plan_bytes = open(plan_path, "rb").read()
    result, failed = info(emu, plan_path, **change)
    assert failed and named in result["msg"] and "replace_plan" in result["msg"]
    assert open(plan_path, "rb").read() == plan_bytes


def test_a_file_that_is_not_a_plan_is_never_replaced_silently(emu, tmp_path):
    plan_path = tmp_path / "plan.json"
    plan_path.write_text('{"not": "a plan"}')
    quiet_reset(emu)
    result, failed = info(emu, str(plan_path))
    assert failed and "is not a plan this collection can keep" in result["msg"] and str(plan_path) in result["msg"]
    assert emu.request_log() == []  # before any Graph call
    assert plan_path.read_text() == '{"not": "a plan"}'
    # What the message offers: replace_plan writes a new plan over it.
    replaced, failed = info(emu, str(plan_path), replace_plan=True)
    assert not failed, replaced.get("msg")
    assert replaced["plan_kept"] is False and "previous_plan_fingerprint" not in replaced
    assert read_plan(str(plan_path))["content_fingerprint"] == replaced["plan_fingerprint"]


# ---- 2. approval binds to content --------------------------------------------------------------------


def _edit(path, change):
    plan = json.load(open(path, encoding="utf-8"))
    change(plan)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(plan, stream, indent=1)


def _other_user_row(plan, roles):
    row = dict(plan["rows"][0], user_id=roles["lossy"], user_principal_name="lossy@contoso.com", batch=0)
    plan["rows"].append(row)


@pytest.mark.parametrize(
    "edit",
    [
        lambda plan, roles: plan["rows"][1].update(user_principal_name="mallory@contoso.com"),
        _other_user_row,
        lambda plan, roles: plan["rows"][-1].update(batch=0),
    ],
    ids=["one row changed", "one row added", "a batch number changed"],
)
def test_an_edited_plan_is_refused_naming_both_fingerprints_before_any_graph_call(emu, roles, tmp_path, edit):
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    approved = info(emu, plan_path)[0]["plan_fingerprint"]
    _edit(plan_path, lambda plan: edit(plan, roles))
    edited = read_plan(plan_path)["content_fingerprint"]
    assert edited != approved
    quiet_reset(emu)
    for batches in ([0], None):
        result, failed = remove(emu, plan_path, journal_path, plan_fingerprint=approved, **({} if batches is None else {"batches": batches}))
        assert failed
        assert approved in result["msg"] and edited in result["msg"] and "not the approved plan" in result["msg"]
    assert emu.request_log() == []  # not even a token: nothing reached the emulator
    assert not os.path.exists(journal_path)


def test_the_approved_fingerprint_runs_and_a_regenerated_plan_is_refused(emu, tmp_path):
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    approved = info(emu, plan_path)[0]["plan_fingerprint"]
    # As written in a change record: without the prefix, upper case.
    canary, failed = remove(emu, plan_path, journal_path, batches=[0], plan_fingerprint=approved[len("sha256:") :].upper())
    assert not failed, canary.get("msg")
    assert canary["removed_total"] == CANARY and canary["plan_fingerprint"] == approved
    run_lines = [entry for entry in read_journal(journal_path)["entries"] if entry["type"] == "run"]
    assert [(line["plan_path"], line["plan_fingerprint"]) for line in run_lines] == [(plan_path, approved)]
    regenerated = info(emu, plan_path, replace_plan=True)[0]["plan_fingerprint"]
    quiet_reset(emu)
    refused, failed = remove(emu, plan_path, journal_path, batches=[1], plan_fingerprint=approved)
    assert failed and regenerated in refused["msg"] and approved in refused["msg"]
    assert emu.request_log() == []
    assert_no_loss(emu)


@pytest.mark.parametrize("value", ["sha256:1234", "md5:" + "a" * 64, "approved"])
def test_a_malformed_fingerprint_fails_naming_it(emu, tmp_path, value):
    plan_path = str(tmp_path / "plan.json")
    info(emu, plan_path)
    quiet_reset(emu)
    result, failed = remove(emu, plan_path, str(tmp_path / "journal.jsonl"), plan_fingerprint=value)
    assert failed and repr(value) in result["msg"] and "64 hexadecimal digits" in result["msg"]
    assert emu.request_log() == []


def test_plan_fingerprint_needs_a_plan(emu, roles):
    result, failed = run_module(
        direct_license.main,
        dict(connection(emu), users=[roles["safe_0"]], skus=["ENTERPRISEPACK"], plan_fingerprint="sha256:" + "a" * 64, journal_path="/nonexistent/j.jsonl"),
    )
    assert failed and "plan_fingerprint applies to plan_path only" in result["msg"]


def test_the_migration_report_shows_the_fingerprint_and_runs_of_another_plan(emu, tmp_path):
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    first = info(emu, plan_path)[0]["plan_fingerprint"]
    remove(emu, plan_path, journal_path, batches=[0])
    second = info(emu, plan_path, replace_plan=True)[0]["plan_fingerprint"]
    html_path = str(tmp_path / "report.html")
    result, failed = run_module(migration_report.main, dict(title="t", plan_path=plan_path, journal_path=journal_path, html_path=html_path))
    assert not failed, result.get("msg")
    html = open(html_path, encoding="utf-8").read()
    assert 'id="plan-fingerprint"' in html and second in html
    assert "The journal holds runs of another plan content: <code>%s</code>" % first in html
    assert_no_loss(emu)


# ---- 4. check mode shows the exact change ----------------------------------------------------------


def test_check_mode_names_every_row_of_the_run_after_its_fresh_read(emu, roles, tmp_path):
    emu.configure(processing_delay_s=0)  # as in test_direct_license: the leaver's group is re-processed at once
    plan_path = str(tmp_path / "plan.json")
    info(emu, plan_path)
    batch = plan_users(plan_path, 1)
    # One user of batch 1 leaves the licensing group just as the run reads them: the fresh read drops them.
    leaver = batch[0]
    # The leave lands as the run reads the leaver's memberships: a $batch runs its items in any order, so a fault
    # on the user read could come after the membership read of the same batch.
    emu.add_fault(method="GET", route="/users/%s/memberOf$" % leaver, op={"op": "remove_member", "group": GROUPS["e3_all"], "user": leaver})
    emu.reset_stats()
    result, failed = remove(emu, plan_path, None, batches=[1], _ansible_check_mode=True, _ansible_diff=True)
    assert not failed, result.get("msg")
    named = sorted(entry["user_id"] for entry in result["removed"])
    assert leaver not in named and len(batch) == BATCH
    assert named == sorted(user for user in batch if user != leaver) and result["removed_total"] == BATCH - 1
    # Not a member any more; Entra may not have taken the group's copy away yet when the user is read.
    assert sum(result["skipped_by_verdict"].values()) == 1 and set(result["skipped_by_verdict"]) <= {"not_direct_member", "direct_only"}
    assert all(entry["sku"] == "ENTERPRISEPACK" and entry["enabled_plans"] for entry in result["removed"])
    assert sorted(result["diff"]["before"]) == sorted(entry["user"] for entry in result["removed"])
    assert graph_writes(emu) == []


# ---- 5. two runs at once -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_tenant():
    return build_tenant(extra_safe=150 - SAFE_USERS)


@pytest.fixture(scope="module")
def large_emulator(large_tenant):
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    with Emulator(tenant=copy.deepcopy(large_tenant[0]), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu


@pytest.mark.parametrize(
    "second_plan, second_journal, locked",
    [
        ("same", "same", "plan"),
        ("same", "other", "plan"),
        ("copy", "same", "journal"),
    ],
    ids=["same plan and journal", "same plan, other journal", "copy of the plan, same journal"],
)
def test_two_runs_at_once_do_not_both_write(large_emulator, large_tenant, tmp_path, second_plan, second_journal, locked):
    """150 users, batches 0-2 relaunched while the first run still writes: the second fails before any write."""
    emu = large_emulator
    reset_migration_emulator(emu, large_tenant[0])
    plan_path, journal_path = str(tmp_path / "plan.json"), str(tmp_path / "journal.jsonl")
    written, failed = info(emu, plan_path, canary_size=10, batch_size=70, trusted_groups=None)
    assert not failed and written["batch_sizes"] == {"0": 10, "1": 70, "2": 70, "3": 2}
    planned = sorted(user for batch in (0, 1, 2) for user in plan_users(plan_path, batch))
    emu.configure(latency_ms=30)
    emu.reset_stats()
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(connection(emu), plan_path=plan_path, batches=[0, 1, 2], journal_path=journal_path)}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    first = subprocess.Popen([sys.executable, MODULE_PATH, str(args_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not removals(emu) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first.poll() is None, "the first run ended before the second started"
    writes_before = len(removals(emu))

    other_plan = plan_path
    if second_plan == "copy":
        other_plan = str(tmp_path / "plan-copy.json")
        shutil.copyfile(plan_path, other_plan)
    other_journal = journal_path if second_journal == "same" else str(tmp_path / "other.jsonl")
    second, failed = remove(emu, other_plan, other_journal, batches=[0, 1, 2])
    assert first.poll() is None, "the first run ended while the second ran: the test proves nothing"
    assert failed and "is in use by another run" in second["msg"] and locked in second["msg"]
    assert second.get("removed_total", 0) == 0

    stdout, stderr = first.communicate(timeout=120)
    outcome = json.loads(stdout.decode("utf-8"))
    assert not outcome.get("failed"), stderr.decode("utf-8", "replace")[-2000:]
    assert outcome["removed_total"] == len(planned) and writes_before < len(planned)
    # Each planned user removed exactly once, by the first run only; the journal holds that run alone, complete.
    assert sorted(user for user, status in removals(emu)) == planned
    entries = read_journal(journal_path)["entries"]
    assert len([entry for entry in entries if entry["type"] == "run"]) == 1
    intents = [entry for entry in entries if entry["type"] == "intent"]
    results = dict((entry["op_id"], entry) for entry in entries if entry["type"] == "result")
    assert sorted(entry["user_id"] for entry in intents) == planned
    assert all(results[entry["op_id"]]["outcome"] == "ok" for entry in intents)
    assert not os.path.exists(str(tmp_path / "other.jsonl")) or read_journal(str(tmp_path / "other.jsonl"))["entries"] == []
    emu.configure(latency_ms=0)
    assert_no_loss(emu)


# ---- 3. property: any sequence of tasks, each run twice, converges ----------------------------------


def _task(name, folder, roles):
    plan_path, journal_path = os.path.join(folder, "plan.json"), os.path.join(folder, "journal.jsonl")
    tasks = {
        "plan": (
            license_assignment_info,
            dict(skus=["ENTERPRISEPACK"], plan_path=plan_path, canary_size=CANARY, batch_size=BATCH, report_path=os.path.join(folder, "report.json")),
        ),
        "canary": (direct_license, dict(plan_path=plan_path, batches=[0], journal_path=journal_path)),
        "batch 1": (direct_license, dict(plan_path=plan_path, batches=[1], journal_path=journal_path)),
        "batches 2-3": (direct_license, dict(plan_path=plan_path, batches=[2, 3], journal_path=journal_path)),
        "whole plan": (direct_license, dict(plan_path=plan_path, journal_path=journal_path)),
        "users": (direct_license, dict(users=[roles["safe_3"], roles["lossy"]], skus=["ENTERPRISEPACK"], journal_path=journal_path)),
        "restore": (direct_license, dict(state="present", restore_from=journal_path)),
        "manual restore": (
            direct_license,
            dict(state="present", users=[roles["safe_5"]], skus=["ENTERPRISEPACK"], disabled_plans=["SWAY"], journal_path=journal_path),
        ),
        "group": (licensing_group, dict(name="LIC E3 all", members=[roles["safe_0"], roles["safe_1"]])),
        "group license": (group_license, dict(group="LIC E3 no Yammer", licenses=[{"sku": "ENTERPRISEPACK", "disabled_plans": ["YAMMER_ENTERPRISE"]}])),
        "wait": (license_processing_wait, dict(groups=["LIC E3 all", "LIC E3 no SWAY"], wait_timeout=30, poll_interval=1)),
        "skus": (sku_info, dict(skus=["ENTERPRISEPACK"])),
    }
    return tasks[name]


TASK_NAMES = ["plan", "canary", "batch 1", "batches 2-3", "whole plan", "users", "restore", "manual restore", "group", "group license", "wait", "skus"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(st.sampled_from(TASK_NAMES), min_size=1, max_size=6))
def test_any_sequence_of_tasks_each_run_twice_converges(emulator_module, tenant_and_roles, tmp_path_factory, sequence):
    emu, roles = emulator_module, tenant_and_roles[1]
    reset_migration_emulator(emu, tenant_and_roles[0])
    folder = str(tmp_path_factory.mktemp("sequence"))
    # Every plan task keeps the first plan; a removal before any plan task needs one, as an operator's play would have.
    # The journal exists from the start (a restore from a journal that does not exist is bad input, not a no-op).
    _run_task(emu, "plan", folder, roles)
    open(os.path.join(folder, "journal.jsonl"), "a").close()
    for name in sequence:
        first, failed = _run_task(emu, name, folder, roles)
        assert not failed, "%s: %s" % (name, first.get("msg"))
        emu.process_all()
        emu.reset_stats()
        second, failed = _run_task(emu, name, folder, roles)
        assert not failed, "%s (again): %s" % (name, second.get("msg"))
        assert second["changed"] is False, "%s run again reported changed: %s" % (name, second)
        assert graph_writes(emu) == [], "%s run again wrote: %s" % (name, graph_writes(emu))
    assert_no_loss(emu)


def _run_task(emu, name, folder, roles):
    module, options = _task(name, folder, roles)
    return run_module(module.main, dict(connection(emu), **options))
