# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared pieces of the reliability campaign: the tenant, the migration chain, module runs, the checks.

The chain is what the role runs, module by module: licensing_group -> group_license ->
license_processing_wait -> license_assignment_info (plan) -> direct_license (canary, then batches).
Modules run in-process (fast) unless a scenario has to SIGKILL them, then as a subprocess.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import copy
import json
import os
import signal
import subprocess
import sys
import time

from ansible_collections.entraops.licensing.plugins.module_utils.journal import journal_state, read_journal
from ansible_collections.entraops.licensing.plugins.modules import (
    direct_license,
    group_license,
    license_assignment_info,
    license_processing_wait,
    licensing_group,
)
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import run_module

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
E3_PART = "ENTERPRISEPACK"
GROUP_NAME = "LIC E3 migration"
DIRECT_LICENSE_PATH = os.path.join(os.path.dirname(direct_license.__file__), "direct_license.py")
ASSIGN_LICENSE_ROUTE = r"/users/[^/]+/assignLicense$"
USER_READ_ROUTE = r"/users/[^/$]+$"


NEW_HIRES = 10


def build_tenant(users, seed=29):
    """``users`` users holding E3 directly (10 % with some plans disabled) and NEW_HIRES users holding nothing.

    The new hires are in no group; the units scenario adds them to the licensing group when free
    units have fallen to zero, which gives them CountViolations as Entra would.
    """
    from graph_emulator import generate_tenant  # pylint: disable=import-outside-toplevel

    tenant = generate_tenant(users=users + NEW_HIRES, seed=seed, disabled_plan_ratio=0.1, no_usage_location=0, nested_users=0)
    for user in tenant["users"][users:]:
        user["directLicenses"] = []
    for sku in tenant["subscribedSkus"]:
        if sku["skuId"] == E3:
            sku["prepaidUnits"]["enabled"] = users + 2 * NEW_HIRES
    return tenant


def new_hire_ids(tenant):
    return [user["id"] for user in tenant["users"] if not user.get("directLicenses")]


def connection(emu, **overrides):
    """Module connection options for the emulator's default app; an override of None leaves that option out.

    ``write_rate`` 0 (no pacing): the campaign's emulator enforces no budget unless a scenario turns
    throttling on, and such a scenario gives the rate it tests.
    """
    options = dict(
        tenant_id=emu.tenant_id,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        graph_url=emu.base_url,
        authority_url=emu.authority_url,
        ca_bundle=emu.ca_path,
        max_retry_time=60,
        write_rate=0,
    )
    options.update(overrides)
    return dict((name, value) for name, value in options.items() if value is not None)


def run(emu, module, connection_overrides=None, **options):
    """(result, failed) of one in-process module run against the emulator."""
    return run_module(module.main, dict(connection(emu, **(connection_overrides or {})), **options))


def reset(emu, state):
    """Load ``state`` and start from a clean emulator: no faults, default knobs, empty ledger and request log."""
    emu.clear_faults()
    emu.configure(
        throttling=False,
        latency_ms=0,
        processing_rate=1000.0,
        token_lifetime=3599,
        time_scale=1.0,
        budget_scale=1.0,
        charge_refused=True,
        write_budget_left=1.0,
    )
    emu.load_state(copy.deepcopy(state))
    emu.clear_ledger()
    emu.reset_stats()


def group_phase(emu, connection_overrides=None):
    """Groups, group licenses and the wait, as the role's group/assign/wait phases.

    A step that fails is run once more, as an operator re-runs the play; the first failure must be
    a clean one (a message, no traceback). Returns {module name: (result, failed first time)}.
    """
    results = {}
    steps = [
        ("licensing_group", licensing_group, dict(name=GROUP_NAME, members_from_direct_sku=E3_PART)),
        ("group_license", group_license, dict(group=GROUP_NAME, licenses=[dict(sku=E3_PART, disabled_plans=[])])),
        ("license_processing_wait", license_processing_wait, dict(groups=[GROUP_NAME], poll_interval=0.2, wait_timeout=60)),
    ]
    for name, module, options in steps:
        result, failed = run(emu, module, connection_overrides, **options)
        if failed:
            assert_clean_failure(result)
            result, failed_again = run(emu, module, connection_overrides, **options)
            assert not failed_again, "%s failed twice: %s" % (name, result.get("msg"))
        results[name] = (result, failed)
    return results


def assert_clean_failure(result):
    """A failed module run names the problem and carries no traceback."""
    assert result.get("msg"), result
    assert "Traceback" not in str(result), result
    assert "exception" not in result, result.get("exception")


def plan_phase(emu, folder, canary_size=10, batch_size=50, connection_overrides=None):
    """license_assignment_info writing the report and the plan; returns (plan_path, result)."""
    plan_path = os.path.join(str(folder), "plan.json")
    result, failed = run(
        emu,
        license_assignment_info,
        connection_overrides,
        skus=[E3_PART],
        trusted_groups=[GROUP_NAME],
        plan_path=plan_path,
        report_path=os.path.join(str(folder), "report.csv"),
        canary_size=canary_size,
        batch_size=batch_size,
    )
    if failed:  # the operator re-runs a task that failed cleanly
        assert_clean_failure(result)
        result, failed_again = run(
            emu,
            license_assignment_info,
            connection_overrides,
            skus=[E3_PART],
            trusted_groups=[GROUP_NAME],
            plan_path=plan_path,
            report_path=os.path.join(str(folder), "report.csv"),
            canary_size=canary_size,
            batch_size=batch_size,
        )
        assert not failed_again, "license_assignment_info failed twice: %s" % result.get("msg")
        result["first_failed"] = True
    return plan_path, result


