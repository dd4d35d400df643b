# -*- coding: utf-8 -*-
# Copyright (c) 2025, entraops contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""plan.PlanBuilder against the two-step path it replaces in license_assignment_info.

The reference is ``write_plan(path, assign_batches(records), meta)`` followed by
``write_planned_script`` over the same rows with their plan names: the builder must write the same
bytes (plan and script) and fail with the same message, whatever the records and their order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.entraops.licensing.plugins.module_utils import plan as plan_module
from ansible_collections.entraops.licensing.plugins.module_utils import powershell as powershell_module
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import powershell_quote
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    PLAN_ROW_FIELDS,
    LicensingInputError,
    assign_batches,
    normalize_guid,
)
from ansible_collections.entraops.licensing.plugins.module_utils.plan import PlanBuilder, read_plan
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import (
    PlannedRowText,
    planned_script_path,
    write_planned_script,
    write_planned_script_parts,
)
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError
from ansible_collections.entraops.licensing.tests.unit.plugins.module_utils.test_plan import spec_fingerprint

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"
GROUPS = ["0f6a8b2e-5b7c-4f5e-9d43-3c2b1a0f9e8d", "A0000000-0000-4000-8000-00000000000A"]
NAMES = {YAMMER: "YAMMER_ENTERPRISE"}  # TEAMS has no name: the id is written
CREATED = "2025-06-30T12:00:00.000Z"
GENERATED = "2025-06-30T12:00:01.000Z"


def meta(canary_size, batch_size):
    return {
        "tenant_id": "b1f3c0de-0000-4000-8000-000000000001",
        "trusted_groups": [GROUPS[0]],
        "canary_size": canary_size,
        "batch_size": batch_size,
        "created": CREATED,
        "scope_summary": {"safe_to_remove": 1},
    }


def reference(directory, records, canary_size, batch_size):
    """What license_assignment_info wrote before PlanBuilder: (plan bytes, script bytes) or the error message.

    The encoding of the rows and the script's text are the code as it was (original_plan_text,
    original_script_text below), not the functions PlanBuilder shares with write_plan.
    """
    path = os.path.join(_folder(directory, "reference"), "plan.json")
    try:
        rows = assign_batches(records, canary_size=canary_size, batch_size=batch_size)
        plan_text, written = original_plan_text(path, rows, meta(canary_size, batch_size))
        for row in rows:
            row["direct_disabled_plan_names"] = [NAMES.get(plan, plan) for plan in row.get("direct_disabled_plans") or []]
        script_text = original_script_text(rows, "plan.json", tenant_id="t", generated_at=GENERATED, fingerprint=written["fingerprint"])
    except (RecordsError, LicensingInputError) as exc:
        return str(exc).replace(path, "PLAN")
    return plan_text.encode("utf-8"), script_text.replace("\n", "\r\n").encode("utf-8-sig"), written


def original_plan_text(path, rows, meta):
    """write_plan's text before 2026-11-27 (one json.dumps per row), with the same validation."""
    meta = plan_module._checked_meta(meta)
    counts, batch_numbers = plan_module._check_rows(rows, "plan %s" % path)
    header = plan_module._header(meta, counts, len(batch_numbers))
    # The fingerprint (added 2026-12-07) as plan.py's docstring defines it, computed without the collection's code.
    header["fingerprint"] = spec_fingerprint(rows, meta)
    text = json.dumps(header, ensure_ascii=False, indent=1)[:-2] + ',\n "rows": ['
    for index, row in enumerate(rows):
        text += (",\n  " if index else "\n  ") + json.dumps(row, ensure_ascii=False, sort_keys=True)
    text += "\n ]\n}\n" if rows else "]\n}\n"
    return text, {"rows": len(rows), "batches": len(batch_numbers), "summary": header["summary"], "fingerprint": header["fingerprint"]}


ORIGINAL_ROW = """# {number} of {total}: {user}, {sku}; kept through group(s) {groups}; direct disabled plans: {disabled}
# Set-MgUserLicense -UserId {user_id} -AddLicenses @() -RemoveLicenses @({sku_id})
"""


