# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fault scenarios end to end: the migration chain against the emulator, a few hundred users each.

Every scenario runs the role's sequence (groups, group licenses, wait, plan, canary, batches),
with its faults in place, then re-runs the removal as an operator would (the resume), and checks:
no loss caused by the collection in the emulator's ledger, no journal intent left without a
result, and the final state the scenario expects. Each adds a row to the campaign table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import time

import pytest

from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS
from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan
from ansible_collections.entraops.licensing.plugins.modules import direct_license, group_license, licensing_group
from ansible_collections.entraops.licensing.tests.reliability.campaign import (
    ASSIGN_LICENSE_ROUTE,
    DIRECT_LICENSE_PATH,
    assert_clean_failure,
    E3,
    GROUP_NAME,
    graph_calls,
    direct_state,
    group_phase,
    holders_of_direct_e3,
    inherited_e3_healthy,
    kill_at_call,
    new_hire_ids,
    plan_phase,
    removal_phase,
    rerun_removal,
    reset,
    run,
    skip_reasons,
    split_ledger,
    start_module,
    unresolved_intents,
)

BATCH_SIZE = 50
CANARY_SIZE = 10
KILL_CYCLES = 22
WRITE_KILL_CYCLES = (7, 15)


class Migration:
    """One scenario's run of the chain and what it left behind."""

    def __init__(self, emu, tenant, folder):
        self.emu = emu
        self.tenant = tenant
        self.folder = folder
        self.journal_path = os.path.join(str(folder), "journal.jsonl")
        self.plan_path = None
        self.plan_rows = []
        self.results = []
        self.resume = None
        self.unfired = []
        reset(emu, tenant)
        self.direct_before = direct_state(emu)
        self.holders_before = holders_of_direct_e3(emu)

    def prepare(self, connection_overrides=None):
        """Group, assign, wait and plan; returns {step: (result, failed the first time)}."""
        steps = group_phase(self.emu, connection_overrides)
        self.plan_path, info = plan_phase(self.emu, self.folder, canary_size=CANARY_SIZE, batch_size=BATCH_SIZE, connection_overrides=connection_overrides)
        assert info["summary"]["safe_to_remove"] == len(self.holders_before), info["summary"]
        self.plan_rows = [row for row in read_plan(self.plan_path)["rows"] if row["batch"] is not None]
        steps["license_assignment_info"] = (info, info.get("first_failed", False))
        return steps

    def user_in_chunk(self, chunk):
        """The first user of a removal chunk (10 rows, plan order): a fault on its fresh read fires before the chunk is read."""
        return self.plan_rows[chunk * 10]["user_id"]

    def remove(self, connection_overrides=None):
        batch_count = max(row["batch"] for row in self.plan_rows) + 1
        self.results = removal_phase(self.emu, self.plan_path, self.journal_path, batch_count, connection_overrides)
        return self.results

    def resume_run(self):
        # Every fault a scenario sets must have fired, or the scenario tested less than it says.
        self.unfired = [fault for fault in self.emu.list_faults() if fault["fired"] < (fault["count"] or 1)]
        self.emu.clear_faults()
        self.resume = rerun_removal(self.emu, self.plan_path, self.journal_path)
        return self.resume

    def migrated(self):
        return [user_id for user_id in self.holders_before if E3 not in [sku for sku, dummy in direct_state(self.emu)[user_id]]]

    def check(self, figures, name, expect_all_migrated=True, keep=(), expect_injected_losses=None, restore=False):
        """The campaign's invariants, and a table row. ``keep`` lists users who must still hold E3 directly.

        ``restore``: then put everything back from the journal; the direct assignments must be exactly
        those before the migration (the journal missed no removal).
        """
        if self.resume is None:
            self.resume_run()
        assert self.unfired == [], "faults that did not fire: %s" % self.unfired
        ours, injected = split_ledger(self.emu)
        pending = unresolved_intents(self.journal_path)
        migrated = self.migrated()
        figures(
            kind="scenario",
            scenario=name,
            migrated=len(migrated),
            skipped=skip_reasons([self.resume]),
            losses=len(ours),
            injected_losses=len(injected),
            pending=len(pending),
        )
        assert ours == [], "losses caused by the collection: %s" % ours[:3]
        assert pending == [], "journal intents without a result after the resume: %s" % pending[:3]
        if expect_injected_losses is None:
            for user_id in migrated:
                assert inherited_e3_healthy(self.emu, user_id), "user %s was migrated without a healthy inherited E3" % user_id
        for user_id in keep:
            assert user_id not in migrated, "user %s should have kept the direct E3" % user_id
        if expect_all_migrated:
            assert sorted(migrated) == self.holders_before
        else:
            assert sorted(migrated) == sorted(set(self.holders_before) - set(keep))
        if expect_injected_losses is not None:
            assert len(injected) == expect_injected_losses
        if restore:
            self.restore_everything()
        return migrated

    def restore_everything(self):
        result, failed = run(self.emu, direct_license, state="present", restore_from=self.journal_path)
        assert not failed, result.get("msg")
        after = direct_state(self.emu)
        not_restored = sorted(user_id for user_id, licenses in self.direct_before.items() if after[user_id] != licenses)
        assert not_restored == [], "%d direct assignment(s) removed but not put back by the journal restore" % len(not_restored)
        assert split_ledger(self.emu)[0] == []


