# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading the legacy automation's PowerShell exports (every byte-level variant), and comparing them with the groups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.licensing import SkuCatalog
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import (
    ExportFormatError,
    compare_expected,
    parse_export,
    planned_script_path,
    read_export_file,
    resolve_export,
    write_planned_script,
)

from .fixtures_powershell import generate
from .fixtures_powershell.generate import ADELE, ALEX, E3, EMS, SWAY, YAMMER

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "fixtures_powershell")

with open(os.path.join(HERE, "fixtures", "subscribed_skus.json")) as stream:
    CATALOG = SkuCatalog.from_subscribed_skus(json.load(stream)["value"])


def fixture(name):
    return os.path.join(FIXTURES, name)


def expected_of(name):
    parsed = read_export_file(fixture(name))
    return parsed, resolve_export(parsed, CATALOG)


def as_tuples(expected):
    return sorted((entry["user_key"].lower(), entry["sku_id"], tuple(sorted(entry["disabled_plans"]))) for entry in expected)


THREE_ROWS = sorted(
    [
        (ADELE, E3, tuple(sorted([SWAY, YAMMER]))),
        (ALEX, E3, ()),
        (ALEX, EMS, ()),
    ]
)


def test_committed_fixtures_are_what_the_generator_writes():
    for name, data in generate.FIXTURES.items():
        with open(fixture(name), "rb") as stream:
            assert stream.read() == data, name


@pytest.mark.parametrize(
    "name, encoding, delimiter",
    [
        ("ps51_type_ascii.csv", "utf-8", ","),
        ("ps51_utf8_bom.csv", "utf-8 with BOM", ","),
        ("ps7_utf8.csv", "utf-8", ","),
        ("ps51_unicode_semicolon.csv", "utf-16-le with BOM", ";"),
        ("utf16be_bom.csv", "utf-16-be with BOM", ","),
    ],
)
def test_csv_variants_give_the_same_assignments(name, encoding, delimiter):
    parsed, expected = expected_of(name)
    assert (parsed["format"], parsed["encoding"], parsed["delimiter"]) == ("csv", encoding, delimiter)
    assert as_tuples(expected) == THREE_ROWS


def test_csv_places_count_the_type_line():
    parsed, expected = expected_of("ps51_type_ascii.csv")
    assert [entry["place"].rsplit(" ", 2)[1:] for entry in expected] == [["line", "3"], ["line", "4"], ["line", "5"]]


def test_plan_names_part_numbers_and_case_resolve_through_the_catalog():
    dummy, expected = expected_of("names_unquoted.csv")
    assert expected == [
        {
            "place": fixture("names_unquoted.csv") + " line 2",
            "user_id": None,
            "user_principal_name": "AdeleV@contoso.com",
            "user_key": "AdeleV@contoso.com",
            "sku_id": E3,
            "disabled_plans": frozenset([SWAY, YAMMER]),
        }
    ]


@pytest.mark.parametrize("name, encoding", [("ps7_depth5.json", "utf-8"), ("ps51_single_object.json", "utf-16-le with BOM")])
def test_json_arrays_and_single_objects(name, encoding):
    parsed, expected = expected_of(name)
    assert (parsed["format"], parsed["encoding"]) == ("json", encoding)
    if name == "ps7_depth5.json":
        assert as_tuples(expected) == THREE_ROWS
    else:
        assert as_tuples(expected) == [("adelev@contoso.com", E3, tuple(sorted([SWAY, YAMMER])))]


def test_license_assignment_states_keep_only_direct_entries():
    dummy, expected = expected_of("nested_states_depth5.json")
    assert as_tuples(expected) == [(ADELE, E3, (SWAY,))]
    assert expected[0]["place"].endswith("record 1 licenseassignmentstates[1]")


def test_windows_powershell_value_count_wrapper_and_enabled_plans():
    dummy, expected = expected_of("ps51_value_count.json")
    ems_plans = CATALOG.user_plan_ids(EMS)
    enabled = CATALOG.resolve_plans(EMS, ["AAD_PREMIUM", "MFA_PREMIUM", "INTUNE_A"])
    assert as_tuples(expected) == [("alexw@contoso.com", EMS, tuple(sorted(ems_plans - enabled)))]


