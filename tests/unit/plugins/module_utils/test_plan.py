# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import time
import uuid

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.licensing import assign_batches
from ansible_collections.entraops.licensing.plugins.module_utils.plan import (
    batch_counts,
    check_fingerprint,
    normalize_fingerprint,
    read_plan,
    scan_plan,
    select_batches,
    write_plan,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"
GROUP = "0f6a8b2e-5b7c-4f5e-9d43-3c2b1a0f9e8d"
META = {"tenant_id": "contoso.onmicrosoft.com", "trusted_groups": [GROUP], "canary_size": 2, "batch_size": 3, "created": "2025-06-30T12:00:00.000Z"}


def record(number, verdict="safe_to_remove", sku_id=E3):
    return {
        "user_id": str(uuid.UUID(int=number + 1)),
        "user_principal_name": "user%03d@contoso.com" % number,
        "sku_id": sku_id,
        "sku_part_number": "ENTERPRISEPACK" if sku_id == E3 else "EMS",
        "verdict": verdict,
        "direct": verdict != "inherited_only",
        "direct_disabled_plans": [YAMMER],
        "inherited_from": [GROUP],
        "healthy_inherited_from": [GROUP] if verdict == "safe_to_remove" else [],
        "plans_lost": [],
        "errors": [],
    }


def sample_rows():
    # Graph's paging order is not the UPN order; the batches must not depend on it. The plan keeps
    # rows that are not to be removed for the record, with batch null.
    records = [record(number) for number in (9, 3, 7, 1, 5, 0, 8, 2, 6, 4)]
    others = [dict(record(11, verdict="plans_would_be_lost"), batch=None), dict(record(12, verdict="direct_only"), batch=None)]
    return assign_batches(records, canary_size=2, batch_size=3) + others


def spec_fingerprint(rows, header):
    """The fingerprint as plan.py's docstring defines it, computed here without the collection's code."""
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows]
    trusted = header.get("trusted_groups")
    lines.append(
        json.dumps(
            {"tenant_id": header.get("tenant_id"), "trusted_groups": sorted(trusted) if trusted is not None else None}, ensure_ascii=False, sort_keys=True
        )
    )
    return "sha256:" + hashlib.sha256("".join(line + "\n" for line in lines).encode("utf-8")).hexdigest()


def test_plan_rows_come_from_the_collections_one_batching_order():
    rows = sample_rows()
    assert [(row["user_principal_name"], row["batch"]) for row in rows] == [
        ("user000@contoso.com", 0),
        ("user001@contoso.com", 0),
        ("user002@contoso.com", 1),
        ("user003@contoso.com", 1),
        ("user004@contoso.com", 1),
        ("user005@contoso.com", 2),
        ("user006@contoso.com", 2),
        ("user007@contoso.com", 2),
        ("user008@contoso.com", 3),
        ("user009@contoso.com", 3),
        ("user011@contoso.com", None),
        ("user012@contoso.com", None),
    ]


def test_plan_module_has_no_batching_of_its_own():
    from ansible_collections.entraops.licensing.plugins.module_utils import plan  # pylint: disable=import-outside-toplevel

    assert not hasattr(plan, "assign_batches")


def test_write_and_read_round_trip(tmp_path):
    path = str(tmp_path / "plan.json")
    rows = sample_rows()
    outcome = write_plan(path, rows, META)
    assert outcome == {
        "path": path,
        "rows": 12,
        "batches": 4,
        "summary": {"direct_only": 1, "plans_would_be_lost": 1, "safe_to_remove": 10},
        "fingerprint": spec_fingerprint(rows, META),
    }
    plan = read_plan(path)
    assert plan["fingerprint"] == plan["content_fingerprint"] == outcome["fingerprint"]
    assert plan["format"] == "entraops.licensing/plan"
    assert plan["version"] == 1
    assert plan["created"] == "2025-06-30T12:00:00.000Z"
    assert plan["tenant_id"] == "contoso.onmicrosoft.com"
    assert plan["trusted_groups"] == [GROUP]
    assert (plan["canary_size"], plan["batch_size"], plan["batches"]) == (2, 3, 4)
    assert plan["summary"] == outcome["summary"]
    assert plan["rows"] == rows
    assert batch_counts(plan) == {0: 2, 1: 3, 2: 3, 3: 2}
    # Rows are one per line so the plan can be grepped and diffed.
    text = open(path, encoding="utf-8").read()
    assert text.count('\n  {"batch"') == 12


def test_plan_of_no_rows_is_valid(tmp_path):
    path = str(tmp_path / "plan.json")
    write_plan(path, [], META)
    plan = read_plan(path)
    assert (plan["rows"], plan["batches"], plan["summary"]) == ([], 0, {})


def test_guids_are_normalised_to_lower_case(tmp_path):
    path = str(tmp_path / "plan.json")
    row = dict(record(0), user_id=str(uuid.UUID(int=1)).upper(), direct_disabled_plans=[YAMMER.upper()], batch=0)
    write_plan(path, [row], META)
    plan = read_plan(path)
    assert plan["rows"][0]["user_id"] == str(uuid.UUID(int=1))
    assert plan["rows"][0]["direct_disabled_plans"] == [YAMMER]


