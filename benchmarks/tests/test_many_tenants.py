"""Many tenants in one run (benchmarks/many_tenants.py), small: 3 tenants of 50 users, forks 2, one of them with a
wrong client secret and one in a throttling storm (every user assignLicense after the 20th answered 429, forever).

More tenants than forks, so the role runs its long tasks as background jobs. The good tenant must migrate completely
with an empty loss ledger and its own plan, journal and report; the two others must fail, each with its own reason,
without stopping the good one. About a minute.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import many_tenants  # noqa: E402


def test_a_failing_tenant_does_not_stop_the_others(tmp_path, capsys):
    out = tmp_path / "tenants.json"
    workdir = tmp_path / "run"
    argv = ["--tenants", "3", "--users", "50", "--forks", "2", "--bad-credential", "1", "--storm", "1", "--storm-skip", "20"]
    argv += ["--storm-max-retry-time", "10", "--workdir", str(workdir), "--out", str(out), "--quiet"]
    status = many_tenants.main(argv)
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    assert status == 0 and document["problems"] == [], printed
    tenants = dict((entry["host"], entry) for entry in document["per_tenant"])
    good, storm, bad = tenants["tenant01"], tenants["tenant02"], tenants["tenant03"]
    assert (good["role"], storm["role"], bad["role"]) == ("good", "storm", "bad_credential")

    # the good tenant: everything migrated, nothing lost, its own files naming only its users
    assert good["ok"] and good["recap"]["failed"] == 0
    assert good["direct_assignments_left"] == 0 and good["loss_ledger"] == 0
    assert good["plan_rows"] == 50 and good["journal_users"] == 50 and good["file_problems"] == []
    assert good["report_totals"]["migrated"] == 50
    assert good["throttled_429"] == 0 and good["early_retries"] == 0

    # the storm: removals stopped by 429s after max_retry_time, nothing lost, the reason names the 429
    assert not storm["ok"] and storm["faults_fired"] > 0 and storm["loss_ledger"] == 0
    assert "429" in storm["failure_reason"] and "max_retry_time" in storm["failure_reason"]
    assert 0 < storm["direct_assignments_left"] < 50

    # the wrong secret: stopped in preflight with Entra's error, nothing written to its tenant
    assert not bad["ok"] and bad["writes"] == 0 and bad["direct_assignments_left"] == 50
    assert "AADSTS7000215" in bad["failure_reason"] and "Preflight" in bad["failure_reason"]

    # background jobs ran (more hosts than forks), their orphans were reaped here; no secret in the log or the JSON
    log = (workdir / "ansible.log").read_text()
    assert "Remove - wait for the background job of batches 0, 1" in log
    assert document["orphans_reaped"] > 0 and document["controller_cpu_s"] > 0 and document["peak_rss_mb"] > 0
    assert "not-the-secret-of-tenant03" not in log + json.dumps(document)
    assert not list((workdir / "ansible-async").glob("*")), "background job results left behind"