@pytest.mark.parametrize(
    "name, words",
    [
        ("naive_string_array.csv", ["line 3", "'disabledplans'", "'System.String[]'", "-join ';'"]),
        ("naive_assigned_licenses.csv", ["line 2", "'assignedlicenses'", "IMicrosoftGraphAssignedLicense[]", "-join ';'"]),
        ("ps7_depth2_truncated.json", ["record 1", "@{DisabledPlans=System.Object[]", "-Depth 5"]),
        ("ps51_depth2_hashtable.json", ["record 1", "System.Collections.Hashtable", "-Depth 5"]),
        ("semicolon_unquoted_lists.csv", ["line 2", "4 fields", "header has 3", "';'"]),
        ("ansi_cp1252.csv", ["line 2", "0xeb", "UTF-8", "-Encoding utf8"]),
    ],
)
def test_unusable_exports_are_refused_with_the_place_the_value_and_the_fix(name, words):
    with pytest.raises(ExportFormatError) as caught:
        expected_of(name)
    message = str(caught.value)
    assert fixture(name) in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"UserPrincipalName,SkuPartNumber\r\nadele@contoso.com,SPE_E5\r\n", ["line 2", "'SPE_E5'", "ENTERPRISEPACK"]),
        (b"UserPrincipalName,SkuPartNumber,DisabledPlanNames\r\nadele@contoso.com,EMS,NOT_A_PLAN\r\n", ["line 2", "'NOT_A_PLAN'", "EMS", "MFA_PREMIUM"]),
        (b"UserId,SkuPartNumber\r\nadele@contoso.com,EMS\r\n", ["line 2", "'userid'", "GUID"]),
        (b"SkuPartNumber\r\nEMS\r\n", ["line 2", "names no user"]),
        (b"Name,Mail\r\nx,y\r\n", ["line 1", "none of the expected columns"]),
        (b"", ["is empty"]),
        (b'[{"UserPrincipalName": "a@b.c", "SkuId": "EMS"', ["not valid JSON"]),
        (b'[1, "x"]', ["record 1", "JSON int", "expected an object"]),
        (b'{"value": "System.Object[]", "Count": 1}', ["System.Object[]", "expected an array", "-Depth 5"]),
        (b"UserPrincipalName,SkuPartNumber,DisabledPlanNames\r\na@b.c,EMS,\r\na@b.c,EMS,MFA_PREMIUM\r\n", ["line 3", "other plans than", "line 2"]),
        (b"UserPrincipalName,SkuPartNumber,DisabledPlans,EnabledPlans\r\na@b.c,EMS,MFA_PREMIUM,AAD_PREMIUM\r\n", ["both"]),
    ],
)
def test_bad_values_name_the_row_and_the_value(tmp_path, data, words):
    path = tmp_path / "legacy.csv"
    path.write_bytes(data)
    with pytest.raises(ExportFormatError) as caught:
        resolve_export(read_export_file(str(path)), CATALOG)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_identical_duplicates_are_accepted_once(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_bytes(b"UserPrincipalName,SkuPartNumber,DisabledPlanNames\na@b.c,EMS,MFA_PREMIUM\nA@B.C,efccb6f7-5641-4e0e-bd10-b4976e1bf68e,mfa_premium\n")
    assert len(resolve_export(read_export_file(str(path)), CATALOG)) == 1


def test_utf16_without_bom_is_recognised():
    parsed = parse_export("UserPrincipalName,SkuPartNumber\r\na@b.c,EMS\r\n".encode("utf-16-le"), "x.csv")
    assert parsed["encoding"] == "utf-16-le without BOM"
    assert resolve_export(parsed, CATALOG)[0]["sku_id"] == EMS


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ExportFormatError, match="does not exist"):
        read_export_file(str(tmp_path / "nope.csv"))


def _record(sku_id, healthy, inherited_names, verdict="safe_to_remove"):
    return {"sku_id": sku_id, "verdict": verdict, "healthy_inherited_from": healthy, "inherited_enabled_plan_names": inherited_names}


