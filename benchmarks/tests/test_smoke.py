"""Smoke run of the benchmark harness: 1,000 users, Graph's budgets on, a few seconds.

Keeps benchmarks/run.py working; it asserts correctness of the runs (everything safe removed,
no loss, no 429 thanks to client-side pacing), not performance figures.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import run  # noqa: E402


def test_read_and_write_runs_at_1000_users(tmp_path, capsys):
    out = tmp_path / "smoke.json"
    status = run.main(["--users", "1000", "--runs", "read", "write", "--time-scale", "10", "--latency-ms", "100", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    document = json.loads(out.read_text())
    runs = dict((entry["run"], entry) for entry in document["runs"])
    read, write = runs["read"], runs["write"]
    assert read["ok"] and write["ok"]
    # every user holds E3 directly and from a healthy licensing group: all are safe to remove
    assert read["summary"]["safe_to_remove"] == 1000
    assert read["graph_calls"] == read["minimum"]["graph_calls"]
    assert write["removed"] == write["planned"] == 1000 and write["failures"] == 0
    assert write["writes"] == 1000 and write["loss_ledger"] == 0
    assert write["throttled_429"] == 0 and write["early_retries"] == 0
    assert write["minimum"]["bound_kind"] == "writes" and write["minimum"]["write_bound_s"] == 50.0
    assert write["ratio_wall_bound"] > 0 and write["peak_rss_mb"] > 0
    assert "wall/bound" in printed and "JSON:" in printed


def test_group_side_at_1000_users(tmp_path, capsys):
    import group_side  # noqa: E402 (beside run.py)

    out = tmp_path / "group.json"
    status = group_side.main(["--users", "1000", "--time-scale", "10", "--latency-ms", "100", "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    rows = dict((row["step"], row) for row in json.loads(out.read_text())["runs"])
    assert list(rows) == ["sku_info", "licensing_group (check mode)", "licensing_group", "group_license", "license_processing_wait"]
    assert rows["licensing_group (check mode)"]["writes"] == 0
    # every direct holder of E3 joins the group, 20 per PATCH, paced: no 429
    assert rows["licensing_group"]["members_added"] == 1000 and rows["licensing_group"]["writes"] == 51
    assert all(row["throttled_429"] == 0 and row["loss_ledger"] == 0 and row["peak_rss_mb"] > 0 for row in rows.values())
    assert "license_processing_wait" in printed and "JSON:" in printed


def test_journal_reads_follow_parses_each_line_once(tmp_path, capsys):
    import journal_reads  # noqa: E402 (beside run.py)

    out = tmp_path / "journal.json"
    assert journal_reads.main(["--users", "2000", "--batch-size", "100", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["readings"] == 20 and document["removals"] == 2000
    # a run line, then an intent and a result per removal
    assert document["journal_lines"] == 4001
    assert document["new_lines_only"]["lines_parsed"] == document["journal_lines"]
    # the whole journal at every reading: sum over the readings of 1 + 200 * batches so far
    assert document["whole_journal_each_reading"]["lines_parsed"] == sum(1 + 200 * batch for batch in range(1, 21))
    assert "cpu_ratio" in capsys.readouterr().out


def test_ansible_overhead_measures_each_kind_of_task(tmp_path, capsys):
    import ansible_overhead  # noqa: E402 (beside run.py)

    out = tmp_path / "overhead.json"
    assert ansible_overhead.main(["--hosts", "2", "--forks", "2", "--tasks", "4", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    kinds = document["kinds"]
    assert sorted(kinds) == ["builtin_module", "collection_module", "controller"]
    for figures in kinds.values():
        assert figures["cpu_s_all_tasks"] > 0 and figures["wall_s_one_task"] > 0
    # a module task starts a process (a few hundred ms of CPU); a controller-only task does not (tens of ms, within
    # the noise at this size)
    for kind in ("builtin_module", "collection_module"):
        assert kinds[kind]["cpu_ms_per_task_and_host"] > 50
        assert kinds[kind]["cpu_ms_per_task_and_host"] > kinds["controller"]["cpu_ms_per_task_and_host"]
    assert "cpu_ms_per_task_and_host" in capsys.readouterr().out
