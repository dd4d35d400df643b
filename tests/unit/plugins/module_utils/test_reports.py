# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import json
import os
import tracemalloc
import uuid

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import reports as reports_module
from ansible_collections.entraops.licensing.plugins.module_utils.reports import (
    CSV_COLUMNS,
    RecordsError,
    write_report,
)

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"
UNNAMED_PLAN = "00000000-0000-0000-0000-0000000000aa"
GROUP_A = "0f6a8b2e-5b7c-4f5e-9d43-3c2b1a0f9e8d"
GROUP_B = "1f6a8b2e-5b7c-4f5e-9d43-3c2b1a0f9e8d"
ADELE = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
MALLORY = "6e7b768e-07e2-4810-8459-485f84f8f204"
ZOE = "2c5b7f0e-1f2a-4c49-9d8e-3a8f6b1c0d42"
PLAN_NAMES = {YAMMER.upper(): "YAMMER_ENTERPRISE", SWAY: "SWAY"}


def records():
    return [
        {
            "user_id": ADELE,
            "user_principal_name": "adele@contoso.com",
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": "safe_to_remove",
            "direct": True,
            "direct_disabled_plans": [YAMMER, SWAY, UNNAMED_PLAN],
            "inherited_from": [GROUP_A, GROUP_B],
            "healthy_inherited_from": [GROUP_A],
            "plans_lost": [],
            "errors": [],
            "batch": 0,
            "direct_enabled_plan_names": ["EXCHANGE_S_ENTERPRISE"],
        },
        {
            "user_id": MALLORY,
            "user_principal_name": '=HYPERLINK("http://evil.example","x")@contoso.com',
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": "plans_would_be_lost",
            "direct": True,
            "direct_disabled_plans": [],
            "inherited_from": [GROUP_A],
            "healthy_inherited_from": [GROUP_A],
            "plans_lost": ["SWAY", "YAMMER_ENTERPRISE"],
            "errors": [],
        },
        {
            "user_id": ZOE,
            "user_principal_name": "zo\u00eb, \u00e5ngstr\u00f6m@contoso.com",
            "sku_id": EMS,
            "sku_part_number": "EMS",
            "verdict": "inherited_in_error",
            "direct": False,
            "direct_disabled_plans": [],
            "inherited_from": [GROUP_B],
            "healthy_inherited_from": [],
            "plans_lost": [],
            "errors": ["CountViolation"],
        },
        {
            "user_id": ZOE,
            "user_principal_name": "zo\u00eb, \u00e5ngstr\u00f6m@contoso.com",
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": "sku_not_subscribed",
            "direct": False,
            "direct_disabled_plans": [],
            "inherited_from": [],
            "healthy_inherited_from": [],
            "plans_lost": [],
            "errors": [],
        },
    ]


def read_csv(path):
    with open(path, "r", encoding="utf-8-sig", newline="") as stream:
        return list(csv.reader(stream))


