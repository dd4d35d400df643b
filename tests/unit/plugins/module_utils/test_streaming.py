# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Streaming reads and writes that keep memory flat in the number of users (issue 7, 100,000 users).

Each streamed path must give exactly what the whole-document path gives: JsonStream vs json.load,
scan_plan vs read_plan, JournalReader / iter_restorable / pending_states vs read_journal /
restorable / journal_state, write_migration_report vs write_report_files(build_report(...)).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils import migration_report as mr
from ansible_collections.entraops.licensing.plugins.module_utils.journal import (
    Journal,
    JournalReader,
    iter_restorable,
    journal_state,
    pending_states,
    read_journal,
    restorable,
)
from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan, scan_plan, write_plan
from ansible_collections.entraops.licensing.plugins.module_utils.powershell import write_rollback_script
from ansible_collections.entraops.licensing.plugins.module_utils.removal import SAMPLE_SIZE, RemovalEngine
from ansible_collections.entraops.licensing.plugins.module_utils.reports import JsonNotAnObject, JsonStream, RecordsError

SKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
GROUP = "4b1f6d52-0c55-4a3e-9a49-7b2f6a3c0001"
SWAY = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"


def user_id(number):
    return "00000000-0000-4000-8000-%012d" % number


def events(text, array_keys=("rows",), chunk_size=3):
    return list(JsonStream(io.StringIO(text), chunk_size=chunk_size).events(array_keys))


# ---- JsonStream ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 16])
def test_json_stream_gives_every_member_and_the_elements_one_by_one(chunk_size):
    document = {
        "format": "x",
        "number": 123456789,
        "float": -1.5e3,
        "rows": [{"a": [1, 2, {"b": 'c\\"]}'}]}, 7, "text ] }", None, []],
        "after": {"nested": [1, 2]},
        "unicode": "é ☃",
    }
    for text in (json.dumps(document), json.dumps(document, indent=3)):
        found = events(text, chunk_size=chunk_size)
        assert found[0] == ("value", "format", "x")
        assert found[1] == ("value", "number", 123456789)
        assert found[2] == ("value", "float", -1500.0)
        assert found[3] == ("start", "rows", None)
        assert [value for event, key, value in found if event == "item"] == document["rows"]
        assert ("end", "rows", None) in found
        assert found[-2:] == [("value", "after", {"nested": [1, 2]}), ("value", "unicode", "é ☃")]


def test_json_stream_empty_array_empty_object_and_non_array_member():
    assert events('{"rows": []}') == [("start", "rows", None), ("end", "rows", None)]
    assert events("{}") == []
    assert events('{"rows": {"a": 1}}') == [("value", "rows", {"a": 1})]
    assert events(' {"rows" : [ 1 , 2 ] } \n') == [("start", "rows", None), ("item", "rows", 1), ("item", "rows", 2), ("end", "rows", None)]


@pytest.mark.parametrize("text", ['{"rows": [1, 2', '{"rows": [1 2]}', '{"a": 1', '{"a": 1} extra', "{1: 2}", '{"a" 1}', ""])
def test_json_stream_refuses_what_is_not_well_formed(text):
    with pytest.raises(ValueError):
        events(text)


def test_json_stream_says_when_the_document_is_not_an_object():
    with pytest.raises(JsonNotAnObject):
        events("[1, 2]")


# ---- scan_plan -------------------------------------------------------------------------------------


def plan_rows(count):
    rows = []
    for number in range(count):
        rows.append(
            {
                "user_id": user_id(number).upper(),
                "user_principal_name": "u%d@contoso.com" % number,
                "sku_id": SKU,
                "sku_part_number": "ENTERPRISEPACK",
                "verdict": "safe_to_remove" if number % 5 else "not_direct_member",
                "direct": True,
                "direct_disabled_plans": [SWAY] if number % 3 == 0 else [],
                "inherited_from": [GROUP],
                "healthy_inherited_from": [GROUP],
                "plans_lost": [],
                "errors": [],
                "batch": (0 if number < 3 else 1 + number // 4) if number % 5 else None,
            }
        )
    return rows


def test_scan_plan_gives_the_rows_and_figures_read_plan_gives(tmp_path):
    path = str(tmp_path / "plan.json")
    write_plan(path, plan_rows(23), {"tenant_id": "contoso.onmicrosoft.com", "trusted_groups": [GROUP], "canary_size": 3, "batch_size": 4})
    rows = []
    header = scan_plan(path, rows.append)
    plan = read_plan(path)
    assert rows == plan["rows"]
    assert header.pop("batch_counts") == dict(
        sorted((batch, sum(1 for row in rows if row["batch"] == batch)) for batch in set(row["batch"] for row in rows if row["batch"] is not None))
    )
    del plan["rows"]
    assert header == plan


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda plan: plan["rows"].append(dict(plan["rows"][0])), "row 4 .* repeats user"),
        (lambda plan: plan["rows"][1].update(batch=-1), r"row 2 \(rows\[1\]\) batch must be"),
        (lambda plan: plan.update(format="other"), "is not a plan file: format is"),
        (lambda plan: plan.update(version=9), "has version 9"),
        (lambda plan: plan.update(rows={}), "rows must be a list, got dict"),
    ],
)
def test_scan_plan_refuses_what_read_plan_refuses(tmp_path, mutate, message):
    path = str(tmp_path / "plan.json")
    write_plan(path, plan_rows(3), {"canary_size": 1, "batch_size": 1})
    with open(path, encoding="utf-8") as stream:
        plan = json.load(stream)
    mutate(plan)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(plan, stream)
    for read in (read_plan, lambda plan_path: scan_plan(plan_path, lambda row: None)):
        with pytest.raises(RecordsError, match=message):
            read(path)