def test_write_plan_validates_rows_and_meta_before_writing(tmp_path):
    path = str(tmp_path / "plan.json")
    bad = dict(record(0), batch="1")
    with pytest.raises(RecordsError, match=r"row 1 \(rows\[0\]\) batch must be a whole number >= 0 or null, got '1'"):
        write_plan(path, [bad], META)
    with pytest.raises(RecordsError, match="plan meta cannot set batches, rows"):
        write_plan(path, [], dict(META, batches=3, rows=[]))
    duplicate = dict(record(0), batch=0)
    with pytest.raises(RecordsError, match="row 2 .* repeats user .* of row 1"):
        write_plan(path, [duplicate, dict(duplicate)], META)
    assert os.listdir(str(tmp_path)) == []


def write_raw(tmp_path, content):
    path = str(tmp_path / "plan.json")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(content if isinstance(content, str) else json.dumps(content))
    return path


def valid_plan(**changes):
    plan = {
        "format": "entraops.licensing/plan",
        "version": 1,
        "created": "2025-06-30T12:00:00.000Z",
        "tenant_id": None,
        "trusted_groups": [],
        "canary_size": 1,
        "batch_size": 1,
        "batches": 1,
        "summary": {"safe_to_remove": 1},
        "rows": [dict(record(0), batch=0)],
    }
    plan.update(changes)
    return plan


@pytest.mark.parametrize(
    "content, message",
    [
        ("user,sku\n", r"is not a plan file: it is not valid JSON"),
        ({"records": []}, r"is not a plan file: format is None, expected 'entraops.licensing/plan'"),
        ([1, 2], r"is not a plan file: format is 'list'"),
        (valid_plan(version=2), r"has version 2; this collection reads version 1"),
        (valid_plan(rows={}), r"rows must be a list, got dict"),
        (valid_plan(rows=[dict(record(0), batch=0), {"sku_id": E3, "verdict": "safe_to_remove", "batch": 1}]), r"row 2 \(rows\[1\]\) is missing user_id"),
        (valid_plan(rows=[dict(record(0), batch=True)]), r"row 1 \(rows\[0\]\) batch must be a whole number >= 0 or null, got True"),
        (valid_plan(rows=[dict(record(0), batch=1.5)]), r"batch must be a whole number >= 0 or null, got 1.5"),
        (valid_plan(rows=[dict(record(0), sku_id="ENTERPRISEPACK")]), r"sku_id 'ENTERPRISEPACK' is not a GUID"),
        (valid_plan(rows=[dict(record(0), direct="yes")]), r"direct must be true or false, got 'yes'"),
        (valid_plan(rows=[dict(record(0), direct_disabled_plans=["YAMMER_ENTERPRISE"])]), r"direct_disabled_plans must be a list of GUIDs"),
        (valid_plan(rows=["x"]), r"row 1 \(rows\[0\]\) is a str, expected an object"),
    ],
)
def test_read_plan_errors_name_the_file_and_the_problem(tmp_path, content, message):
    path = write_raw(tmp_path, content)
    with pytest.raises(RecordsError, match=message) as caught:
        read_plan(path)
    assert path in str(caught.value)


def test_read_plan_missing_file_and_directory(tmp_path):
    with pytest.raises(RecordsError, match="does not exist"):
        read_plan(str(tmp_path / "missing.json"))
    with pytest.raises(RecordsError, match="is a directory"):
        read_plan(str(tmp_path))


def test_read_plan_accepts_a_bom_from_a_windows_editor(tmp_path):
    path = str(tmp_path / "plan.json")
    with open(path, "w", encoding="utf-8-sig") as stream:
        json.dump(valid_plan(), stream)
    assert read_plan(path)["batches"] == 1


def test_select_batches(tmp_path):
    path = str(tmp_path / "plan.json")
    write_plan(path, sample_rows(), META)
    plan = read_plan(path)
    assert [row["user_principal_name"] for row in select_batches(plan, [0])] == ["user000@contoso.com", "user001@contoso.com"]
    assert [row["batch"] for row in select_batches(plan, [3, 1])] == [1, 1, 1, 3, 3]
    assert len(select_batches(plan, None)) == 10
    assert select_batches(plan, []) == []


def test_select_batches_names_unknown_batches_and_the_existing_ones(tmp_path):
    path = str(tmp_path / "plan.json")
    write_plan(path, sample_rows(), META)
    plan = read_plan(path)
    with pytest.raises(RecordsError, match=r"^batch 7 is not in the plan; the plan has batches 0-3$"):
        select_batches(plan, [1, 7])
    with pytest.raises(RecordsError, match=r"^batches 4, 9 are not in the plan; the plan has batches 0-3$"):
        select_batches(plan, [9, 4, 0])
    with pytest.raises(RecordsError, match=r"batches must be whole numbers, got '1'"):
        select_batches(plan, ["1"])
    with pytest.raises(RecordsError, match="batches must be a list of batch numbers"):
        select_batches(plan, 1)