def original_script_text(rows, plan_name, tenant_id=None, generated_at=None, fingerprint=None):
    """The planned-removals script's text as powershell.py wrote it before 2026-11-27."""
    rows = sorted(rows, key=lambda row: row.get("batch") if isinstance(row.get("batch"), int) else -1)
    per_batch = {}
    for row in rows:
        per_batch[row.get("batch")] = per_batch.get(row.get("batch"), 0) + 1
    parts = [
        powershell_module._PLANNED_HEADER.format(
            plan_name=_comment_text(plan_name),
            generated_at=_comment_text(generated_at),
            tenant=_comment_text(tenant_id or "not recorded"),
            total=len(rows),
            batches=len(per_batch),
            fingerprint=_comment_text(fingerprint or "not recorded"),
            notice=powershell_quote("This script only documents the planned removals of %s; it changes nothing." % plan_name),
        )
    ]
    current_batch = object()
    for number, row in enumerate(rows, start=1):
        if row.get("batch") != current_batch:
            current_batch = row.get("batch")
            parts.append(
                powershell_module._PLANNED_BATCH.format(batch=current_batch, canary=" (canary)" if current_batch == 0 else "", count=per_batch[current_batch])
            )
        user_id = normalize_guid(row.get("user_id"), "user id", error=LicensingInputError)
        sku_id = normalize_guid(row.get("sku_id"), "SKU id", error=LicensingInputError)
        disabled = row.get("direct_disabled_plan_names") or row.get("direct_disabled_plans") or []
        parts.append(
            ORIGINAL_ROW.format(
                number=number,
                total=len(rows),
                user=_comment_text(row.get("user_principal_name") or user_id),
                sku=_comment_text(row.get("sku_part_number") or sku_id),
                groups=_comment_text(", ".join(row.get("healthy_inherited_from") or []) or "none"),
                disabled=_comment_text(", ".join(disabled) or "none"),
                user_id=powershell_quote(user_id),
                sku_id=powershell_quote(sku_id),
            )
        )
    return "".join(parts)


def _comment_text(value):
    # The per-character definition the regex in powershell.py replaced (test_quoting_properties checks both).
    return "".join(" " if (ord(char) < 32 or char in "\x7f\x85\u2028\u2029") else char for char in str(value))


def built(directory, records, canary_size, batch_size):
    path = os.path.join(_folder(directory, "built"), "plan.json")
    try:
        builder = PlanBuilder(canary_size, batch_size, companion=PlannedRowText(NAMES, ids_checked=True))
        for record in records:
            builder.add(record)
        written = builder.write(path, meta=meta(canary_size, batch_size))
        write_planned_script_parts(
            builder.companions(), written["batch_sizes"], written["path"], tenant_id="t", generated_at=GENERATED, fingerprint=written["fingerprint"]
        )
    except (RecordsError, LicensingInputError) as exc:
        return str(exc).replace(path, "PLAN")
    return _read(path), _read(planned_script_path(path)), written


def _folder(directory, name):
    # Same file name in both, as the script's header names the plan file.
    folder = os.path.join(directory, name)
    if not os.path.isdir(folder):
        os.mkdir(folder)
    return folder


def _read(path):
    with open(path, "rb") as stream:
        return stream.read()


def same(directory, records, canary_size=2, batch_size=3):
    expected = reference(directory, [dict(record) for record in records], canary_size, batch_size)
    actual = built(directory, [dict(record) for record in records], canary_size, batch_size)
    if isinstance(expected, str):
        assert actual == expected
        return expected
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
    for key in ("rows", "batches", "summary", "fingerprint"):
        assert actual[2][key] == expected[2][key]
    return actual


guids = st.sampled_from([E3, EMS, E3.upper(), "{%s}" % EMS, " %s " % E3])
# Mostly distinct users (a plan that is written), sometimes a repeat or a bad id (a plan that fails).
user_ids = st.one_of(
    st.integers(0, 10**6).map(lambda number: "00000000-0000-4000-8000-%012d" % number),
    st.integers(0, 10**6).map(lambda number: "ABCDEF00-0000-4000-8000-%012d" % number),
    st.sampled_from(["not-a-guid", "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000001".upper()]),
)


@st.composite
def records(draw):
    record = {
        "user_id": draw(user_ids),
        "user_principal_name": draw(st.one_of(st.none(), st.text(alphabet="aAbB@.é\n\u2028\"'`$", min_size=0, max_size=6))),
        "sku_id": draw(guids),
        "sku_part_number": draw(st.one_of(st.none(), st.sampled_from(["ENTERPRISEPACK", "EMS", "ÉMS"]))),
        "verdict": draw(st.sampled_from(["safe_to_remove", "safe_to_remove", "safe_to_remove", "direct_only", "group_processing"])),
        "direct": draw(st.sampled_from([True, True, True, False, "yes"])),
        "direct_disabled_plans": draw(st.lists(st.sampled_from([YAMMER, TEAMS, TEAMS.upper()]), unique=True)),
        "inherited_from": draw(st.lists(st.sampled_from(GROUPS), unique=True)),
        "healthy_inherited_from": draw(st.lists(st.sampled_from(GROUPS), unique=True)),
        "plans_lost": [],
        "errors": draw(st.sampled_from([[], [], [], ["CountViolation"], [1]])),
        "reason": draw(st.text(max_size=8)),
        "usage_location": "DE",  # not a plan field: dropped by both
    }
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), max_size=25), st.integers(0, 4), st.integers(1, 4))
def test_builder_writes_what_write_plan_and_the_script_writer_write(tmp_path, records, canary_size, batch_size):
    outcome = same(str(tmp_path), records, canary_size, batch_size)
    event("fails" if isinstance(outcome, str) else "written")


