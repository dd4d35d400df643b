# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The role beside the legacy licensing script (issue 16), through ansible-playbook against the emulator.

The emulator's legacy automation (graph_emulator/legacy.py) re-licenses directly the users of its rule that
lack a direct copy, as its own app. After the canary, it puts back four of the canary's removals and licenses
a joiner the plan never had. The next run of the remove phase stops before its first batch: every removal the
script undid is reported with the script as writer (from the audit log), the joiner is reported and not
removed, and nobody lost anything. With the threshold raised to what came back, the sequence goes on and
finishes, removing again (journaled, under the safety rule) the copies that came back in the batches approved again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re

import pytest

from graph_emulator.legacy import LEGACY_APP_ID

from ansible_collections.entraops.licensing.tests.reliability.campaign import build_tenant, reset, split_ledger
from ansible_collections.entraops.licensing.tests.reliability.test_role import RoleRun

pytestmark = pytest.mark.role
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
WRITER = "Legacy licensing script (app %s)" % LEGACY_APP_ID


def journal_removals(path):
    """{user_id: batch} of the removals the journal records as done."""
    intents, removed = {}, {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            entry = json.loads(line)
            if entry["type"] == "intent":
                intents[entry["op_id"]] = entry
            elif entry["type"] == "result" and entry["op"] == "remove_direct" and entry["outcome"] == "ok":
                removed[entry["user_id"]] = intents[entry["op_id"]]["batch"]
    return removed


def remove_records(out_dir):
    records = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*-phase-remove-*.json"))):
        with open(path, encoding="utf-8") as stream:
            records.extend(json.load(stream))
    return records


def legacy_script_licenses(emu, user_ids):
    """Point the legacy script's rule (department "Joiners via script") at ``user_ids`` and a joiner created now; return the joiner."""
    for user_id in user_ids:
        emu.directory.update_user(user_id, {"department": "Joiners via script"}, None)
    joiner = emu.directory.create_user(
        {
            "displayName": "Joiner",
            "userPrincipalName": "joiner@contoso.onmicrosoft.com",
            "usageLocation": "US",
            "department": "Joiners via script",
            "accountEnabled": True,
        },
        None,
    )
    emu.legacy.configure(rule={"property": "department", "equals": "Joiners via script"})
    return joiner


def test_readds_by_the_legacy_script_stop_the_sequence_and_are_reported(campaign_emulator, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(120, seed=23))
    role = RoleRun(emu, tmp_path)
    status, stdout, stderr = role.run("migrate", "-e", '{"migrate_direct_to_group_remove_batches": [0]}')
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    canary = journal_removals(role.journal_path())
    assert len(canary) == 10 and set(canary.values()) == {0}

    # the script licenses department Sales: four canary users and a joiner created after the plan
    undone = sorted(canary)[:4]
    joiner = legacy_script_licenses(emu, undone)
    assert sorted(emu.legacy.run_once()["relicensed"]) == sorted(undone + [joiner["id"]])

    status, stdout, stderr = role.run("migrate", "-e", '{"migrate_direct_to_group_remove_batches": [1, 2]}')
    assert status != 0
    assert "4 direct assignment(s) this migration removed are direct again before the first batch of this run (threshold 0)" in stdout
    assert WRITER + ": 4" in stdout
    assert set(journal_removals(role.journal_path())) == set(canary)  # no batch ran
    stopped = remove_records(role.out_dir)[-1]
    assert stopped["status"] == "stopped" and stopped["readded_total"] == 4
    emails = {u["id"]: u["userPrincipalName"] for u in emu.export_state()["users"]}
    assert sorted(row["user_principal_name"] for row in stopped["readded"]) == sorted(emails[u] for u in undone)
    assert {row["writer_label"] for row in stopped["readded"]} == {WRITER}
    assert stopped["joiners_not_in_plan"] == ["joiner@contoso.onmicrosoft.com"]
    with open(glob.glob(os.path.join(role.out_dir, "*-report.html"))[0], encoding="utf-8") as stream:
        page = stream.read()
    assert 'id="readded"' in page and WRITER in page and "joiner@contoso.onmicrosoft.com" in page

    # the script switched to group membership: with the threshold at what came back, the sequence goes on and finishes
    status, stdout, stderr = role.run("migrate", "-e", '{"migrate_direct_to_group_remove_batches": "all", "migrate_direct_to_group_readd_threshold": 4}')
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    done = journal_removals(role.journal_path())
    assert len(done) > len(canary)
    # the joiner was never removed (in no plan); batch 0 approved again removed the copies that came back (journaled)
    holders = {u["id"] for u in emu.export_state()["users"] if any(lic["skuId"] == E3 for lic in u.get("directLicenses") or [])}
    assert joiner["id"] in holders and not set(undone) & holders
    ours, dummy = split_ledger(emu)
    assert ours == [] and emu.loss_ledger() == []
    figures(kind="scenario", scenario="role: legacy re-adds 4, stop, go on at threshold 4", migrated=len(done), skipped={}, losses=len(ours))


def drift(role, *extra):
    status, stdout, stderr = role.run("drift", *extra)
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    with open(os.path.join(role.out_dir, "contoso-drift.json"), encoding="utf-8") as stream:
        return json.load(stream), stdout


def test_drift_lists_what_the_legacy_script_did_and_removes_only_what_the_rule_allows(campaign_emulator, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(120, seed=31))
    role = RoleRun(emu, tmp_path)
    status, stdout, stderr = role.run("migrate")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    migrated = sorted(journal_removals(role.journal_path()))
    group_id = next(g["id"] for g in emu.export_state()["groups"] if g["displayName"] == "LIC E3 role campaign")

    # after the migration the script goes on: it re-licenses three migrated users and licenses a joiner directly
    readded = migrated[:3]
    joiner = legacy_script_licenses(emu, readded)
    emu.legacy.run_once()
    # one of them leaves the licensing group: it keeps the script's direct copy
    emu.directory.remove_member(group_id, readded[0], None)
    emu.process_all()
    emails = {u["id"]: u["userPrincipalName"] for u in emu.export_state()["users"]}

    found, stdout = drift(role)
    assert sorted(row["user_principal_name"] for row in found["readded"]) == sorted(emails[u] for u in readded)
    assert found["readded_writers"] == {WRITER: 3}
    assert [row["user_principal_name"] for row in found["direct_only_no_group"]] == ["joiner@contoso.onmicrosoft.com"]
    assert [row["user_principal_name"] for row in found["lost_group_kept_direct"]] == [emails[readded[0]]]
    assert found["groups_in_error"] == [] and found["removed"] == 0
    with open(os.path.join(role.out_dir, "contoso-drift.html"), encoding="utf-8") as stream:
        page = stream.read()
    assert WRITER in page and "joiner@contoso.onmicrosoft.com" in page

    # opt-in: the reappeared copies the rule allows go (journaled); the one without a group copy stays, so does the joiner
    found, stdout = drift(role, "-e", "drift_remove_readded=true")
    assert found["removed"] == 2
    found, stdout = drift(role)
    assert [row["user_id"] for row in found["readded"]] == [readded[0]]
    holders = {u["id"] for u in emu.export_state()["users"] if any(lic["skuId"] == E3 for lic in u.get("directLicenses") or [])}
    assert readded[0] in holders and joiner["id"] in holders and not set(readded[1:]) & holders
    ours, dummy = split_ledger(emu)
    assert ours == [] and emu.loss_ledger() == []
    figures(kind="scenario", scenario="drift: 3 re-adds, 1 joiner, 1 left group; 2 removed", migrated=len(migrated), skipped={}, losses=len(ours))


def test_wait_phase_without_audit_permissions_says_so_and_goes_on(campaign_emulator, tmp_path, monkeypatch):
    from ansible_collections.entraops.licensing.tests.reliability import test_role  # pylint: disable=import-outside-toplevel

    emu = campaign_emulator
    reset(emu, build_tenant(60, seed=37))
    granted = [p for p in test_role.permissions() if p not in ("AuditLog.Read.All", "Directory.Read.All")]
    monkeypatch.setattr(test_role, "permissions", lambda: granted)
    role = RoleRun(emu, tmp_path, secret="no-audit~secret-value-1234567890")
    status, stdout, stderr = role.run("migrate", "-e", '{"migrate_direct_to_group_phases": ["preflight", "group", "assign", "wait", "verify", "report"]}')
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    with open(os.path.join(role.out_dir, "contoso-phase-audit.json"), encoding="utf-8") as stream:
        audit = json.load(stream)
    assert audit["status"] == "not readable" and "AuditLog.Read.All" in audit["detail"] and audit["finish"] == []
    with open(glob.glob(os.path.join(role.out_dir, "*-report.html"))[0], encoding="utf-8") as stream:
        assert "not readable: the audit log cannot be read" in stream.read()
    assert emu.loss_ledger() == []


def script_quicker_than_the_check(emu, role, stdout, figures):
    """The other safe end of the schedule scenario: a pass of the script (every 0.5 s, more often late on a loaded machine)
    re-licensed a user between a removal and the check that follows it. The removal cannot be verified, the row fails, the
    run stops there (max_failures 0), and the user keeps the direct copy the script put back."""
    assert "Graph accepted the removal but it was not visible in reads" in stdout, stdout[-3000:]
    stopped = remove_records(role.out_dir)[-1]
    assert stopped["status"] == "stopped" and stopped["failures"], stopped
    removals = journal_removals(role.journal_path())
    assert set(removals.values()) <= set(range(stopped["batch"] + 1))  # nothing after the stopped batch was removed
    direct = dict((u["id"], [lic["skuId"] for lic in u.get("directLicenses") or []]) for u in emu.export_state()["users"])
    assert all(E3 in direct[failure["user_id"]] for failure in stopped["failures"])
    ours, dummy = split_ledger(emu)
    assert ours == [] and emu.loss_ledger() == []
    figures(
        kind="scenario", scenario="role: legacy schedule on, stops at batch %d (unverified)" % stopped["batch"], migrated=len(removals), skipped={}, losses=0
    )


def test_rehearsal_with_the_legacy_schedule_on_stops_at_the_first_reading_that_shows_readds(campaign_emulator, tmp_path, figures):
    """The script runs on its schedule the whole time (every 0.5 s) and undoes removals as they land: the run stops after the
    first batch whose reading shows them (the reading follows the batch at once, so that is the canary or the batch after it)."""
    emu = campaign_emulator
    reset(emu, build_tenant(120, seed=41))
    emu.legacy.configure(enabled=True, interval_s=0.5, rule={"property": "accountEnabled", "equals": True})
    try:
        role = RoleRun(emu, tmp_path)
        status, stdout, stderr = role.run("migrate")
    finally:
        emu.legacy.configure(enabled=False)
    assert status != 0
    found = re.search(r"(\d+) direct assignment\(s\) this migration removed are direct again after batch (\d+) \(threshold 0\)", stdout)
    if found is None:
        script_quicker_than_the_check(emu, role, stdout, figures)
        return
    count, batch = int(found.group(1)), int(found.group(2))
    removals = journal_removals(role.journal_path())
    assert set(removals.values()) == set(range(batch + 1))  # nothing after the stopped batch was removed
    assert WRITER + ": %d" % count in stdout, stdout[-2500:]
    stopped = [record for record in remove_records(role.out_dir) if record.get("readded_total")][-1]
    assert stopped["batch"] == batch and stopped["readded_total"] == count > 0
    emails = {u["id"]: u["userPrincipalName"] for u in emu.export_state()["users"]}
    relicensed = {a["user_id"] for a in emu.legacy.action_log() if a["kind"] == "relicensed" and "error" not in a}
    # every re-add reported is a removal of this run the script undid, named with its writer
    reported = sorted(row["user_principal_name"] for row in stopped["readded"])
    assert reported and set(reported) <= set(emails[u] for u in set(removals) & relicensed)
    assert {row["writer_label"] for row in stopped["readded"]} == {WRITER}
    ours, dummy = split_ledger(emu)
    assert ours == [] and emu.loss_ledger() == []
    figures(kind="scenario", scenario="role: legacy schedule on, stops at batch %d" % batch, migrated=len(removals), skipped={}, losses=len(ours))
