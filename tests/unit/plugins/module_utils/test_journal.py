# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import journal as journal_module
from ansible_collections.entraops.licensing.plugins.module_utils.journal import (
    Journal,
    journal_state,
    latest_outcomes,
    read_journal,
    restorable,
)
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import powershell_quote, rollback_script_path, write_rollback_script
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError

# Real GUIDs from the shared SKU fixture: Office 365 E3 and two of its plans; EMS E3.
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"
ADELE = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
OBRIEN = "6e7b768e-07e2-4810-8459-485f84f8f204"
ZOE = "2c5b7f0e-1f2a-4c49-9d8e-3a8f6b1c0d42"

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def lines_of(path):
    with open(path, "r", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def remove(journal, user_id=ADELE, sku_id=E3, disabled_plans=(YAMMER,), upn="adele@contoso.com", batch=1):
    return journal.intent("remove_direct", user_id, upn, sku_id, "ENTERPRISEPACK", list(disabled_plans), batch=batch)


def restore(journal, row):
    return journal.intent("restore_direct", row["user_id"], row["user_principal_name"], row["sku_id"], row["sku_part_number"], row["disabled_plans"])


def journal_killed_mid_second_intent(tmp_path):
    """A journal whose run was killed while writing its second intent (the last line cut short)."""
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        remove(journal)
        remove(journal, user_id=OBRIEN)
    with open(path, "rb+") as stream:
        stream.truncate(os.path.getsize(path) - 25)
    return path


def test_intent_and_result_lines_hold_the_documented_fields(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path, run_id="run-1") as journal:
        op_id = journal.intent("remove_direct", ADELE.upper(), "adele@contoso.com", E3, "ENTERPRISEPACK", [YAMMER.upper(), SWAY], batch=0)
        journal.result(op_id, "ok", request_id="req-1", status=200)
    run, intent, result = lines_of(path)
    assert run == {"type": "run", "format": "entraops.licensing/journal", "version": 1, "run_id": "run-1", "time": run["time"]}
    assert ISO_Z.match(run["time"])
    assert intent == {
        "type": "intent",
        "op_id": op_id,
        "run_id": "run-1",
        "time": intent["time"],
        "op": "remove_direct",
        "user_id": ADELE,
        "user_principal_name": "adele@contoso.com",
        "sku_id": E3,
        "sku_part_number": "ENTERPRISEPACK",
        "disabled_plans": [YAMMER, SWAY],
        "batch": 0,
    }
    assert ISO_Z.match(intent["time"])
    assert result == {
        "type": "result",
        "op_id": op_id,
        "run_id": "run-1",
        "time": result["time"],
        "op": "remove_direct",
        "user_id": ADELE,
        "sku_id": E3,
        "outcome": "ok",
        "request_id": "req-1",
        "status": 200,
        "error": None,
        "detail": None,
    }


def test_every_line_is_fsynced_before_the_call_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    path = str(tmp_path / "journal.jsonl")

    def counting_fsync(fd):
        synced.append(os.path.getsize(path))
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", counting_fsync)
    journal = Journal(path)
    op_id = remove(journal)
    size_after_intent = os.path.getsize(path)
    assert synced[-1] == size_after_intent
    journal.result(op_id, "ok")
    assert synced[-1] == os.path.getsize(path) > size_after_intent
    journal.close()


def test_missing_directory_and_directory_path_are_refused_with_the_path(tmp_path):
    missing = str(tmp_path / "nope" / "journal.jsonl")
    with pytest.raises(RecordsError, match=re.escape(str(tmp_path / "nope")) + ".*does not exist"):
        Journal(missing)
    assert not os.path.exists(str(tmp_path / "nope"))
    with pytest.raises(RecordsError, match="is a directory"):
        Journal(str(tmp_path))


def test_a_second_writer_is_refused_while_the_first_holds_the_journal(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path):
        with pytest.raises(RecordsError, match="in use by another run"):
            Journal(path)
    Journal(path).close()


def test_truncated_last_line_is_ignored_with_a_warning(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        first = remove(journal)
        journal.result(first, "ok", status=200)
        remove(journal, user_id=OBRIEN)
    # The process was killed while writing the last intent: cut it mid-line.
    with open(path, "rb+") as stream:
        stream.truncate(os.path.getsize(path) - 25)
    contents = read_journal(path)
    assert contents["truncated_last_line"] is True
    assert "cut short" in contents["warnings"][0]
    assert [entry["type"] for entry in contents["entries"]] == ["run", "intent", "result"]
    assert [row["user_id"] for row in restorable(contents["entries"])] == [ADELE]


def test_appending_after_a_kill_repairs_the_tail_and_keeps_the_journal_readable(tmp_path):
    path = journal_killed_mid_second_intent(tmp_path)
    with Journal(path, run_id="run-2") as journal:
        op_id = remove(journal, user_id=ZOE)
        journal.result(op_id, "ok")
    contents = read_journal(path)
    assert contents["truncated_last_line"] is False
    assert "line 3 was cut short" in contents["warnings"][0]
    types = [entry["type"] for entry in contents["entries"]]
    assert types == ["run", "intent", "repair", "run", "intent", "result"]
    assert [row["user_id"] for row in restorable(contents["entries"])] == [ADELE, ZOE]


def test_a_complete_last_line_without_newline_is_kept_and_the_next_append_starts_a_new_line(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        remove(journal)
    with open(path, "rb+") as stream:
        stream.truncate(os.path.getsize(path) - 1)
    assert len(read_journal(path)["entries"]) == 2
    with Journal(path) as journal:
        remove(journal, user_id=OBRIEN)
    contents = read_journal(path)
    assert contents["warnings"] == []
    assert [row["user_id"] for row in restorable(contents["entries"])] == [ADELE, OBRIEN]


def test_a_malformed_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        remove(journal)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write('{"type": "intent", "op_id": \n')
        stream.write('{"type": "run", "format": "entraops.licensing/journal", "version": 1, "run_id": "x", "time": "t"}\n')
    with pytest.raises(RecordsError, match=r"journal .*journal\.jsonl line 3 is not valid JSON"):
        read_journal(path)


def test_a_malformed_last_line_that_ends_with_newline_is_an_error(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write('{"type": "result", "op_id": "a", "op": "remove_direct", "user_id": "x", "sku_id": "y", "outcome": "ok"}\n')
    with pytest.raises(RecordsError, match="line 1 has user_id 'x', expected a GUID"):
        read_journal(path)


def test_read_journal_of_missing_file_names_it(tmp_path):
    with pytest.raises(RecordsError, match="does not exist"):
        read_journal(str(tmp_path / "missing.jsonl"))


def test_pending_intent_is_reported_and_counts_as_restorable(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        op_id = remove(journal)
        assert journal.pending_op_ids() == [op_id]
    state = journal_state(read_journal(path)["entries"])[(ADELE, E3)]
    assert state["pending"] is True
    assert state["outcome"] is None
    assert state["op"] == "remove_direct"
    assert state["removed_disabled_plans"] == [YAMMER]
    assert state["restorable"] is True
    assert restorable(read_journal(path)["entries"])[0]["removal_outcome"] == "pending"


def intents_without_result(path):
    lines = lines_of(path)
    answered = set(line["op_id"] for line in lines if line["type"] == "result")
    return [line["op_id"] for line in lines if line["type"] == "intent" and line["op_id"] not in answered]


@pytest.mark.parametrize("outcome, expected_restorable", [("ok", True), ("failed", False)])
def test_a_later_run_reconciles_a_pending_intent_of_a_killed_run(tmp_path, outcome, expected_restorable):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path, run_id="run-a") as journal:
        op_id = remove(journal, disabled_plans=[YAMMER])  # killed before the result line
    with Journal(path, run_id="run-b") as journal:
        with pytest.raises(RecordsError, match="no intent in this run"):
            journal.result(op_id, outcome)  # result() stays for this run's own writes
        journal.reconcile(op_id, outcome, detail="a fresh read decided it")
        with pytest.raises(RecordsError, match="already has a result"):
            journal.reconcile(op_id, "ok")
    assert intents_without_result(path) == []
    line = lines_of(path)[-1]
    assert (line["type"], line["op_id"], line["outcome"], line["reconciled"], line["run_id"], line["intent_run_id"]) == (
        "result",
        op_id,
        outcome,
        True,
        "run-b",
        "run-a",
    )
    assert (line["user_id"], line["sku_id"], line["op"]) == (ADELE, E3, "remove_direct")
    assert [entry["run_id"] for entry in lines_of(path) if entry["type"] == "run"] == ["run-a", "run-b"]
    state = journal_state(read_journal(path)["entries"])[(ADELE, E3)]
    assert (state["pending"], state["outcome"], state["reconciled"], state["restorable"]) == (False, outcome, True, expected_restorable)
    rows = restorable(read_journal(path)["entries"])
    assert [(row["user_id"], row["disabled_plans"], row["removal_outcome"]) for row in rows] == ([(ADELE, [YAMMER], "ok")] if expected_restorable else [])


def test_reconcile_refuses_an_op_id_the_journal_does_not_hold_or_already_answered(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        answered = remove(journal)
        journal.result(answered, "ok")
    with Journal(path) as journal:
        with pytest.raises(RecordsError, match="no intent in this journal"):
            journal.reconcile("0" * 32, "ok")
        with pytest.raises(RecordsError, match="already has a result"):
            journal.reconcile(answered, "failed")
        with pytest.raises(RecordsError, match="outcome must be one of"):
            journal.reconcile(remove(journal), "done")


@pytest.mark.parametrize(
    "outcome, expected_restorable",
    [
        ("ok", True),
        ("unknown", True),  # the write may have happened: reading the user at restore time decides
        ("failed", False),
        ("rolled_back", False),
        ("skipped", False),
    ],
)
def test_which_removal_outcomes_are_restorable(tmp_path, outcome, expected_restorable):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        journal.result(remove(journal, disabled_plans=[SWAY, YAMMER]), outcome)
    rows = restorable(read_journal(path)["entries"])
    if expected_restorable:
        assert rows == [
            {
                "user_id": ADELE,
                "user_principal_name": "adele@contoso.com",
                "sku_id": E3,
                "sku_part_number": "ENTERPRISEPACK",
                "disabled_plans": [SWAY, YAMMER],
                "removal_op_id": rows[0]["removal_op_id"],
                "removal_outcome": outcome,
            }
        ]
    else:
        assert rows == []


def test_restore_from_journal_is_idempotent(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        for user_id in (ADELE, OBRIEN, ZOE):
            journal.result(remove(journal, user_id=user_id), "ok")
    first_pass = restorable(read_journal(path)["entries"])
    assert [row["user_id"] for row in first_pass] == [ADELE, OBRIEN, ZOE]
    with Journal(path) as journal:
        journal.result(restore(journal, first_pass[0]), "ok")
        journal.result(restore(journal, first_pass[1]), "skipped", detail="direct assignment already in place")
        journal.result(restore(journal, first_pass[2]), "failed", status=400, error="Request_BadRequest")
    second_pass = restorable(read_journal(path)["entries"])
    assert [row["user_id"] for row in second_pass] == [ZOE]
    with Journal(path) as journal:
        journal.result(restore(journal, second_pass[0]), "ok")
    assert restorable(read_journal(path)["entries"]) == []
    state = journal_state(read_journal(path)["entries"])[(ZOE, E3)]
    assert (state["op"], state["outcome"], state["restorable"]) == ("restore_direct", "ok", False)


def test_unfinished_restore_stays_restorable(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        journal.result(remove(journal), "ok")
    row = restorable(read_journal(path)["entries"])[0]
    with Journal(path) as journal:
        restore(journal, row)
    assert [item["user_id"] for item in restorable(read_journal(path)["entries"])] == [ADELE]


def test_a_rerun_that_skips_an_already_removed_row_keeps_it_restorable(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        journal.result(remove(journal, disabled_plans=[YAMMER]), "ok")
    with Journal(path) as journal:
        journal.result(remove(journal, disabled_plans=[]), "skipped", detail="no direct assignment left")
    rows = restorable(read_journal(path)["entries"])
    assert [(row["user_id"], row["disabled_plans"], row["removal_outcome"]) for row in rows] == [(ADELE, [YAMMER], "ok")]


def test_removal_after_a_restore_is_restorable_again_with_its_own_plans(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        journal.result(remove(journal, disabled_plans=[YAMMER]), "ok")
        journal.result(restore(journal, restorable(read_journal(path)["entries"])[0]), "ok")
        journal.result(remove(journal, disabled_plans=[SWAY]), "ok")
    rows = restorable(read_journal(path)["entries"])
    assert [row["disabled_plans"] for row in rows] == [[SWAY]]


def test_journals_combined_oldest_first_see_restores_written_elsewhere(tmp_path):
    removals = str(tmp_path / "migrate.jsonl")
    restores = str(tmp_path / "rollback.jsonl")
    with Journal(removals) as journal:
        journal.result(remove(journal), "ok")
    with Journal(restores) as journal:
        journal.result(restore(journal, restorable(read_journal(removals)["entries"])[0]), "ok")
    combined = read_journal(removals)["entries"] + read_journal(restores)["entries"]
    assert restorable(combined) == []


def test_latest_outcomes_read_the_journal_as_journal_state_does_compactly(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path, run_id="run-1") as journal:
        rolled = remove(journal, batch=3)
        put_back = restore(
            journal,
            {"user_id": ADELE, "user_principal_name": "adele@contoso.com", "sku_id": E3, "sku_part_number": "ENTERPRISEPACK", "disabled_plans": [YAMMER]},
        )
        journal.result(put_back, "ok", status=200)
        journal.result(rolled, "rolled_back", status=200, detail="plans lost")
        journal.result(remove(journal, user_id=OBRIEN, upn="obrien@contoso.com", batch=4), "failed", status=400, error="E", detail="no")
        remove(journal, user_id=ZOE, upn="zoe@contoso.com", batch=5)
    entries = read_journal(path)["entries"]
    outcomes = latest_outcomes(entries)
    assert outcomes == {
        (ADELE, E3): ["remove_direct", "rolled_back", 3, "adele@contoso.com", "ENTERPRISEPACK", None, "plans lost", False],
        (OBRIEN, E3): ["remove_direct", "failed", 4, "obrien@contoso.com", "ENTERPRISEPACK", "E", "no", False],
        (ZOE, E3): ["remove_direct", None, 5, "zoe@contoso.com", "ENTERPRISEPACK", None, None, False],
    }
    states = journal_state(entries)
    for key in ((OBRIEN, E3), (ZOE, E3)):
        assert outcomes[key][:2] == [states[key]["op"], states[key]["outcome"]]


@pytest.mark.parametrize(
    "extra",
    [
        {"access_token": "x"},
        {"client_secret": "x"},
        {"Password": "x"},
        {"headers": {"Authorization": "Bearer x"}},
        {"items": [{"refresh-token": "x"}]},
    ],
)
def test_extra_cannot_smuggle_credentials(tmp_path, extra):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        with pytest.raises(RecordsError, match="looks like a credential"):
            journal.intent("remove_direct", ADELE, "adele@contoso.com", E3, "ENTERPRISEPACK", [], extra=extra)
    assert os.path.getsize(path) == 0


def test_extra_is_kept_and_token_shaped_text_is_redacted(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl"
    with Journal(path) as journal:
        op_id = journal.intent("remove_direct", ADELE, "adele@contoso.com", E3, "ENTERPRISEPACK", [], extra={"verdict": "safe_to_remove", "note": jwt})
        journal.result(op_id, "failed", status=401, error="InvalidAuthenticationToken", detail="header was Bearer %s" % jwt)
    text = open(path, encoding="utf-8").read()
    assert jwt not in text
    _run, intent, result = lines_of(path)
    assert intent["extra"] == {"verdict": "safe_to_remove", "note": "[REDACTED]"}
    assert result["detail"] == "header was Bearer [REDACTED]"


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        with pytest.raises(RecordsError, match="op must be one of remove_direct, restore_direct, got 'delete'"):
            journal.intent("delete", ADELE, None, E3, None, [])
        with pytest.raises(RecordsError, match="sku_id must be a GUID.*'ENTERPRISEPACK'"):
            journal.intent("remove_direct", ADELE, None, "ENTERPRISEPACK", None, [])
        with pytest.raises(RecordsError, match="disabled_plans must be a GUID"):
            journal.intent("remove_direct", ADELE, None, E3, None, ["YAMMER_ENTERPRISE"])
        with pytest.raises(RecordsError, match="has no intent in this run"):
            journal.result("nope", "ok")
        assert os.path.getsize(path) == 0
        restore_id = journal.intent("restore_direct", ADELE, None, E3, None, [])
        with pytest.raises(RecordsError, match="rolled_back applies to remove_direct only"):
            journal.result(restore_id, "rolled_back")
        with pytest.raises(RecordsError, match="outcome must be one of .*got 'done'"):
            journal.result(restore_id, "done")
        journal.result(restore_id, "ok")
        with pytest.raises(RecordsError, match="already has a result"):
            journal.result(restore_id, "ok")


def test_powershell_quote_doubles_every_single_quote_kind():
    assert powershell_quote("O'Brien") == "'O''Brien'"
    assert powershell_quote("O\u2019Brien $env:x `n") == "'O\u2019\u2019Brien $env:x `n'"
    assert powershell_quote("a\r\nb") == "'a  b'"


def test_rollback_script_path_sits_beside_the_journal():
    assert rollback_script_path("/var/log/migrate.jsonl") == "/var/log/migrate.rollback.ps1"
    assert rollback_script_path("/var/log/migrate") == "/var/log/migrate.rollback.ps1"


GOLDEN_SCRIPT = """#Requires -Modules Microsoft.Graph.Users.Actions
<#
.SYNOPSIS
Puts back the direct license assignments that an entraops.licensing migration removed.

.DESCRIPTION
Generated by the entraops.licensing Ansible collection from its migration journal at 2025-06-30T12:00:00.000Z.
Each block re-adds one user's direct license assignment of one SKU, with the disabled service plans
it had before it was removed. Running the script again is harmless: adding a license the user
already holds directly sets the same disabled plans again.

Needs Microsoft Graph PowerShell (Install-Module Microsoft.Graph.Users.Actions -Scope CurrentUser)
and the permission LicenseAssignment.ReadWrite.All (User.ReadWrite.All or Directory.ReadWrite.All
also allow it). To run it as an application, connect first, for example with
Connect-MgGraph -TenantId <tenant> -ClientId <application id> -CertificateThumbprint <thumbprint>,
then run the script in the same session.
#>

if ($null -eq (Get-MgContext)) {
    # Least-privileged permission for Set-MgUserLicense; User.ReadWrite.All also works.
    Connect-MgGraph -Scopes 'LicenseAssignment.ReadWrite.All' -TenantId 'contoso.onmicrosoft.com' -ErrorAction Stop
}

$total = 2
$restored = 0
$failures = New-Object System.Collections.Generic.List[string]

# 1 of 2: O'Brien@contoso.com, ENTERPRISEPACK
try {
    Set-MgUserLicense -UserId '6e7b768e-07e2-4810-8459-485f84f8f204' -AddLicenses @(@{SkuId = '6fd2c87f-b296-42f0-b197-1e91e994b900'; \
DisabledPlans = @('7547a3fe-08ee-4ccb-b430-5077c5041653', 'a23b959c-7ce8-4e57-9140-b90eb88a9e97')}) -RemoveLicenses @() -ErrorAction Stop | Out-Null
    $restored++
    Write-Host 'Restored ENTERPRISEPACK for O''Brien@contoso.com'
} catch {
    $failures.Add('O''Brien@contoso.com ENTERPRISEPACK: ' + $_.Exception.Message)
    Write-Warning ('Could not restore ENTERPRISEPACK for O''Brien@contoso.com: ' + $_.Exception.Message)
}

# 2 of 2: zoë.ångström@contoso.com, efccb6f7-5641-4e0e-bd10-b4976e1bf68e
try {
    Set-MgUserLicense -UserId '2c5b7f0e-1f2a-4c49-9d8e-3a8f6b1c0d42' -AddLicenses @(@{SkuId = 'efccb6f7-5641-4e0e-bd10-b4976e1bf68e'; \
DisabledPlans = @()}) -RemoveLicenses @() -ErrorAction Stop | Out-Null
    $restored++
    Write-Host 'Restored efccb6f7-5641-4e0e-bd10-b4976e1bf68e for zoë.ångström@contoso.com'
} catch {
    $failures.Add('zoë.ångström@contoso.com efccb6f7-5641-4e0e-bd10-b4976e1bf68e: ' + $_.Exception.Message)
    Write-Warning ('Could not restore efccb6f7-5641-4e0e-bd10-b4976e1bf68e for zoë.ångström@contoso.com: ' + $_.Exception.Message)
}

Write-Host ('Restored {0} of {1} direct license assignments.' -f $restored, $total)
if ($failures.Count -gt 0) {
    Write-Warning ('{0} could not be restored:' -f $failures.Count)
    foreach ($failure in $failures) {
        Write-Warning $failure
    }
    exit 1
}
"""


def test_rollback_script_golden_text_bom_and_crlf(tmp_path):
    path = str(tmp_path / "migrate.rollback.ps1")
    rows = [
        {
            "user_id": OBRIEN.upper(),
            "user_principal_name": "O'Brien@contoso.com",
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "disabled_plans": [YAMMER, SWAY],
        },
        {"user_id": ZOE, "user_principal_name": "zo\u00eb.\u00e5ngstr\u00f6m@contoso.com", "sku_id": EMS, "sku_part_number": None, "disabled_plans": []},
    ]
    outcome = write_rollback_script(rows, path, tenant_id="contoso.onmicrosoft.com", generated_at="2025-06-30T12:00:00.000Z")
    assert outcome == {"path": path, "rows": 2}
    raw = open(path, "rb").read()
    assert raw.startswith(b"\xef\xbb\xbf#Requires")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    expected = GOLDEN_SCRIPT.replace("\\\n", "")
    assert raw[3:].decode("utf-8") == expected.replace("\n", "\r\n")


def test_rollback_script_from_journal_rows_without_tenant(tmp_path):
    journal_path = str(tmp_path / "journal.jsonl")
    with Journal(journal_path) as journal:
        journal.result(remove(journal, disabled_plans=[]), "ok")
    script_path = rollback_script_path(journal_path)
    write_rollback_script(restorable(read_journal(journal_path)["entries"]), script_path)
    text = open(script_path, encoding="utf-8-sig").read()
    assert "Connect-MgGraph -Scopes 'LicenseAssignment.ReadWrite.All' -ErrorAction Stop" in text
    assert "Set-MgUserLicense -UserId '%s' -AddLicenses @(@{SkuId = '%s'; DisabledPlans = @()}) -RemoveLicenses @()" % (ADELE, E3) in text
    assert "$total = 1" in text


def test_rollback_script_refuses_bad_rows_and_leaves_no_file(tmp_path):
    path = str(tmp_path / "rollback.ps1")
    with pytest.raises(RecordsError, match="rollback row 1 user_id must be a GUID.*\"x'; Remove-MgUser"):
        write_rollback_script([{"user_id": "x'; Remove-MgUser", "sku_id": E3, "disabled_plans": []}], path)
    with pytest.raises(RecordsError, match="tenant_id must be a tenant GUID or domain name"):
        write_rollback_script([], path, tenant_id="contoso'; evil")
    assert os.listdir(str(tmp_path)) == []


# -- following a journal that grows (JournalReader.new_entries): each line parsed once


def test_new_entries_yields_only_what_was_appended_since_the_last_call(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    reader = journal_module.JournalReader(path)
    with Journal(path, run_id="run-1") as journal:
        first = remove(journal)
        assert [entry["type"] for entry in reader.new_entries()] == ["run", "intent"]
        journal.result(first, "ok")
        second = remove(journal, user_id=OBRIEN)
        assert [(entry["type"], entry["op_id"]) for entry in reader.new_entries()] == [("result", first), ("intent", second)]
        assert list(reader.new_entries()) == []
        journal.result(second, "failed")
        assert [entry["outcome"] for entry in reader.new_entries()] == ["failed"]
    assert reader.entries == 5
    assert reader.offset == os.path.getsize(path)
    # A full pass starts again from the beginning and sees the same entries.
    assert [entry["type"] for entry in reader] == ["run", "intent", "result", "intent", "result"]


def test_new_entries_leaves_a_line_without_its_newline_for_the_next_call(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        remove(journal)
    reader = journal_module.JournalReader(path)
    assert len(list(reader.new_entries())) == 2
    scratch = str(tmp_path / "scratch.jsonl")
    with Journal(scratch) as other:
        op_id = remove(other, user_id=OBRIEN)
    line = json.dumps(lines_of(scratch)[-1])
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line[:20])  # half written
    assert list(reader.new_entries()) == []
    offset = reader.offset
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line[20:] + "\n")
    assert [entry["op_id"] for entry in reader.new_entries()] == [op_id]
    assert reader.offset == os.path.getsize(path) > offset


def test_new_entries_accepts_a_cut_line_and_its_repair_read_in_different_calls(tmp_path):
    path = journal_killed_mid_second_intent(tmp_path)
    reader = journal_module.JournalReader(path)
    assert [entry["type"] for entry in reader.new_entries()] == ["run", "intent"]  # the cut line waits
    with Journal(path, run_id="run-2") as journal:  # ends the cut line and repairs it
        op_id = remove(journal, user_id=ZOE)
        journal.result(op_id, "ok")
    assert [entry["type"] for entry in reader.new_entries()] == ["repair", "run", "intent", "result"]
    assert "line 3 was cut short" in reader.warnings[0]


def test_new_entries_refuses_a_malformed_line_without_its_repair(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        remove(journal)
    reader = journal_module.JournalReader(path)
    list(reader.new_entries())
    with open(path, "a", encoding="utf-8") as stream:
        stream.write('{"type": "intent", "op_id": \n')
    with pytest.raises(RecordsError, match="line 3 is not valid JSON"):
        list(reader.new_entries())