@pytest.fixture
def migration(campaign_emulator, scenario_tenant, tmp_path):
    campaign_emulator.configure(**STRICT_KNOBS)
    yield Migration(campaign_emulator, scenario_tenant, tmp_path)
    campaign_emulator.clear_faults()
    campaign_emulator.configure(latency_ms=0, token_lifetime=3599, **STRICT_KNOBS)


def test_baseline_without_faults(migration, figures):
    migration.prepare()
    migration.remove()
    assert all(not failed for dummy, failed in migration.results)
    resume = migration.resume_run()
    assert resume["changed"] is False and resume["removed_total"] == 0
    migration.check(figures, "baseline, no fault")


def test_429_storm_on_top_level_requests(migration, figures):
    emu = migration.emu
    emu.add_fault(method="GET", in_batch=False, status=429, retry_after=0, count=40)
    emu.add_fault(method="POST", route=r"/\$batch$", in_batch=False, status=429, retry_after=0, count=8)
    emu.add_fault(method="POST", route=r"/groups/[^/]+/assignLicense$", status=429, retry_after=0, count=2)
    emu.add_fault(method="PATCH", route=r"/groups/[^/]+$", status=429, retry_after=0, count=2)
    migration.prepare()
    migration.remove()
    assert all(not failed for dummy, failed in migration.results)
    assert emu.stats()["faults_fired"] >= 50
    assert migration.resume_run()["removed_total"] == 0  # the storm was absorbed: nothing left to resume
    migration.check(figures, "429 storm, top-level requests")


def test_429_storm_inside_batch_items(migration, figures):
    emu = migration.emu
    migration.prepare()
    emu.reset_stats()
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=429, retry_after=0, count=80)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=429, retry_after=0, count=80)
    emu.add_fault(method="GET", route=r"/memberOf", status=429, retry_after=0, count=40)
    migration.remove()
    assert all(not failed for dummy, failed in migration.results)
    assert emu.stats()["faults_fired"] == 200
    assert migration.resume_run()["removed_total"] == 0
    migration.check(figures, "429 storm inside $batch items")


def test_graphs_own_throttling_with_a_spent_write_budget(migration, figures):
    """Throttling as Graph documents it: budgets on, refused requests charged, the write budget spent at the start.

    The removal runs with the module's default pacing (20 writes per second, scaled with the emulated
    clock). Each module run starts with a fresh pacer, so each may have its first burst refused; after
    that the pauses and the paced retries must keep it out of trouble: no request sent inside a
    Retry-After window, no second wave of refusals, nothing lost.
    """
    emu = migration.emu
    migration.prepare()
    scale = 5.0
    emu.configure(throttling=True, time_scale=scale, write_budget_left=0.0)
    emu.reset_stats()
    results = migration.remove(connection_overrides=dict(write_rate=20 * scale))
    stats = emu.stats()
    emu.configure(throttling=False, time_scale=1.0, write_budget_left=1.0)
    assert all(not failed for dummy, failed in results), [result.get("msg") for result, failed in results if failed]
    assert stats["early_retries"] == 0
    runs = len(results)
    # At most the first burst of each run (one chunk of writes) is refused; the writes all went through.
    assert 0 < stats["throttled"] <= 50 * runs, stats["throttled"]
    assert migration.resume_run()["removed_total"] == 0
    figures(kind="throttling", scenario="spent write budget, refused requests charged", writes=stats["writes"], throttled=stats["throttled"])
    migration.check(figures, "Graph's throttling, spent write budget")