def test_scan_plan_of_a_file_that_is_not_json_or_missing(tmp_path):
    (tmp_path / "bad.json").write_text('{"rows": [', encoding="utf-8")
    with pytest.raises(RecordsError, match="not valid JSON"):
        scan_plan(str(tmp_path / "bad.json"), lambda row: None)
    with pytest.raises(RecordsError, match="does not exist"):
        scan_plan(str(tmp_path / "none.json"), lambda row: None)


# ---- journal ---------------------------------------------------------------------------------------


def busy_journal(path):
    """Removals with every outcome, a restore, a rolled-back removal, a removal again after a restore, a pending intent."""
    journal = Journal(path)
    outcomes = ("ok", "failed", "unknown", "ok", "rolled_back", "ok", None)
    for number, outcome in enumerate(outcomes):
        op_id = journal.intent(
            "remove_direct", user_id(number), "u%d@contoso.com" % number, SKU, "ENTERPRISEPACK", [SWAY] if number % 2 else [], batch=number // 2
        )
        if outcome:
            journal.result(op_id, outcome, status=200)
    restore_op = journal.intent("restore_direct", user_id(0), "u0@contoso.com", SKU, "ENTERPRISEPACK", [], batch=0)
    journal.result(restore_op, "ok", status=200)
    again = journal.intent("remove_direct", user_id(0), None, SKU, None, [SWAY], batch=5)
    journal.result(again, "ok", status=200)
    journal.close()
    return path


def test_streamed_journal_folds_give_what_the_whole_journal_gives(tmp_path):
    path = busy_journal(str(tmp_path / "j.jsonl"))
    entries = read_journal(path)["entries"]
    reader = JournalReader(path)
    count, rows = iter_restorable(reader)
    rows = list(rows)
    assert rows == restorable(entries) and count == len(rows) == 5
    assert reader.entries == len(entries) and reader.warnings == [] and not reader.truncated_last_line
    assert pending_states(JournalReader(path)) == [state for state in journal_state(entries).values() if state["pending"]]
    assert [state["user_id"] for state in pending_states(JournalReader(path))] == [user_id(6)]
    # journal_state keeps its documented shape: plain dicts, lists of plans.
    state = journal_state(JournalReader(path))[(user_id(1), SKU)]
    assert state.__class__ is dict and state["removed_disabled_plans"] == [SWAY] and "_removal_order" not in state  # a plain dict, not a subclass


def test_streamed_rollback_script_is_the_whole_list_script(tmp_path):
    path = busy_journal(str(tmp_path / "j.jsonl"))
    whole = write_rollback_script(restorable(read_journal(path)["entries"]), str(tmp_path / "a.ps1"), generated_at="t")
    total, rows = iter_restorable(JournalReader(path))
    streamed = write_rollback_script(rows, str(tmp_path / "b.ps1"), generated_at="t", total=total)
    assert whole["rows"] == streamed["rows"] == 5
    assert (tmp_path / "a.ps1").read_bytes() == (tmp_path / "b.ps1").read_bytes()


def test_a_bad_row_or_a_wrong_total_leaves_the_earlier_script(tmp_path):
    target = tmp_path / "r.ps1"
    target.write_text("earlier", encoding="utf-8")
    good = {"user_id": user_id(1), "sku_id": SKU, "disabled_plans": []}
    with pytest.raises(RecordsError, match="user_id"):
        write_rollback_script(iter([good, {"user_id": "nope", "sku_id": SKU}]), str(target), total=2)
    with pytest.raises(RecordsError, match="1 rows given, 2 announced"):
        write_rollback_script(iter([good]), str(target), total=2)
    assert target.read_text(encoding="utf-8") == "earlier"
    assert os.listdir(str(tmp_path)) == ["r.ps1"]


