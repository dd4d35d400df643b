# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""migration_report module: options to files, errors before writing, never changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.entraops.licensing.plugins.modules import migration_report
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import run_module

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def write_reading(path, verdicts):
    records = [
        {
            "user_id": "00000000-0000-4000-8000-%012d" % number,
            "user_principal_name": "u%d@contoso.com" % number,
            "sku_id": SKU,
            "sku_part_number": "ENTERPRISEPACK",
            "verdict": verdict,
            "direct": verdict != "inherited_only",
            "inherited_from": ["4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0001"],
            "plans_lost": [],
            "errors": [],
        }
        for number, verdict in enumerate(verdicts)
    ]
    path.write_text(json.dumps({"summary": {}, "records": records}), encoding="utf-8")
    return str(path)


def test_writes_the_three_files_and_returns_the_totals(tmp_path):
    after = write_reading(tmp_path / "final.json", ["inherited_only", "inherited_only", "plans_would_be_lost"])
    phase = tmp_path / "phase-verify.json"
    phase.write_text(json.dumps({"phase": "verify", "status": "planned"}), encoding="utf-8")
    result, failed = run_module(
        migration_report.main,
        {
            "after_report_path": after,
            "phase_results": [str(phase)],
            "html_path": str(tmp_path / "r.html"),
            "json_path": str(tmp_path / "r.json"),
            "csv_path": str(tmp_path / "r.csv"),
        },
    )
    assert not failed, result
    assert result["changed"] is False
    assert result["totals"]["already_inherited"] == 2 and result["totals"]["skipped"] == 1
    assert result["skipped_by_verdict"] == {"plans_would_be_lost": 1}
    assert result["html_path"] == str(tmp_path / "r.html")
    assert "planned" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["phases"][0]["phase"] == "verify"


def test_check_mode_still_writes_the_report_and_says_so(tmp_path):
    result, failed = run_module(migration_report.main, {"html_path": str(tmp_path / "r.html"), "_ansible_check_mode": True})
    assert not failed and result["changed"] is False
    assert "dry run (check mode)" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_nothing_to_write_fails():
    result, failed = run_module(migration_report.main, {})
    assert failed and "html_path, json_path or csv_path" in result["msg"]


def test_missing_plan_fails_naming_it(tmp_path):
    result, failed = run_module(migration_report.main, {"plan_path": str(tmp_path / "nope.json"), "html_path": str(tmp_path / "r.html")})
    assert failed and "nope.json does not exist" in result["msg"]
    assert not (tmp_path / "r.html").exists()


def test_negative_max_rows_fails(tmp_path):
    result, failed = run_module(migration_report.main, {"html_path": str(tmp_path / "r.html"), "max_rows": -1})
    assert failed and "max_rows: got -1" in result["msg"]
