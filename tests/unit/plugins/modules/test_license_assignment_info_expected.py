# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""license_assignment_info with the legacy automation's PowerShell export (expected_state_path), the planned-removals
script and the powershell report format, against the Graph emulator (real HTTPS, real msal)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import copy
import csv
import io
import json

import pytest

from ansible_collections.entraops.licensing.plugins.modules import license_assignment_info

from .migration_tenant import E3, build_tenant, connection, plan_id
from .utils import run_module
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS

EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"


@pytest.fixture(scope="module")
def setup():
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    tenant, roles = build_tenant()
    with Emulator(tenant=copy.deepcopy(tenant), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu, roles, tenant


@pytest.fixture
def emu(setup):
    setup[0].clear_faults()
    setup[0].reset_stats()
    return setup[0]


def upn(emu, user_id):
    return emu.directory.get_user(user_id, select=("id", "userPrincipalName"))["userPrincipalName"]


def run(emu, **options):
    return run_module(license_assignment_info.main, dict(connection(emu), **options))


def legacy_export(emu, roles, sway):
    """What Windows PowerShell 5.1 `Export-Csv -UseCulture -Encoding Unicode` writes: UTF-16 LE BOM, #TYPE, ';', CRLF."""
    rows = [
        ("safe_0", upn(emu, roles["safe_0"]), "", "ENTERPRISEPACK", ""),  # by UPN; group gives all -> reproduced
        ("lossy", "", roles["lossy"], E3, ""),  # group disables SWAY -> plans_missing
        ("sway_off", "", roles["sway_off"], "ENTERPRISEPACK", sway),  # legacy disables SWAY too -> reproduced
        ("direct_only", "", roles["direct_only"], "ENTERPRISEPACK", ""),  # no group -> sku_missing
        ("count_violation", "", roles["count_violation"], "ENTERPRISEPACK", ""),  # inherited copy in error -> sku_missing
        ("safe_1", "", roles["safe_1"], "EMS", "MFA_PREMIUM"),  # legacy gives EMS, nobody holds it -> sku_missing
        ("ghost", "ghost@contoso.example", "", "ENTERPRISEPACK", ""),  # -> user_not_found
    ]
    lines = ["#TYPE Selected.System.Management.Automation.PSCustomObject", '"UserPrincipalName";"UserId";"Sku";"DisabledPlans"']
    lines += ['"%s";"%s";"%s";"%s"' % row[1:] for row in rows]
    return codecs.BOM_UTF16_LE + ("\r\n".join(lines) + "\r\n").encode("utf-16-le")


def test_expected_state_reports_users_whose_groups_do_not_reproduce_the_legacy_plans(emu, setup, tmp_path):
    roles, tenant = setup[1], setup[2]
    sway = plan_id(tenant, E3, "SWAY")
    export = tmp_path / "legacy-state.csv"
    export.write_bytes(legacy_export(emu, roles, sway))
    report = tmp_path / "expected.csv"
    result, failed = run(emu, expected_state_path=str(export), report_path=str(report), sample_size=50)
    assert not failed, result.get("msg")
    state = result["expected_state"]
    assert (state["format"], state["encoding"], state["delimiter"]) == ("csv", "utf-16-le with BOM", ";")
    assert (state["assignments"], state["users"]) == (7, 7)
    assert dict((status, state[status]) for status in ("reproduced", "plans_missing", "sku_missing", "user_not_found")) == {
        "reproduced": 2,
        "plans_missing": 1,
        "sku_missing": 3,
        "user_not_found": 1,
    }
    assert state["gaps_total"] == 5
    gaps = dict(((gap["user_id"] or gap["user_principal_name"], gap["sku_id"]), gap) for gap in state["gaps"])
    lossy = gaps[(roles["lossy"], E3)]
    assert lossy["expected_state"] == "plans_missing" and lossy["plans_missing"] == ["SWAY"]
    assert lossy["verdict"] == "plans_would_be_lost" and lossy["source"] == "%s line 4" % export
    assert gaps[(roles["direct_only"], E3)]["expected_state"] == "sku_missing"
    assert gaps[(roles["count_violation"], E3)]["verdict"] == "inherited_in_error"
    ems = gaps[(roles["safe_1"], EMS)]
    assert ems["expected_state"] == "sku_missing" and ems["verdict"] is None and "MFA_PREMIUM" not in ems["plans_missing"]
    assert gaps[("ghost@contoso.example", E3)]["expected_state"] == "user_not_found"
    assert (roles["safe_0"], E3) not in gaps and (roles["sway_off"], E3) not in gaps
    # Scope = the file's users: their records carry the outcome, in the return value and in the CSV report.
    records = dict(((record["user_id"] or record["user_principal_name"], record["sku_id"]), record) for record in result["records"])
    assert records[(roles["safe_0"], E3)]["expected_state"] == "reproduced"
    assert records[(roles["lossy"], E3)]["expected_plans_missing"] == ["SWAY"]
    ghost = records[("ghost@contoso.example", None)]
    assert (ghost["verdict"], ghost["expected_state"]) == ("user_not_found", "user_not_found")
    with open(str(report), encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    lossy_row = next(row for row in rows if row["user_id"] == roles["lossy"])
    assert (lossy_row["expected_state"], lossy_row["expected_plans_missing"]) == ("plans_missing", "SWAY")
    assert [entry for entry in emu.request_log() if entry["write"] and entry["path"].startswith("/v1.0/")] == []


def test_expected_state_with_a_scope_annotates_the_scope(emu, setup, tmp_path):
    roles = setup[1]
    export = tmp_path / "legacy.json"
    export.write_text(json.dumps({"UserId": roles["lossy"], "SkuPartNumber": "ENTERPRISEPACK", "DisabledPlans": []}), encoding="utf-8")
    result, failed = run(emu, expected_state_path=str(export), skus=["ENTERPRISEPACK"], sample_size=100)
    assert not failed, result.get("msg")
    assert result["expected_state"]["plans_missing"] == 1
    outcomes = dict((record["user_id"], record["expected_state"]) for record in result["records"])
    assert outcomes[roles["lossy"]] == "plans_missing"
    assert outcomes[roles["safe_0"]] is None  # in scope, not in the file
    assert len(outcomes) > 10


def test_a_truncated_export_fails_before_any_graph_read(emu, tmp_path):
    export = tmp_path / "legacy.json"
    text = '[{"UserPrincipalName": "a@contoso.com", "AssignedLicenses": ["@{DisabledPlans=System.Object[]; SkuId=%s}"]}]' % E3
    export.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    emu.reset_stats()
    result, failed = run(emu, expected_state_path=str(export))
    assert failed
    assert str(export) in result["msg"] and "record 1" in result["msg"] and "-Depth 5" in result["msg"]
    assert [entry for entry in emu.request_log() if entry["path"].startswith("/v1.0/")] == []


def test_unknown_plan_in_the_export_names_line_and_value(emu, tmp_path):
    export = tmp_path / "legacy.csv"
    export.write_bytes(b"UserPrincipalName,SkuPartNumber,DisabledPlanNames\r\na@contoso.com,ENTERPRISEPACK,SWAY;NOT_A_PLAN\r\n")
    result, failed = run(emu, expected_state_path=str(export))
    assert failed
    assert "%s line 2" % export in result["msg"] and "'NOT_A_PLAN'" in result["msg"]


def test_plan_writes_the_planned_removals_script_beside_it_and_powershell_report(emu, setup, tmp_path):
    roles = setup[1]
    plan_path = tmp_path / "plan.json"
    report = tmp_path / "ms.csv"
    result, failed = run(
        emu, skus=["ENTERPRISEPACK"], plan_path=str(plan_path), canary_size=2, batch_size=5, report_path=str(report), report_format="powershell"
    )
    assert not failed, result.get("msg")
    assert result["planned_script_path"] == str(tmp_path / "plan.planned.ps1")
    with open(result["planned_script_path"], encoding="utf-8-sig") as stream:
        script = stream.read()
    statements = [line for line in script.splitlines() if line.startswith("# Set-MgUserLicense")]
    assert len(statements) == result["summary"]["safe_to_remove"]
    assert "# Set-MgUserLicense -UserId '%s' -AddLicenses @() -RemoveLicenses @('%s')" % (roles["sway_off"], E3) in statements
    assert roles["lossy"] not in script
    assert "Batch 0 (canary): 2 removal(s)" in script and "direct disabled plans: SWAY" in script
    with open(str(report), encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(io.StringIO(stream.read())))
    assert rows[0] == ["ObjectId", "SkuId", "AssignedDirectly", "AssignedFromGroup"]
    assert [roles["direct_only"], E3, "True", "False"] in rows