def test_journal_keeps_only_a_marker_for_answered_intents(tmp_path):
    journal = Journal(str(tmp_path / "j.jsonl"))
    answered = [journal.intent("remove_direct", user_id(number), None, SKU, None, []) for number in range(3)]
    for op_id in answered:
        journal.result(op_id, "ok")
    open_op = journal.intent("remove_direct", user_id(9), None, SKU, None, [])
    assert len(set(id(journal._intents[op_id]) for op_id in answered)) == 1
    assert journal.pending_op_ids() == [open_op]
    with pytest.raises(RecordsError, match="already has a result"):
        journal.result(answered[0], "ok")
    journal.close()


# ---- removal engine --------------------------------------------------------------------------------


def test_engine_keeps_a_sample_and_counts_unless_asked_for_all():
    class Catalog(object):
        pass

    row = {"user_id": user_id(1), "sku_id": SKU, "batch": 1}
    record = {"user_principal_name": "u@contoso.com", "sku_part_number": "E3", "direct_disabled_plans": [], "plans_lost": []}
    sampled = RemovalEngine(None, Catalog())
    everything = RemovalEngine(None, Catalog(), keep_all=True)
    for engine in (sampled, everything):
        for dummy in range(SAMPLE_SIZE + 5):
            engine._removed(row, record)
            engine._restored({"user": "u"})
    assert sampled.result()["removed_total"] == sampled.result()["restored_total"] == SAMPLE_SIZE + 5
    assert len(sampled.result()["removed"]) == len(sampled.result()["restored"]) == SAMPLE_SIZE
    assert len(everything.result()["removed"]) == SAMPLE_SIZE + 5


# ---- migration report ------------------------------------------------------------------------------


def reading(number, verdict, direct=True, inherited=True, plans_lost=(), disabled=False):
    return {
        "user_id": user_id(number),
        "user_principal_name": "user%02d@contoso.com" % number,
        "sku_id": SKU,
        "sku_part_number": "ENTERPRISEPACK",
        "verdict": verdict,
        "direct": direct,
        "direct_disabled_plans": [SWAY] if disabled else [],
        "direct_enabled_plan_names": ["EXCHANGE"] if disabled else ["EXCHANGE", "SWAY"],
        "inherited_enabled_plan_names": ["EXCHANGE", "SWAY"],
        "inherited_from": [GROUP] if inherited else [],
        "healthy_inherited_from": [GROUP] if inherited else [],
        "plans_lost": list(plans_lost),
        "errors": [],
    }