def test_5xx_on_reads(migration, figures):
    emu = migration.emu
    # 503 (with Retry-After) and 504 on reads are retried; a 500 is not (as Microsoft's SDK retry handler):
    # the task fails cleanly and the operator's re-run goes on.
    emu.add_fault(method="GET", status=503, retry_after=0, count=6)
    emu.add_fault(method="GET", status=504, skip=9, count=1)
    emu.add_fault(method="GET", status=500, skip=25, count=1)
    steps = migration.prepare()
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=503, retry_after=0, skip=3, count=6)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=504, skip=40, count=1)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=500, skip=150, count=1)
    migration.remove()
    failed_steps = [name for name, (dummy, failed) in steps.items() if failed]
    removal_failures = [result for result, failed in migration.results if failed]
    assert len(failed_steps) + len(removal_failures) == 2  # the two 500s, each failing one task
    for result in removal_failures:
        assert_clean_failure(result)
        assert "500" in result["msg"]
    migration.check(figures, "500/503/504 on reads")


def test_5xx_on_writes_not_applied(migration, figures):
    emu = migration.emu
    emu.add_fault(method="POST", route=r"/groups/[^/]+/assignLicense$", status=503, retry_after=0, count=1)
    migration.prepare()
    for status, skip in ((500, 5), (503, 30), (504, 90)):
        emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=status, skip=skip, count=3)
    migration.remove()
    not_applied = [failure for result, dummy in migration.results for failure in result["failures"] if "not applied" in failure["reason"]]
    assert sorted(failure["status"] for failure in not_applied) == [500] * 3 + [503] * 3 + [504] * 3  # never re-sent blindly
    resume = migration.resume_run()
    assert resume["removed_total"] == 9  # the operator's re-run removes them
    migration.check(figures, "500/503/504 on writes (not applied)", restore=True)


def test_write_applied_but_answered_504(migration, figures):
    emu = migration.emu
    migration.prepare()
    emu.reset_stats()
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=504, apply_then=True, skip=4, count=6)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=504, apply_then=True, skip=120, count=4)
    migration.remove()
    reconciled = [entry for result, dummy in migration.results for entry in result.get("reconciled", [])]
    assert [entry["outcome"] for entry in reconciled] == ["applied"] * 10
    writes = [entry["path"] for entry in emu.request_log() if entry["method"] == "POST" and entry["path"].endswith("/assignLicense")]
    assert len(writes) == len(set(writes)) == len(migration.holders_before)  # an applied write is never re-sent
    migration.check(figures, "write applied, answered 504", restore=True)


def test_dropped_connections(migration, figures):
    emu = migration.emu
    for skip in (3, 12):  # spread out: each drop of a read costs a backoff
        emu.add_fault(method="GET", in_batch=False, drop=True, skip=skip, count=1)
    migration.prepare()
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, drop=True, apply_then=True, skip=12, count=1)
    emu.add_fault(method="POST", route=r"/\$batch$", in_batch=False, drop=True, skip=9, count=1)
    emu.add_fault(method="POST", route=r"/\$batch$", in_batch=False, drop=True, apply_then=True, skip=31, count=1)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", drop=True, skip=100, count=1)
    migration.remove()
    migration.check(figures, "dropped connections", restore=True)


def test_latency_spikes_beyond_the_client_timeout(migration, figures):
    emu = migration.emu
    slow = dict(timeout=1)
    migration.prepare()
    emu.add_fault(method="GET", route=r"/users/[^/]+$", delay_ms=1300, skip=15, count=1)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, delay_ms=1300, skip=60, count=1)
    migration.remove(connection_overrides=slow)
    unknown = [failure for result, dummy in migration.results for failure in result["failures"] if failure["status"] is None]
    reconciled = [entry for result, dummy in migration.results for entry in result.get("reconciled", [])]
    # The $batch holding the slow write timed out: its removals were settled by the re-read, never re-sent (those
    # Graph had not reached yet look not applied, and land later: only the journal restore below shows they are covered).
    assert len(unknown) + len(reconciled) >= 10
    removals = [entry["path"] for entry in emu.request_log() if entry["method"] == "POST" and entry["path"].endswith("/assignLicense")]
    assert len(removals) == len(set(removals))
    migration.check(figures, "latency spikes beyond the client timeout", restore=True)


def test_token_expiring_mid_run(migration, figures):
    emu = migration.emu
    migration.prepare()
    emu.reset_stats()
    emu.configure(token_lifetime=2, latency_ms=8)
    migration.remove()
    assert all(not failed for dummy, failed in migration.results)
    token_requests = [entry for entry in emu.request_log() if entry["path"].endswith("/oauth2/v2.0/token")]
    assert len(token_requests) > len(migration.results)  # at least one token was renewed within a run
    emu.configure(token_lifetime=3599, latency_ms=0)
    migration.check(figures, "token expiring mid-run")