def test_csv_columns_values_bom_and_crlf(tmp_path):
    path = str(tmp_path / "report.csv")
    outcome = write_report(path, records(), plan_name_lookup=PLAN_NAMES)
    assert outcome == {
        "path": path,
        "format": "csv",
        "rows": 4,
        "summary": {"inherited_in_error": 1, "plans_would_be_lost": 1, "safe_to_remove": 1, "sku_not_subscribed": 1},
    }
    raw = open(path, "rb").read()
    assert raw.startswith(
        b"\xef\xbb\xbfuser_principal_name,user_id,sku_part_number,sku_id,verdict,direct,direct_disabled_plans,"
        b"inherited_from,healthy_inherited_from,plans_lost,errors,batch\r\n"
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")
    header, adele, mallory, zoe_ems, zoe_e3 = read_csv(path)
    assert tuple(header) == CSV_COLUMNS
    assert adele == [
        "adele@contoso.com",
        ADELE,
        "ENTERPRISEPACK",
        E3,
        "safe_to_remove",
        "true",
        "YAMMER_ENTERPRISE;SWAY;" + UNNAMED_PLAN,
        GROUP_A + ";" + GROUP_B,
        GROUP_A,
        "",
        "",
        "0",
    ]
    assert mallory[9] == "SWAY;YAMMER_ENTERPRISE"
    assert mallory[11] == ""
    assert zoe_ems == ["zo\u00eb, \u00e5ngstr\u00f6m@contoso.com", ZOE, "EMS", EMS, "inherited_in_error", "false", "", GROUP_B, "", "", "CountViolation", ""]
    assert zoe_e3[4] == "sku_not_subscribed"
    # A comma in a value is quoted, not a new column.
    assert '"zo\u00eb, \u00e5ngstr\u00f6m@contoso.com"' in raw.decode("utf-8-sig")


def test_csv_without_lookup_writes_plan_guids(tmp_path):
    path = str(tmp_path / "report.CSV")
    write_report(path, records()[:1])
    assert read_csv(path)[1][6] == ";".join([YAMMER, SWAY, UNNAMED_PLAN])


def test_csv_lookup_may_be_a_callable(tmp_path):
    path = str(tmp_path / "report.csv")
    write_report(path, records()[:1], plan_name_lookup=lambda plan_id: "P-" + plan_id[:4])
    assert read_csv(path)[1][6] == "P-7547;P-a23b;P-0000"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_formula_injection_is_neutralised(tmp_path, value):
    path = str(tmp_path / "report.csv")
    write_report(path, [dict(records()[0], user_principal_name=value, sku_part_number=value)])
    row = read_csv(path)[1]
    assert row[0] == "'" + value
    assert row[2] == "'" + value


def test_csv_formula_injection_in_the_real_record(tmp_path):
    path = str(tmp_path / "report.csv")
    write_report(path, records())
    assert read_csv(path)[2][0] == '\'=HYPERLINK("http://evil.example","x")@contoso.com'


def test_json_shape_and_extra_keys(tmp_path):
    path = str(tmp_path / "report.json")
    outcome = write_report(path, iter(records()), plan_name_lookup=PLAN_NAMES)
    assert outcome["rows"] == 4
    with open(path, encoding="utf-8") as stream:
        document = json.load(stream)
    assert list(document) == ["summary", "records"]
    assert document["summary"] == {"inherited_in_error": 1, "plans_would_be_lost": 1, "safe_to_remove": 1, "sku_not_subscribed": 1}
    expected = records()
    expected[0]["direct_disabled_plan_names"] = ["YAMMER_ENTERPRISE", "SWAY", UNNAMED_PLAN]
    for record in expected[1:]:
        record["direct_disabled_plan_names"] = []
    assert document["records"] == expected
    assert document["records"][0]["direct_enabled_plan_names"] == ["EXCHANGE_S_ENTERPRISE"]
    assert "zo\u00eb" in open(path, encoding="utf-8").read()


def test_json_of_no_records(tmp_path):
    path = str(tmp_path / "report.json")
    assert write_report(path, [])["rows"] == 0
    with open(path, encoding="utf-8") as stream:
        assert json.load(stream) == {"summary": {}, "records": []}
    assert os.listdir(str(tmp_path)) == ["report.json"]


def test_ms_direct_vs_inherited_shape(tmp_path):
    path = str(tmp_path / "direct-vs-inherited.csv")
    outcome = write_report(path, records(), report_format="ms_direct_vs_inherited")
    assert (outcome["format"], outcome["rows"]) == ("ms_direct_vs_inherited", 3)
    raw = open(path, "rb").read()
    assert raw.decode("utf-8") == (
        '\ufeff"ObjectId","SkuId","AssignedDirectly","AssignedFromGroup"\r\n'
        '"%s","%s","True","True"\r\n'
        '"%s","%s","True","True"\r\n'
        '"%s","%s","False","True"\r\n' % (ADELE, E3, MALLORY, E3, ZOE, EMS)
    )


def test_ms_format_any_extension(tmp_path):
    path = str(tmp_path / "direct-vs-inherited.txt")
    write_report(path, [dict(records()[0], inherited_from=[])], report_format="ms_direct_vs_inherited")
    assert read_csv(path)[1] == [ADELE, E3, "True", "False"]


@pytest.mark.parametrize("name", ["report.txt", "report", "report.csv.bak", "report.xlsx"])
def test_unknown_extension_names_path_and_accepted_extensions(tmp_path, name):
    path = str(tmp_path / name)
    with pytest.raises(RecordsError) as caught:
        write_report(path, records())
    message = str(caught.value)
    assert path in message
    assert ".csv, .json" in message
    assert "ms_direct_vs_inherited" in message
    assert os.listdir(str(tmp_path)) == []


def test_unknown_report_format(tmp_path):
    with pytest.raises(RecordsError, match="report_format 'xlsx' is not supported; use one of csv, json, ms_direct_vs_inherited"):
        write_report(str(tmp_path / "r.csv"), [], report_format="xlsx")


def test_missing_directory_and_directory_path(tmp_path):
    with pytest.raises(RecordsError, match="directory .*missing does not exist"):
        write_report(str(tmp_path / "missing" / "r.csv"), [])
    with pytest.raises(RecordsError, match="is a directory"):
        os.mkdir(str(tmp_path / "r.csv"))
        write_report(str(tmp_path / "r.csv"), [])


def test_parent_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecordsError, match="afile is not a directory"):
        write_report(str(tmp_path / "afile" / "r.csv"), [])