@pytest.fixture
def run_dir(tmp_path):
    before = [reading(n, "safe_to_remove", disabled=n % 2 == 0) for n in range(8)]
    before.append(reading(8, "plans_would_be_lost", plans_lost=["SWAY"]))
    before.append(reading(9, "not_direct_member", inherited=False))
    rows = [dict(row, batch=0 if index < 2 else 1 + (index - 2) // 3) for index, row in enumerate(before[:8])]
    rows += [dict(row, batch=None) for row in before[8:]]
    write_plan(str(tmp_path / "plan.json"), rows, {"canary_size": 2, "batch_size": 3})
    journal = Journal(str(tmp_path / "journal.jsonl"))
    for number, outcome in ((0, "ok"), (1, "ok"), (2, "ok"), (3, "failed"), (4, "unknown"), (5, None), (11, "ok")):
        op_id = journal.intent("remove_direct", user_id(number), "user%02d@contoso.com" % number, SKU, "ENTERPRISEPACK", [], batch=1)
        if outcome:
            journal.result(op_id, outcome, status=200, error=None if outcome == "ok" else "Err")
    journal.close()
    after = [reading(n, "inherited_only", direct=False) for n in (0, 1, 2)] + [reading(n, "safe_to_remove") for n in range(3, 8)] + before[8:]
    for name, records in (("before.json", before), ("after.json", after)):
        (tmp_path / name).write_text('{"summary": {}, "records": [\n%s\n]}\n' % ",\n".join(json.dumps(r) for r in records), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("readings", [("before", "after"), ("before",), ("after",), ()])
@pytest.mark.parametrize("max_rows", [500, 1])
def test_streamed_report_files_are_the_files_of_the_whole_report(run_dir, readings, max_rows):
    paths = dict((name, str(run_dir / (name + ".json"))) for name in readings)
    common = dict(
        plan_path=str(run_dir / "plan.json"),
        journal_path=str(run_dir / "journal.jsonl"),
        phase_results=[{"phase": "remove", "batch": 1, "status": "done", "blockers": ["x <y>"]}],
        generated="2026-01-01T00:00:00.000Z",
        rollback_script_path="r.ps1",
    )
    report = mr.build_report(
        "T <&>",
        before_records=mr.load_assignment_report(paths["before"]) if "before" in paths else None,
        after_records=mr.load_assignment_report(paths["after"]) if "after" in paths else None,
        **common,
    )
    whole = mr.write_report_files(report, str(run_dir / "a.html"), str(run_dir / "a.json"), str(run_dir / "a.csv"), max_rows=max_rows)
    summary, streamed = mr.write_migration_report(
        "T <&>",
        before_report_path=paths.get("before"),
        after_report_path=paths.get("after"),
        html_path=str(run_dir / "b.html"),
        json_path=str(run_dir / "b.json"),
        csv_path=str(run_dir / "b.csv"),
        max_rows=max_rows,
        **common,
    )
    for what in ("HTML report", "JSON report", "CSV report"):
        with open(whole[what], "rb") as first, open(streamed[what], "rb") as second:
            assert first.read() == second.read(), what
    assert "users" not in summary and summary["totals"] == report["totals"] and summary["failures"] == report["failures"]
    if readings:
        assert report["totals"]["failed"] + report["totals"]["unknown"] >= 2 and report["totals"]["skipped"] >= 1


def test_streamed_report_refuses_a_reading_that_is_not_one_and_writes_nothing(run_dir):
    (run_dir / "list.json").write_text("[1, 2]", encoding="utf-8")
    (run_dir / "cut.json").write_text('{"records": [{"a": 1}', encoding="utf-8")
    for name, message in (
        ("list.json", "expected the JSON report of license_assignment_info"),
        ("cut.json", "cannot be read as JSON"),
        ("none.json", "does not exist"),
    ):
        with pytest.raises(RecordsError, match=message):
            mr.write_migration_report("t", after_report_path=str(run_dir / name), html_path=str(run_dir / "r.html"))
        assert not (run_dir / "r.html").exists()
    assert sorted(os.listdir(str(run_dir))) == ["after.json", "before.json", "cut.json", "journal.jsonl", "list.json", "plan.json"]


# ---- direct_license plan rows ------------------------------------------------------------------------


def test_direct_license_keeps_only_what_the_engine_needs_of_the_chosen_batches(tmp_path):
    from ansible_collections.entraops.licensing.plugins.module_utils.plan import (  # pylint: disable=import-outside-toplevel
        REMOVAL_ROW_FIELDS,
        check_plan_tenant,
        read_removal_rows,
    )

    path = str(tmp_path / "plan.json")
    rows = plan_rows(23)
    rows.reverse()  # batches out of order in the file: rows come back batch by batch, file order within one
    written = write_plan(path, rows, {"tenant_id": "contoso.onmicrosoft.com", "trusted_groups": [GROUP], "canary_size": 3, "batch_size": 4})
    chosen, header = read_removal_rows(path, [2, 0], approved_fingerprint=written["fingerprint"])
    check_plan_tenant(header, "CONTOSO.onmicrosoft.com", path)
    plan = read_plan(path)
    expected = sorted((row for row in plan["rows"] if row["verdict"] == "safe_to_remove" and row["batch"] in (0, 2)), key=lambda row: row["batch"])
    assert chosen == [dict((field, row.get(field)) for field in REMOVAL_ROW_FIELDS) for row in expected]
    assert header["trusted_groups"] == [GROUP]
    assert header["content_fingerprint"] == written["fingerprint"]
    everything, dummy = read_removal_rows(path, None)
    assert [row["user_id"] for row in everything] == [
        row["user_id"] for row in sorted((row for row in plan["rows"] if row["verdict"] == "safe_to_remove"), key=lambda row: row["batch"])
    ]
    with pytest.raises(RecordsError, match="batch 99 is not in the plan; the plan has batches 0-"):
        read_removal_rows(path, [99])
    with pytest.raises(RecordsError, match="was made for tenant contoso.onmicrosoft.com"):
        check_plan_tenant(header, "fabrikam.onmicrosoft.com", path)
    with pytest.raises(RecordsError, match="is not the approved plan"):
        read_removal_rows(path, [0], approved_fingerprint="sha256:" + "0" * 64)


def test_an_empty_plan_is_nothing_to_do_whatever_batches_are_asked(tmp_path):
    from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_removal_rows  # pylint: disable=import-outside-toplevel

    path = str(tmp_path / "plan.json")
    write_plan(path, [], {"tenant_id": "contoso.onmicrosoft.com", "canary_size": 3, "batch_size": 4})
    assert read_removal_rows(path, [0, 1])[0] == []
    assert read_removal_rows(path, None)[0] == []
    with pytest.raises(RecordsError, match="batches must be whole numbers"):
        read_removal_rows(path, ["0"])