def test_sigkill_at_22_points_then_rerun(migration, figures):
    emu = migration.emu
    migration.prepare()
    rng = random.Random(20260915)
    kills = 0
    for cycle in range(KILL_CYCLES):
        if cycle in WRITE_KILL_CYCLES:
            # These kills land on one of the run's removals (the k-th assignLicense it sends), so the killed runs get
            # into the write phase whatever chunk sizes the removal engine picks (chunks grow to 50 rows while clean,
            # and the rest of a held $batch still lands: each such kill moves the migration on by up to 50 users).
            call_index, route = rng.randrange(0, 8), r"/assignLicense$"
        else:
            done_chunks = (len(migration.holders_before) - len(holders_of_direct_e3(emu))) // 10
            # A resumed run reads the catalog (4 calls) and re-reads the chunks already done (20 calls each: user
            # and memberOf) before new work: a chunk is 20 reads, 10 removals and 20 re-reads.
            call_index, route = (0 if cycle == 0 else 4 + 20 * done_chunks + rng.randrange(0, 90)), None
        outcome, dummy, stderr = kill_at_call(
            emu,
            migration.folder,
            call_index,
            applied=cycle % 2 == 0,
            route=route,
            plan_path=migration.plan_path,
            journal_path=migration.journal_path,
            max_failures=1000,
        )
        assert b"Traceback" not in stderr, stderr.decode("utf-8", "replace")[-2000:]
        kills += outcome == "killed"
    assert kills >= 20
    # The kill points were spread over the removals, not only over the reads: the killed runs got far.
    assert len(migration.holders_before) - len(holders_of_direct_e3(emu)) >= 60
    # the journal of the killed runs restores exactly what was removed
    migration.check(figures, "SIGKILL at %d points, then re-run" % kills, restore=True)


def test_user_removed_from_group_between_plan_and_write(migration, figures):
    emu = migration.emu
    migration.prepare()
    group_id = emu.directory.find_group(GROUP_NAME)["id"] if hasattr(emu.directory, "find_group") else None
    group_id = group_id or next(group["id"] for group in emu.export_state()["groups"] if group["displayName"] == GROUP_NAME)
    victims = [migration.plan_rows[index]["user_id"] for index in (3, 77, 150)]
    # the group re-processes the leavers at once, so its other members stay covered (with ENTRAOPS_STRICT_EMULATOR's
    # processing delay the whole group is "processing" for a while and its members are rightly skipped)
    emu.configure(processing_delay_s=0)
    emu.add_fault(route="", ops=[{"op": "remove_member", "group": group_id, "user": user_id} for user_id in victims])
    migration.remove()
    migration.check(figures, "user removed from the group between plan and write", expect_all_migrated=False, keep=victims)
    for user_id in victims:
        assert direct_state(emu)[user_id] == migration.direct_before[user_id]


def test_group_license_removed_mid_run(migration, figures):
    emu = migration.emu
    migration.prepare()
    group_id = next(group["id"] for group in emu.export_state()["groups"] if group["displayName"] == GROUP_NAME)
    first_kept = migration.user_in_chunk(8)
    emu.add_fault(method="GET", route="/users/%s$" % first_kept, op={"op": "assign_group_license", "group": group_id, "add": [], "remove": [E3]})
    migration.remove()
    migrated_before, kept = [row["user_id"] for row in migration.plan_rows[:80]], [row["user_id"] for row in migration.plan_rows[80:]]
    # The 80 users migrated before someone took the license off the group lose it, and users whose direct copy disables
    # plans lose those the group enabled: the injected change did that. The collection removes nothing after it.
    partial_direct = [user_id for user_id in kept if migration.direct_before[user_id][0][1]]
    migration.check(
        figures, "group license removed mid-run", expect_all_migrated=False, keep=kept, expect_injected_losses=len(migrated_before) + len(partial_direct)
    )
    ours, injected = split_ledger(emu)
    assert sorted(entry["user_id"] for entry in injected) == sorted(migrated_before + partial_direct)