def test_unwritable_directory_is_refused_before_writing(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(reports_module.os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    with pytest.raises(RecordsError, match="directory .*locked is not writable"):
        write_report(str(locked / "r.csv"), records())
    assert os.listdir(str(locked)) == []


def test_directory_the_system_refuses_gives_a_clear_error():
    # /sys refuses new files even for root, so the operating system's refusal is exercised too.
    with pytest.raises(RecordsError, match="/sys/r.csv"):
        write_report("/sys/r.csv", records())


def test_relative_path_with_dotdot_is_allowed_and_reported_absolute(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(str(tmp_path / "work"))
    outcome = write_report("../out.json", records())
    assert outcome["path"] == str(tmp_path / "out.json")
    assert os.path.exists(str(tmp_path / "out.json"))


def test_failure_midway_keeps_the_previous_report_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "report.csv")
    write_report(path, records())
    before = open(path, "rb").read()

    def broken():
        yield records()[0]
        raise RuntimeError("Graph went away")

    with pytest.raises(RuntimeError):
        write_report(path, broken())
    with pytest.raises(RecordsError, match="record number 2 is a str, expected a dict"):
        write_report(path, [records()[0], "oops"])
    assert open(path, "rb").read() == before
    assert os.listdir(str(tmp_path)) == ["report.csv"]


def generated_records(count):
    for number in range(count):
        yield {
            "user_id": str(uuid.UUID(int=number)),
            "user_principal_name": "user%06d@contoso.com" % number,
            "sku_id": E3,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": "safe_to_remove" if number % 3 else "plans_would_be_lost",
            "direct": True,
            "direct_disabled_plans": [YAMMER, SWAY],
            "inherited_from": [GROUP_A],
            "healthy_inherited_from": [GROUP_A],
            "plans_lost": [] if number % 3 else ["SWAY"],
            "errors": [],
            "batch": number // 500,
        }


def traced_peak(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def list_peak(count):
    # Memory of records held as a list grows linearly; 10k of them traced stand for larger counts.
    held = []
    peak = traced_peak(lambda: held.extend(generated_records(10000)))
    return peak * count // 10000


# CSV is the report format at the full 100k; JSON and the Microsoft shape share its streaming path
# with smaller counts, to keep tracemalloc's slowdown within seconds.
@pytest.mark.parametrize(
    "name, report_format, count",
    [
        ("big.csv", None, 100000),
        ("big.json", None, 10000),
        ("big-ms.csv", "ms_direct_vs_inherited", 20000),
    ],
)
def test_generated_records_stream_with_flat_memory(tmp_path, name, report_format, count):
    path = str(tmp_path / name)
    held_peak = list_peak(count)
    outcomes = []
    stream_peak = traced_peak(lambda: outcomes.append(write_report(path, generated_records(count), report_format, plan_name_lookup=PLAN_NAMES)))
    print(
        "\n%s: %d records held as a list: ~%.1f MB traced; streamed to disk from a generator: peak %.2f MB traced; file %.1f MB"
        % (name, count, held_peak / 1e6, stream_peak / 1e6, os.path.getsize(path) / 1e6)
    )
    assert outcomes[0]["rows"] == count
    assert sum(outcomes[0]["summary"].values()) == count
    assert stream_peak < held_peak / 20


def test_json_record_that_is_not_serialisable_is_a_clear_error(tmp_path):
    path = str(tmp_path / "report.json")
    with pytest.raises(RecordsError, match=r"record number 2 cannot be written as JSON: .*set"):
        write_report(path, [records()[0], dict(records()[0], errors={"CountViolation"})])
    assert os.listdir(str(tmp_path)) == []