def test_every_plan_row_field_sorts_after_batch():
    # PlanBuilder encodes a row with sort_keys and puts "batch" in front: right only while batch sorts first.
    assert all(field > "batch" for field in PLAN_ROW_FIELDS)


def plain(number, **changes):
    record = {
        "user_id": "00000000-0000-4000-8000-%012d" % number,
        "user_principal_name": "user%03d@contoso.com" % number,
        "sku_id": E3,
        "sku_part_number": "ENTERPRISEPACK",
        "verdict": "safe_to_remove",
        "direct": True,
        "direct_disabled_plans": [YAMMER],
        "inherited_from": [GROUPS[0]],
        "healthy_inherited_from": [GROUPS[0]],
        "plans_lost": [],
        "errors": [],
        "reason": "covered",
    }
    record.update(changes)
    return record


def test_a_larger_plan_is_identical_and_reads_back(tmp_path):
    records = [plain(number) for number in range(1200, 0, -1)] + [plain(7, verdict="direct_only", sku_id=EMS)]
    plan_bytes, script_bytes, written = same(str(tmp_path), records, canary_size=10, batch_size=500)
    assert written["batches"] == 4 and written["rows"] == 1200
    assert written["batch_sizes"] == {0: 10, 1: 500, 2: 500, 3: 190}
    plan = read_plan(str(tmp_path / "built" / "plan.json"))
    assert [row["user_principal_name"] for row in plan["rows"][:2]] == ["user001@contoso.com", "user002@contoso.com"]
    assert plan["rows"][10]["batch"] == 1 and plan["rows"][-1]["batch"] == 3
    assert script_bytes.startswith(b"\xef\xbb\xbf<#") and b"# 1200 of 1200: user999@contoso.com" in script_bytes


def test_a_repeated_user_and_sku_fails_with_the_rows_named(tmp_path):
    # 'other@' sorts between user001 and user002
    records = [plain(1), plain(2), plain(1, user_principal_name="other@contoso.com", user_id=plain(1)["user_id"].upper())]
    message = same(str(tmp_path), records)
    assert isinstance(message, str)
    assert message == "plan PLAN: row 2 (rows[1]) repeats user 00000000-0000-4000-8000-000000000001 and SKU %s of row 1" % E3


def test_a_bad_row_fails_before_anything_is_written(tmp_path):
    message = same(str(tmp_path), [plain(1), plain(2, sku_id="not-a-guid")])
    assert message == "plan PLAN: row 2 (rows[1]) sku_id 'not-a-guid' is not a GUID"
    assert not os.path.exists(str(tmp_path / "built" / "plan.json"))


def test_an_empty_plan(tmp_path):
    plan_bytes, script_bytes, written = same(str(tmp_path), [plain(1, verdict="direct_only")])
    assert written["rows"] == 0 and written["batches"] == 0 and written["batch_sizes"] == {}
    assert read_plan(str(tmp_path / "built" / "plan.json"))["rows"] == []


def test_sizes_are_checked_when_the_builder_is_made():
    with pytest.raises(LicensingInputError, match="batch_size"):
        PlanBuilder(10, 0)
    with pytest.raises(LicensingInputError, match="canary_size"):
        PlanBuilder(-1, 5)


def test_companions_need_the_plan_written_first():
    builder = PlanBuilder(1, 1, companion=len)
    builder.add(plain(1))
    with pytest.raises(RuntimeError):
        list(builder.companions())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records(), max_size=12))
def test_write_planned_script_still_writes_the_original_text(tmp_path, records):
    rows = [dict(record, batch=index % 3) for index, record in enumerate(records) if isinstance(record["user_id"], str)]
    path = str(tmp_path / "plan.json")
    try:
        expected = original_script_text([dict(row) for row in rows], "plan.json", tenant_id="t", generated_at=GENERATED)
    except LicensingInputError as exc:
        with pytest.raises(RecordsError, match="planned script row"):
            write_planned_script(rows, path, tenant_id="t", generated_at=GENERATED)
        event("fails")
        return
    write_planned_script(rows, path, tenant_id="t", generated_at=GENERATED)
    assert _read(planned_script_path(path)) == expected.replace("\n", "\r\n").encode("utf-8-sig")
    event("written")


def test_planned_row_text_is_the_row_text():
    row = plain(3, direct_disabled_plans=[YAMMER, TEAMS])
    text = PlannedRowText(NAMES)
    assert (
        text(row)
        == text(dict(row))
        == (
            ": user003@contoso.com, ENTERPRISEPACK; kept through group(s) %s; direct disabled plans: YAMMER_ENTERPRISE, %s\n"
            "# Set-MgUserLicense -UserId '00000000-0000-4000-8000-000000000003' -AddLicenses @() -RemoveLicenses @('%s')\n" % (GROUPS[0], TEAMS, E3)
        )
    )
    with pytest.raises(LicensingInputError, match="not-a-guid"):
        text(dict(row, user_id="not-a-guid"))