def test_free_units_fall_to_zero_mid_run(migration, figures):
    emu = migration.emu
    migration.prepare()
    group_id = next(group["id"] for group in emu.export_state()["groups"] if group["displayName"] == GROUP_NAME)
    new_hires = new_hire_ids(migration.tenant)
    consumed = (
        next(sku["consumedUnits"] for sku in emu.directory.subscribed_skus() if sku["skuId"] == E3)
        if hasattr(emu.directory, "subscribed_skus")
        else len(migration.holders_before)
    )
    ops = [{"op": "set_sku_units", "sku": E3, "enabled": consumed}]
    ops += [{"op": "add_member", "group": group_id, "user": user_id} for user_id in new_hires]
    ops.append({"op": "process_all"})
    emu.add_fault(method="GET", route="/users/%s$" % migration.user_in_chunk(6), ops=ops)
    migration.remove()
    violations = [
        user_id
        for user_id in new_hires
        if any(
            entry.get("error") == "CountViolation" for entry in emu.directory.get_user(user_id, select=("licenseAssignmentStates",))["licenseAssignmentStates"]
        )
    ]
    assert violations == new_hires  # the new members found no free unit
    migration.check(figures, "free units fall to zero mid-run (CountViolation)")


def test_legacy_automation_re_adds_direct_licenses(migration, figures):
    emu = migration.emu
    migration.prepare()
    readded = [row["user_id"] for row in migration.plan_rows[:5]]
    ops = [{"op": "assign_user_license", "user": user_id, "add": [{"skuId": E3, "disabledPlans": []}], "remove": []} for user_id in readded]
    emu.add_fault(method="GET", route="/users/%s$" % migration.user_in_chunk(12), ops=ops)
    migration.remove()
    assert all(E3 in [sku for sku, dummy in direct_state(emu)[user_id]] for user_id in readded)
    resume = migration.resume_run()
    assert resume["removed_total"] == len(readded)  # the re-run takes the re-added copies away again
    migration.check(figures, "legacy automation re-adds direct licenses")


def test_rollback_under_kills_504_and_drops(migration, figures):
    """The way back must survive the same faults: restore from the journal, killed and faulted, then run again."""
    emu = migration.emu
    migration.prepare()
    migration.remove()
    migration.resume_run()
    assert holders_of_direct_e3(emu) == []
    restore_options = dict(state="present", restore_from=migration.journal_path)
    rng = random.Random(20261127)
    kills = 0
    for cycle in range(6):
        call_index = rng.randrange(2, 45)  # a resumed restore skips what the journal shows put back: each run starts on new rows
        outcome, dummy, stderr = kill_at_call(emu, migration.folder, call_index, applied=cycle % 2 == 0, **restore_options)
        assert b"Traceback" not in stderr, stderr.decode("utf-8", "replace")[-2000:]
        kills += outcome == "killed"
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=504, apply_then=True, count=3)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, drop=True, apply_then=True, skip=5, count=1)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=500, skip=20, count=2)
    result, failed = run(emu, direct_license, max_failures=1000, **restore_options)
    unfired = [fault for fault in emu.list_faults() if fault["fired"] < fault["count"]]
    emu.clear_faults()
    assert unfired == [], "faults that did not fire (%d restores were left for this run): %s" % (len(holders_of_direct_e3(emu)), unfired)
    assert "Traceback" not in str(result)
    final, failed = run(emu, direct_license, **restore_options)
    assert not failed, final.get("msg")
    ours, injected = split_ledger(emu)
    pending = unresolved_intents(migration.journal_path)
    still_removed = [user_id for user_id, licenses in migration.direct_before.items() if direct_state(emu)[user_id] != licenses]
    restored = len(migration.holders_before) - len(still_removed)
    # (for this row "migrated" counts direct assignments still missing after the rollback: 0 expected)
    figures(
        kind="scenario",
        scenario="rollback of %d: SIGKILL at %d points, 504, drops, re-run" % (restored, kills),
        migrated=len(still_removed),
        skipped={},
        losses=len(ours),
        injected_losses=len(injected),
        pending=len(pending),
    )
    assert kills >= 4
    assert ours == [] and pending == []
    assert still_removed == []  # every direct assignment is back, with its disabled plans
    again, failed = run(emu, direct_license, **restore_options)
    assert not failed and again["changed"] is False and again["restored_total"] == 0


