"""Smoke run of benchmarks/snapshot.py: 2,000 users, a few seconds. Keeps the script working; asserts the snapshot is
whole and read in bulk, not performance figures."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import snapshot  # noqa: E402


def test_snapshot_bench_at_2000_users(tmp_path, capsys):
    out = tmp_path / "snapshot.json"
    runs = snapshot.main(["--users", "2000", "--out", str(out)])
    assert "2000 users" in capsys.readouterr().out
    document = json.loads(out.read_text())
    assert document["runs"] == runs and document["command"].startswith("snapshot.py --users 2000")
    run = runs[0]
    assert run["snapshot_users"] == run["reloaded"]["users"] == 2000
    assert run["reloaded"]["licensed_groups"] == run["licensed_groups"] == 1
    # organization, SKUs, groups, one $batch of first member pages, 2 further member pages, 3 user pages
    assert run["http_requests"] == 9, run["by_route"]
    assert run["peak_rss_mb"] > run["startup_rss_mb"] > 0