def removal_phase(emu, plan_path, journal_path, batch_count, connection_overrides=None, max_failures=1000):
    """direct_license: the canary, then every other batch in one run, as the role does. Returns the results."""
    results = []
    for batches in ([0], list(range(1, batch_count))):
        if not batches:
            continue
        result, failed = run(
            emu, direct_license, connection_overrides, plan_path=plan_path, batches=batches, journal_path=journal_path, max_failures=max_failures
        )
        results.append((result, failed))
    return results


def rerun_removal(emu, plan_path, journal_path, connection_overrides=None):
    """The same command run again to resume (the whole plan); must succeed."""
    result, failed = run(emu, direct_license, connection_overrides, plan_path=plan_path, journal_path=journal_path, max_failures=1000)
    assert not failed, "the resuming run failed: %s" % result.get("msg")
    return result


# ---------------------------------------------------------------------------------------- checks


def direct_state(emu):
    """Every user's direct licenses with their disabled plans (from the exported tenant)."""
    return dict(
        (user["id"], sorted((entry["skuId"], tuple(sorted(entry.get("disabledPlans") or []))) for entry in user.get("directLicenses") or []))
        for user in emu.export_state()["users"]
    )


def holders_of_direct_e3(emu):
    return sorted(user_id for user_id, licenses in direct_state(emu).items() if any(sku == E3 for sku, dummy in licenses))


def split_ledger(emu):
    """(losses caused by the collection's requests, losses caused by the scenario's injected changes)."""
    emu.process_all()
    ours, injected = [], []
    for entry in emu.loss_ledger():
        request = entry.get("request") or {}
        if request.get("method") == "FAULT" or str(request.get("request_id") or "").startswith("fault-"):
            injected.append(entry)
        else:
            ours.append(entry)
    return ours, injected


def unresolved_intents(journal_path):
    """Journal intents that have no result (after a resume every one must have one)."""
    if not os.path.exists(journal_path):
        return []
    states = journal_state(read_journal(journal_path)["entries"])
    return [state for state in states.values() if state["pending"]]


def skip_reasons(results):
    """Merged skipped_by_verdict of direct_license results (inherited_only = already migrated: not a skip)."""
    counts = collections.Counter()
    for result in results:
        for verdict, count in (result.get("skipped_by_verdict") or {}).items():
            if verdict != "inherited_only":
                counts[verdict] += count
    return dict(counts)


def inherited_e3_healthy(emu, user_id):
    user = emu.directory.get_user(user_id, select=("id", "licenseAssignmentStates"))
    return any(
        entry["skuId"] == E3 and entry.get("assignedByGroup") and entry.get("state") == "Active" and entry.get("error") in (None, "None")
        for entry in user["licenseAssignmentStates"]
    )


# ------------------------------------------------------------------------------- killed processes


def graph_calls(emu):
    """Graph calls seen so far: the index space of the single-fault explorer.

    Token requests and $batch envelopes are left out: the emulator matches faults per Graph call
    (each batch item, each top-level request), and a fault's ``skip`` counts those.
    """
    return [entry for entry in emu.request_log() if entry["path"].startswith("/v1.0/") and entry["path"].lower() != "/v1.0/$batch"]


def wait_until_quiet(emu, quiet_seconds=0.3, limit_seconds=15):
    """Return once the emulator has received no call for ``quiet_seconds`` (a killed client's batch finishes)."""
    deadline = time.monotonic() + limit_seconds
    size, since = emu.stats()["total"], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.03)
        current = emu.stats()["total"]
        if current != size:
            size, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return
    raise AssertionError("the emulator kept receiving requests for %ss" % limit_seconds)


def start_module(emu, folder, module_path=DIRECT_LICENSE_PATH, **options):
    """Start a module as its own process (Ansible's way: python module.py args.json)."""
    args_path = os.path.join(str(folder), "args-%d.json" % int(time.monotonic() * 1e6))
    with open(args_path, "w", encoding="utf-8") as stream:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(connection(emu), **options)}, stream)
    os.chmod(args_path, 0o600)
    return subprocess.Popen([sys.executable, module_path, args_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_at_call(emu, folder, call_index, applied=True, hold_ms=250, limit_seconds=60, route=None, **options):
    """Run direct_license as a process and SIGKILL it while Graph call ``call_index`` (0-based, this run) is in flight.

    The call is held by a delay fault; ``applied`` decides whether Graph then runs it (the write happens
    though its caller is dead) or refuses it (503, never applied). Returns 'killed' or, when the run ended
    before reaching that call, 'finished'.
    """
    fault = dict(skip=call_index, count=1, delay_ms=hold_ms)
    if route:
        # count only the calls on this route (e.g. the removals), so the kill lands in that phase
        fault.update(method="POST", route=route)
    if not applied:
        fault["status"] = 503
    fired_before = emu.stats()["faults_fired"]
    emu.add_fault(**fault)
    process = start_module(emu, folder, **options)
    deadline = time.monotonic() + limit_seconds
    outcome = "finished"
    try:
        while time.monotonic() < deadline:
            if emu.stats()["faults_fired"] > fired_before:
                process.send_signal(signal.SIGKILL)
                outcome = "killed"
                break
            if process.poll() is not None:
                break
            time.sleep(0.002)
        else:
            process.send_signal(signal.SIGKILL)
            raise AssertionError("direct_license neither reached call %d nor ended within %ss" % (call_index, limit_seconds))
    finally:
        stdout, stderr = process.communicate()
    emu.clear_faults()
    # The held call is counted when it ends: wait longer than the hold, or the next run would race with it.
    wait_until_quiet(emu, quiet_seconds=hold_ms / 1000.0 + 0.25)
    if outcome == "finished":
        assert process.returncode is not None
    return outcome, stdout, stderr