def test_static_token_expiring_mid_run_stops_cleanly(migration, figures):
    """A token acquired elsewhere cannot be refreshed: the run stops cleanly, the journal stays complete, a re-run finishes."""
    emu = migration.emu
    migration.prepare()
    from graph_emulator.identity import DEFAULT_APP_PERMISSIONS  # pylint: disable=import-outside-toplevel

    token = emu.issue_token(permissions=list(DEFAULT_APP_PERMISSIONS), expires_in=3)
    # The second chunk's first removal is held until the token has expired: whatever the machine's speed, the run
    # starts with a valid token and meets an expired one half way.
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, skip=10, count=1, delay_ms=3500)
    static = dict(access_token=token, client_secret=None, client_id=None, tenant_id=None)
    result, failed = run(emu, direct_license, static, plan_path=migration.plan_path, journal_path=migration.journal_path, max_failures=1000)
    assert failed and "Traceback" not in str(result) and "exception" not in result
    assert "401" in result["msg"] or "expired" in result["msg"]
    assert token not in str(result)
    assert 0 < len(holders_of_direct_e3(emu)) < len(migration.holders_before)  # it stopped half way
    assert unresolved_intents(migration.journal_path) == []  # even the interrupted run left every intent with a result
    migration.check(figures, "access token (not refreshable) expiring mid-run", restore=True)


def test_two_runs_on_one_journal_at_once(migration, figures):
    """A second run on the same journal while the first is writing refuses at once; nobody is removed twice."""
    emu = migration.emu
    migration.prepare()
    emu.configure(latency_ms=10)
    options = dict(plan_path=migration.plan_path, journal_path=migration.journal_path, max_failures=1000)
    first = start_module(emu, migration.folder, **options)
    deadline = time.monotonic() + 60
    while not os.path.exists(migration.journal_path) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    second = start_module(emu, migration.folder, **options)
    second_out, dummy = second.communicate(timeout=120)
    first.communicate(timeout=300)
    emu.configure(latency_ms=0)
    second_result = json.loads(second_out.decode("utf-8"))
    assert second_result.get("failed") and "locked" in second_result["msg"], second_result.get("msg")
    assert first.returncode == 0
    removals = [entry["path"] for entry in emu.request_log() if entry["method"] == "POST" and entry["path"].startswith("/v1.0/users/")]
    assert len(removals) == len(set(removals)) == len(migration.holders_before)
    migration.check(figures, "two runs on one journal at once")


def test_group_side_killed_then_rerun_makes_one_group(migration, figures):
    """licensing_group and group_license SIGKILLed mid-run (the group create applied but unanswered, members half added):
    the re-runs make exactly one group with every member and the license, and the migration then goes through."""
    emu = migration.emu
    module_dir = os.path.dirname(DIRECT_LICENSE_PATH)
    group_options = dict(name=GROUP_NAME, members_from_direct_sku="ENTERPRISEPACK")
    license_options = dict(group=GROUP_NAME, licenses=[dict(sku="ENTERPRISEPACK", disabled_plans=[])])
    # Kill points from a fault-free run: while the group create is in flight, and half way through adding members.
    dry_calls = []
    for module, options in ((licensing_group, group_options), (group_license, license_options)):
        emu.reset_stats()
        result, failed = run(emu, module, **options)
        assert not failed, result.get("msg")
        dry_calls.append([(entry["method"], entry["path"]) for entry in graph_calls(emu)])
    reset(emu, migration.tenant)
    create = dry_calls[0].index(("POST", "/v1.0/groups"))
    member_writes = [index for index, (method, dummy) in enumerate(dry_calls[0]) if method in ("PATCH", "POST") and index > create]
    license_write = next(index for index, (method, dummy) in enumerate(dry_calls[1]) if method == "POST")
    outcomes = []
    for module, options, call_index in (
        ("licensing_group", group_options, create),
        ("licensing_group", group_options, create - 1),
        ("licensing_group", group_options, member_writes[len(member_writes) // 2] - create),
        ("group_license", license_options, license_write),
    ):
        outcome, dummy, stderr = kill_at_call(emu, migration.folder, call_index, module_path=os.path.join(module_dir, module + ".py"), **options)
        assert b"Traceback" not in stderr, stderr.decode("utf-8", "replace")[-2000:]
        outcomes.append((module, call_index, outcome))
    kills = sum(1 for dummy, dummy_index, outcome in outcomes if outcome == "killed")
    migration.prepare()  # the chain from the top: the re-runs
    groups = [group for group in emu.export_state()["groups"] if group["displayName"] == GROUP_NAME]
    assert len(groups) == 1 and sorted(groups[0]["members"]) == migration.holders_before
    migration.remove()
    migration.check(figures, "group side SIGKILLed at %d points, then re-run" % kills, restore=True)
    assert kills == 4, outcomes
