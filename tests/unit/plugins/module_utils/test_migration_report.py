# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The migration report: outcomes from plan + journal + readings, figures, escaping, files."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import os
import re

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import migration_report as mr
from ansible_collections.entraops.licensing.plugins.module_utils.journal import Journal
from ansible_collections.entraops.licensing.plugins.module_utils.plan import write_plan
from ansible_collections.entraops.licensing.plugins.module_utils.reports import RecordsError

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
GROUP = "4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0001"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"


def user_id(number):
    return "00000000-0000-4000-8000-%012d" % number


def record(number, verdict, direct=True, inherited=True, upn=None, plans_lost=(), errors=()):
    return {
        "user_id": user_id(number),
        "user_principal_name": upn or "user%02d@contoso.com" % number,
        "sku_id": SKU,
        "sku_part_number": "ENTERPRISEPACK",
        "verdict": verdict,
        "direct": direct,
        "direct_disabled_plans": [],
        "inherited_from": [GROUP] if inherited else [],
        "healthy_inherited_from": [GROUP] if inherited else [],
        "plans_lost": list(plans_lost),
        "errors": list(errors),
    }


@pytest.fixture
def run_files(tmp_path):
    """A run: 6 safe rows (canary 2, batches of 2), 1 losing SWAY, 1 nested; canary and batch 1 done, one failure in 1."""
    before = [record(n, "safe_to_remove") for n in range(6)]
    before.append(record(6, "plans_would_be_lost", plans_lost=["SWAY"]))
    before.append(record(7, "not_direct_member", inherited=False, upn="=cmd|calc <b>nested</b>@contoso.com"))
    rows = []
    for index, row in enumerate(r for r in before if r["verdict"] == "safe_to_remove"):
        rows.append(dict(row, batch=0 if index < 2 else 1 + (index - 2) // 2))
    rows.extend(dict(r, batch=None) for r in before if r["verdict"] != "safe_to_remove")
    plan_path = str(tmp_path / "plan.json")
    write_plan(plan_path, rows, {"tenant_id": "contoso.onmicrosoft.com", "trusted_groups": [GROUP], "canary_size": 2, "batch_size": 2})
    journal_path = str(tmp_path / "journal.jsonl")
    journal = Journal(journal_path)
    for number, outcome in ((0, "ok"), (1, "ok"), (2, "ok"), (3, "failed")):
        batch = 0 if number < 2 else 1
        op_id = journal.intent("remove_direct", user_id(number), "user%02d@contoso.com" % number, SKU, "ENTERPRISEPACK", [], batch=batch)
        journal.result(op_id, outcome, status=200 if outcome == "ok" else 400, error=None if outcome == "ok" else "Request_BadRequest")
    journal.close()
    after = [record(n, "inherited_only", direct=False) for n in range(3)]
    after += [record(n, "safe_to_remove") for n in range(3, 6)]
    after += before[6:]
    return {"plan_path": plan_path, "journal_path": journal_path, "before": before, "after": after, "dir": tmp_path}


def build(run_files, **overrides):
    arguments = dict(
        plan_path=run_files["plan_path"],
        journal_path=run_files["journal_path"],
        before_records=run_files["before"],
        after_records=run_files["after"],
        phase_results=[{"phase": "remove", "batch": 1, "status": "stopped"}],
        generated="2026-01-01T00:00:00.000Z",
    )
    arguments.update(overrides)
    return mr.build_report("Contoso <migration>", **arguments)


def test_outcomes_per_user_come_from_journal_and_final_reading(run_files):
    report = build(run_files)
    assert report["totals"] == {"migrated": 3, "already_inherited": 0, "pending": 2, "skipped": 2, "failed": 1, "restored": 0, "unknown": 0}
    assert report["skipped_by_verdict"] == {"not_direct_member": 1, "plans_would_be_lost": 1}
    lost = next(row for row in report["users"] if row["verdict"] == "plans_would_be_lost")
    assert lost["outcome"] == "skipped" and lost["reason"].endswith(": SWAY")
    assert [row["user_id"] for row in report["failures"]] == [user_id(3)]
    assert report["failures"][0]["reason"] == "failed Request_BadRequest"


def test_batch_figures_count_migrated_failed_and_pending_per_batch(run_files):
    figures = {item["batch"]: item for item in build(run_files)["batches"]}
    assert figures[0]["planned"] == 2 and figures[0]["migrated"] == 2
    assert (figures[1]["migrated"], figures[1]["failed"], figures[1]["runs"]) == (1, 1, 1)
    assert (figures[2]["migrated"], figures[2]["pending"]) == (0, 2)


def test_assignment_paths_before_and_after(run_files):
    paths = build(run_files)["assignment_paths"]
    assert paths["before"] == {"direct_only": 1, "both": 7, "inherited_only": 0}
    assert paths["after"] == {"direct_only": 1, "both": 4, "inherited_only": 3}


def test_rolled_back_removal_counts_as_failed_not_restored(tmp_path):
    journal = Journal(str(tmp_path / "j.jsonl"))
    remove = journal.intent("remove_direct", user_id(1), "u@contoso.com", SKU, "ENTERPRISEPACK", [SWAY], batch=0)
    restore = journal.intent("restore_direct", user_id(1), "u@contoso.com", SKU, "ENTERPRISEPACK", [SWAY], batch=0)
    journal.result(restore, "ok", status=200)
    journal.result(remove, "rolled_back", status=200, detail="plans lost")
    journal.close()
    report = mr.build_report("t", journal_path=str(tmp_path / "j.jsonl"), after_records=[record(1, "safe_to_remove")])
    assert report["totals"]["failed"] == 1 and report["totals"]["restored"] == 0


def test_intent_without_result_is_unknown(tmp_path):
    journal = Journal(str(tmp_path / "j.jsonl"))
    journal.intent("remove_direct", user_id(1), "u@contoso.com", SKU, "ENTERPRISEPACK", [], batch=0)
    journal.close()
    report = mr.build_report("t", journal_path=str(tmp_path / "j.jsonl"), after_records=[record(1, "safe_to_remove")])
    assert report["totals"]["unknown"] == 1 and len(report["failures"]) == 1


def test_html_escapes_tenant_values_and_loads_nothing_external(run_files):
    page = mr.render_html(build(run_files, phase_results=[{"phase": "preflight", "blockers": ["group <img src=x onerror=alert(1)>"]}]))
    assert "<b>nested</b>" not in page and "&lt;b&gt;nested&lt;/b&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Contoso &lt;migration&gt;" in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b|<[^>]*\s(src|href)=|@import|url\(", page)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)


def test_html_bars_carry_their_numbers(run_files):
    page = mr.render_html(build(run_files))
    assert 'id="batch-chart"' in page and 'id="paths-chart"' in page
    assert 'data-row="canary (0)" data-key="migrated" data-value="2"' in page
    assert 'data-row="after" data-key="inherited_only" data-value="3"' in page
    assert '<div class="card" id="total-migrated"><div class="n">3</div>' in page


def test_html_user_tables_are_bounded(run_files):
    page = mr.render_html(build(run_files), max_rows=1)
    assert "1 more in the CSV and JSON files." in page


def test_csv_has_one_row_per_user_and_neutralises_formulas(run_files):
    text = mr.render_csv(build(run_files))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8
    nested = next(row for row in rows if row["verdict"] == "not_direct_member")
    assert nested["user_principal_name"].startswith("'=cmd")
    assert {row["outcome"] for row in rows} == {"migrated", "pending", "skipped", "failed"}


def test_write_report_files_checks_every_path_before_writing(run_files):
    report = build(run_files)
    html_path = str(run_files["dir"] / "r.html")
    with pytest.raises(RecordsError, match="does not exist"):
        mr.write_report_files(report, html_path=html_path, csv_path=str(run_files["dir"] / "missing" / "r.csv"))
    assert not os.path.exists(html_path)


def test_write_report_files_writes_all_three(run_files):
    report = build(run_files)
    written = mr.write_report_files(report, str(run_files["dir"] / "r.html"), str(run_files["dir"] / "r.json"), str(run_files["dir"] / "r.csv"))
    assert sorted(written) == ["CSV report", "HTML report", "JSON report"]
    with open(written["JSON report"], encoding="utf-8") as stream:
        assert json.load(stream)["totals"]["migrated"] == 3
    with open(written["CSV report"], "rb") as stream:
        assert stream.read(3) == b"\xef\xbb\xbf"


def test_assignment_report_must_be_a_json_report(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RecordsError, match="expected the JSON report of license_assignment_info"):
        mr.load_assignment_report(str(path))


def test_phase_result_needs_a_phase_name(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"status": "ok"}', encoding="utf-8")
    with pytest.raises(RecordsError, match='"phase"'):
        mr.load_phase_results([str(path)])


def test_a_phase_result_file_may_hold_a_list_of_results(tmp_path):
    single, several = tmp_path / "verify.json", tmp_path / "remove.json"
    single.write_text('{"phase": "verify", "time": "2026-01-01T00:00:00Z"}', encoding="utf-8")
    several.write_text(
        '[{"phase": "remove", "batch": 1, "time": "2026-01-01T00:02:00Z"}, {"phase": "remove", "batch": 0, "time": "2026-01-01T00:01:00Z"}]', encoding="utf-8"
    )
    results = mr.load_phase_results([str(several), str(single)])
    assert [(item["phase"], item.get("batch")) for item in results] == [("verify", None), ("remove", 0), ("remove", 1)]
    assert [item["runs"] for item in mr.batch_figures({0: 5, 1: 5}, [], results)] == [1, 1]
    several.write_text('[{"phase": "remove"}, {"batch": 2}]', encoding="utf-8")
    with pytest.raises(RecordsError, match='remove.json.*"phase"'):
        mr.load_phase_results([str(several)])


def test_report_without_any_input_is_empty_but_valid():
    report = mr.build_report("t")
    assert report["batches"] == [] and report["users"] == []
    assert "No plan batches." in mr.render_html(report)


def test_migrated_users_who_gain_plans_are_counted(run_files):
    run_files["before"][0]["direct_disabled_plans"] = [SWAY]
    run_files["before"][3]["direct_disabled_plans"] = [SWAY]  # failed in the journal: not counted
    report = build(run_files)
    assert report["migrated_with_more_plans"] == 1
    assert 'id="more-plans">1 migrated user(s)' in mr.render_html(report)


def test_a_direct_copy_disabling_what_the_group_disables_gains_nothing(run_files):
    for number in (0, 1, 2):  # migrated, all three with SWAY disabled directly
        run_files["before"][number]["direct_disabled_plans"] = [SWAY]
        run_files["before"][number]["direct_enabled_plan_names"] = ["EXCHANGE_S_ENTERPRISE"]
    run_files["before"][0]["inherited_enabled_plan_names"] = ["EXCHANGE_S_ENTERPRISE", "SWAY"]  # the group enables SWAY
    run_files["before"][1]["inherited_enabled_plan_names"] = ["EXCHANGE_S_ENTERPRISE"]  # the group disables it too
    run_files["before"][2]["inherited_enabled_plan_names"] = ["EXCHANGE_S_ENTERPRISE"]
    assert build(run_files)["migrated_with_more_plans"] == 1