def test_compare_reports_reproduced_missing_plans_missing_sku_and_unknown_user():
    parsed, expected = expected_of("ps7_depth5.json")
    adele = [entry for entry in expected if entry["user_id"] == ADELE]
    alex = [entry for entry in expected if entry["user_id"] == ALEX]
    all_e3 = CATALOG.plan_names(E3, CATALOG.user_plan_ids(E3))
    no_sway = CATALOG.plan_names(E3, CATALOG.user_plan_ids(E3) - {SWAY})
    # Adele: legacy disables SWAY and YAMMER; the group enables everything -> reproduced (more is fine).
    [adele_result] = compare_expected(adele, {"id": ADELE.upper(), "userPrincipalName": "AdeleV@contoso.com"}, [_record(E3, ["g1"], all_e3)], CATALOG)
    assert adele_result["expected_state"] == "reproduced" and adele_result["plans_missing"] == []
    assert adele_result["user_id"] == ADELE
    # Alex: legacy enables all E3; the group disables SWAY -> plans_missing [SWAY]; EMS held directly only -> sku_missing.
    results = compare_expected(
        alex,
        {"id": ALEX, "userPrincipalName": "AlexW@contoso.com"},
        [_record(E3, ["g2"], no_sway, "plans_would_be_lost"), _record(EMS, [], [], "direct_only")],
        CATALOG,
    )
    by_sku = dict((result["sku_id"], result) for result in results)
    assert by_sku[E3]["expected_state"] == "plans_missing" and by_sku[E3]["plans_missing"] == ["SWAY"]
    assert by_sku[E3]["source"].endswith("record 2")
    assert by_sku[EMS]["expected_state"] == "sku_missing" and by_sku[EMS]["verdict"] == "direct_only"
    assert "MFA_PREMIUM" in by_sku[EMS]["plans_missing"]
    [gone] = compare_expected(alex[:1], None, [], CATALOG)
    assert gone["expected_state"] == "user_not_found" and gone["user_principal_name"] == "AlexW@contoso.com"


def test_planned_script_is_all_comments_crlf_bom_and_names_every_row(tmp_path):
    plan_path = str(tmp_path / "plan.json")
    rows = [
        {
            "user_id": ADELE,
            "user_principal_name": "o'neil@contoso.com\nWrite-Host pwned",
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "healthy_inherited_from": ["g1"],
            "direct_disabled_plan_names": ["SWAY"],
            "batch": 1,
        },
        {"user_id": ALEX, "user_principal_name": "AlexW@contoso.com", "sku_id": EMS, "sku_part_number": "EMS", "healthy_inherited_from": ["g2"], "batch": 0},
    ]
    written = write_planned_script(rows, plan_path, tenant_id="contoso.onmicrosoft.com", generated_at="2025-06-30T12:00:00.000Z")
    assert written == {"path": planned_script_path(plan_path), "rows": 2}
    assert written["path"] == str(tmp_path / "plan.planned.ps1")
    with open(written["path"], "rb") as stream:
        data = stream.read()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    text = data.decode("utf-8-sig")
    code_lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    header_end = text.index("#>")
    assert [line for line in text[header_end + 2 :].splitlines() if line.strip() and not line.startswith("#")] == [
        "Write-Host 'This script only documents the planned removals of plan.json; it changes nothing.'"
    ]
    assert len(code_lines) > 1  # the help block lines are inside <# #>
    assert text.index("Batch 0 (canary)") < text.index("Batch 1:")
    assert "# Set-MgUserLicense -UserId '%s' -AddLicenses @() -RemoveLicenses @('%s')" % (ADELE, E3) in text
    assert "Write-Host pwned" in text and "\nWrite-Host pwned" not in text.replace("\r\n", "\n")


def test_powershell_report_format_is_microsofts_column_shape_and_csv_takes_expected_state_columns(tmp_path):
    from ansible_collections.entraops.licensing.plugins.module_utils.reports import write_report  # pylint: disable=import-outside-toplevel

    record = {
        "user_id": ADELE,
        "user_principal_name": "AdeleV@contoso.com",
        "sku_id": E3,
        "sku_part_number": "ENTERPRISEPACK",
        "verdict": "plans_would_be_lost",
        "direct": True,
        "inherited_from": ["g1"],
        "expected_state": "plans_missing",
        "expected_plans_missing": ["=cmd", "SWAY"],
    }
    outcome = write_report(str(tmp_path / "ms.csv"), [record], report_format="powershell")
    assert outcome["format"] == "ms_direct_vs_inherited"
    assert (tmp_path / "ms.csv").read_bytes() == (
        b'\xef\xbb\xbf"ObjectId","SkuId","AssignedDirectly","AssignedFromGroup"\r\n"%s","%s","True","True"\r\n' % (ADELE.encode(), E3.encode())
    )
    write_report(str(tmp_path / "r.csv"), [record], extra_columns=("expected_state", "expected_plans_missing"))
    lines = (tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].endswith(",batch,expected_state,expected_plans_missing")
    assert lines[1].endswith(",plans_missing,'=cmd;SWAY")