def test_select_batches_describes_gaps_left_by_hand_edits():
    plan = {"rows": [dict(record(number), batch=batch) for number, batch in enumerate([0, 1, 2, 5, 6])]}
    with pytest.raises(RecordsError, match=r"the plan has batches 0-2, 5-6$"):
        select_batches(plan, [3])


def test_100k_rows_written_and_read_back(tmp_path):
    path = str(tmp_path / "plan.json")
    records = [record(number, sku_id=E3 if number % 2 else EMS) for number in range(100000)]
    started = time.perf_counter()
    rows = assign_batches(records, canary_size=10, batch_size=500)
    outcome = write_plan(path, rows, dict(META, canary_size=10, batch_size=500))
    written = time.perf_counter()
    plan = read_plan(path)
    done = time.perf_counter()
    print("\n100k-row plan: %.1f MB, assign+write %.2f s, read+validate %.2f s" % (os.path.getsize(path) / 1e6, written - started, done - written))
    assert outcome["rows"] == 100000
    assert plan["batches"] == 1 + (100000 - 10 + 499) // 500
    assert len(select_batches(plan, [0])) == 10
    assert len(select_batches(plan, [200])) == 100000 - 10 - 199 * 500


@pytest.mark.parametrize(
    "meta, message",
    [
        (dict(META, canary_size=-1), "canary_size must be a whole number >= 0, got -1"),
        (dict(META, batch_size="500"), "batch_size must be a whole number >= 1, got '500'"),
        (dict(META, trusted_groups=["Licensing-E3"]), r"trusted_groups must be a list of group GUIDs, got \['Licensing-E3'\]"),
    ],
)
def test_write_plan_checks_meta(tmp_path, meta, message):
    with pytest.raises(RecordsError, match=message):
        write_plan(str(tmp_path / "plan.json"), [], meta)
    assert os.listdir(str(tmp_path)) == []


# ---- fingerprint -----------------------------------------------------------------------------------


def _rewrite(path, change):
    plan = json.load(open(path, encoding="utf-8"))
    change(plan)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(plan, stream)


@pytest.mark.parametrize(
    "change",
    [
        lambda plan: plan["rows"][0].update(user_principal_name="someone.else@contoso.com"),
        lambda plan: plan["rows"].append(dict(record(40), batch=1)),
        lambda plan: plan["rows"][4].update(batch=0),
        lambda plan: plan["rows"].pop(),
        lambda plan: plan.update(tenant_id="fabrikam.onmicrosoft.com"),
        lambda plan: plan.update(trusted_groups=[]),
    ],
    ids=["row changed", "row added", "batch number changed", "row removed", "another tenant", "other trusted groups"],
)
def test_a_changed_plan_has_another_fingerprint_and_is_refused(tmp_path, change):
    path = str(tmp_path / "plan.json")
    approved = write_plan(path, sample_rows(), META)["fingerprint"]
    _rewrite(path, change)
    for plan in (read_plan(path), scan_plan(path, lambda row: None)):
        assert plan["fingerprint"] == approved
        assert plan["content_fingerprint"] != approved
        with pytest.raises(RecordsError) as error:
            check_fingerprint(plan, approved, path)
        assert plan["content_fingerprint"] in str(error.value) and approved in str(error.value)
        assert "edited after it was written" in str(error.value)


def test_layout_key_order_guid_case_and_header_extras_do_not_change_the_fingerprint(tmp_path):
    path = str(tmp_path / "plan.json")
    approved = write_plan(path, sample_rows(), META)["fingerprint"]

    def reshape(plan):
        plan["created"] = "2030-01-01T00:00:00.000Z"
        plan["note"] = "approved in CHG0012345"
        plan["rows"][0]["user_id"] = "{%s}" % plan["rows"][0]["user_id"].upper()
        plan["rows"] = [dict(reversed(list(row.items()))) for row in plan["rows"]]

    _rewrite(path, reshape)
    # A plan whose header comes after its rows fingerprints the same in one streamed pass.
    plan = json.load(open(path, encoding="utf-8"))
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(dict([("rows", plan.pop("rows"))] + list(plan.items())), stream, indent=3)
    assert read_plan(path)["content_fingerprint"] == approved
    assert scan_plan(path, lambda row: None)["content_fingerprint"] == approved
    assert check_fingerprint(read_plan(path), approved.upper().replace("SHA256:", ""), path) == approved


@pytest.mark.parametrize("value", ["", "sha256:", "sha1:" + "a" * 64, "sha256:" + "g" * 64, "a" * 63, 42, None])
def test_a_malformed_approved_fingerprint_is_named(value):
    with pytest.raises(RecordsError) as error:
        normalize_fingerprint(value)
    assert repr(value) in str(error.value) and "64 hexadecimal digits" in str(error.value)
