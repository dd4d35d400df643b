#!/usr/bin/env python3
"""Peak memory of the modules that grow with the tenant: direct_license over a whole plan, and migration_report.

    .venv/bin/python benchmarks/memory.py --users 10000 100000 [--workdir DIR] [--skip-write] [--out FILE.json]

Per tenant size: builds the benchmark tenant (tenants.py: every user holds E3 directly and inherits
it from a processed licensing group), starts the emulator in this process and runs, each as a
separate module process with an args file (as Ansible does, run.ProcessRun: VmHWM of the module
process, wall, CPU):

1. ``license_assignment_info``: the JSON report taken before the removals (the role's baseline) and
   the plan (canary 10, batches of 500);
2. ``direct_license`` over the WHOLE plan in one task (no ``batches``): every row is removed; then
   ``direct_license`` over the last batch only, with the journal of every removal (a late batch task of
   a migration run batch by batch, as the role runs it: it reads the whole plan and journal);
3. ``license_assignment_info``: the final reading (JSON), as the role's report phase takes it;
4. phase result files as the role writes them (preflight, group, assign, wait, verify, a ``remove``
   result per batch with its figures; one file each, which migration_report reads as it reads the
   role's one list per run);
5. ``migration_report`` over all of it (HTML, JSON and CSV).

Memory does not depend on time, so the emulator runs WITHOUT throttling and without latency
(``throttling=False``, ``latency_ms=0``, time scale 1) and direct_license gets no ``write_rate``:
wall times here are not comparable with run.py's. With ``--workdir`` the files are kept;
``--skip-write`` then reuses the plan, journal and reports of an earlier run and only runs
migration_report (no emulator). ``--collection-root`` runs another copy of the collection's modules
(for figures before a change: ``git archive <commit> | tar -x -C DIR/ansible_collections/entraops/licensing``).
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as harness  # noqa: E402
import tenants  # noqa: E402


def _module(name, args, workdir, log):
    figures = harness.run_module(name, args, workdir)
    result = figures["result"]
    summary = {
        "module": name,
        "ok": not result.get("failed"),
        "peak_rss_mb": figures["peak_rss_mb"],
        "wall_s": round(figures["wall_s"], 2),
        "cpu_s": round(figures["cpu_s"], 2),
    }
    if result.get("failed"):
        summary["error"] = result.get("msg")
        summary["stderr_tail"] = figures.get("stderr_tail")
    log(
        f"  {name:24s} ok={summary['ok']} VmHWM={summary['peak_rss_mb']:.1f} MB wall={summary['wall_s']:.1f}s "
        f"cpu={summary['cpu_s']:.1f}s {summary.get('error') or ''}"
    )
    return summary, result


def write_phase_files(prefix, plan_path, result):
    """Phase result files as roles/migrate_direct_to_group/tasks/record_phase.yml writes them; returns their paths."""
    with open(plan_path, encoding="utf-8") as handle:
        batches = json.load(handle)["batches"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    records = [
        {"phase": "preflight", "status": "ok", "detail": "0 blocker(s), 0 warning(s)", "blockers": [], "warnings": []},
        {"phase": "group", "status": "unchanged", "detail": "0 member(s) added", "members_added": 0},
        {"phase": "assign", "status": "unchanged", "detail": "0 group(s) changed"},
        {"phase": "wait", "status": "ok", "detail": "groups processed"},
        {"phase": "verify", "status": "ok", "detail": "plan written"},
    ]
    removed = (result or {}).get("removed_total", 0)
    for batch in range(batches):
        records.append(
            {
                "phase": "remove",
                "batch": batch,
                "status": "done",
                "detail": "%d removed" % (removed // max(1, batches)),
                "removed": removed // max(1, batches),
                "skipped_by_verdict": {},
                "failures": [],
                "reading_after": {"inherited_only": removed},
            }
        )
    paths = []
    for record in records:
        name = record["phase"] + ("-%04d" % record["batch"] if "batch" in record else "")
        path = f"{prefix}-phase-{name}.json"
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(dict(record, time=stamp + "Z", tenant="bench"), handle, indent=4)
            handle.write("\n")
        paths.append(path)
    return paths


def bench(users, workdir, skip_write, log):
    prefix = os.path.join(workdir, f"m{users}")
    paths = {"plan": prefix + "-plan.json", "baseline": prefix + "-baseline.json", "journal": prefix + "-journal.jsonl", "final": prefix + "-final.json"}
    runs = []
    write_result = None
    if not skip_write:
        from graph_emulator import Emulator

        started = time.perf_counter()
        tenant, facts = tenants.build_tenant(users)
        for path in (paths["journal"], prefix + "-journal.rollback.ps1"):
            if os.path.exists(path):
                os.unlink(path)
        with Emulator(tenant=tenant, throttling=False, time_scale=1.0, latency_ms=0) as emu:
            del tenant
            log(f"[{users:,} users] emulator ready in {time.perf_counter() - started:.1f}s (no throttling, no latency)")
            connection = harness.connection_args(emu)
            read_args = dict(
                connection,
                skus=[facts["sku_part_number"]],
                report_path=paths["baseline"],
                plan_path=paths["plan"],
                replace_plan=True,
                canary_size=10,
                batch_size=500,
                sample_size=0,
            )
            summary, _ = _module("license_assignment_info", read_args, workdir, log)
            runs.append(dict(summary, step="read_before"))
            summary, write_result = _module(
                "direct_license", dict(connection, state="absent", plan_path=paths["plan"], journal_path=paths["journal"]), workdir, log
            )
            summary["removed_total"] = write_result.get("removed_total")
            summary["failures"] = len(write_result.get("failures") or [])
            summary["loss_ledger"] = len(emu.loss_ledger())
            runs.append(dict(summary, step="write_whole_plan"))
            # A batch task late in a migration run batch by batch (as the role does): the plan and a journal of every
            # removal are read (pending writes, rollback script), the batch's rows are all found done already.
            with open(paths["plan"], encoding="utf-8") as handle:
                last_batch = json.load(handle)["batches"] - 1
            summary, batch_result = _module(
                "direct_license", dict(connection, state="absent", plan_path=paths["plan"], batches=[last_batch], journal_path=paths["journal"]), workdir, log
            )
            summary["skipped_by_verdict"] = batch_result.get("skipped_by_verdict")
            runs.append(dict(summary, step="write_last_batch"))
            final_args = dict(connection, skus=[facts["sku_part_number"]], report_path=paths["final"], sample_size=0)
            summary, _ = _module("license_assignment_info", final_args, workdir, log)
            runs.append(dict(summary, step="read_after"))
    phase_files = write_phase_files(prefix, paths["plan"], write_result or {"removed_total": users})
    report_args = {
        "title": f"Memory benchmark {users:,} users",
        "plan_path": paths["plan"],
        "journal_path": paths["journal"],
        "before_report_path": paths["baseline"],
        "after_report_path": paths["final"],
        "phase_results": phase_files,
        "rollback_script_path": prefix + "-journal.rollback.ps1",
        "html_path": prefix + "-report.html",
        "json_path": prefix + "-report.json",
        "csv_path": prefix + "-report.csv",
    }
    summary, result = _module("migration_report", report_args, workdir, log)
    summary["totals"] = result.get("totals")
    runs.append(dict(summary, step="report"))
    for run in runs:
        run["users"] = users
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10000])
    parser.add_argument("--workdir", help="keep the files here (default: a temporary directory, removed)")
    parser.add_argument("--skip-write", action="store_true", help="reuse the files of --workdir; run migration_report only")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument(
        "--collection-root",
        help="run the modules of another copy of the collection (a directory holding "
        "ansible_collections/entraops/licensing, e.g. `git archive` of an older commit): before/after figures",
    )
    args = parser.parse_args(argv)
    if args.collection_root:
        root = os.path.abspath(args.collection_root)
        harness.MODULES = os.path.join(root, "ansible_collections", "entraops", "licensing", "plugins", "modules")
        os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    if args.skip_write and not args.workdir:
        parser.error("--skip-write needs --workdir")
    log = lambda text: print(text, flush=True)  # noqa: E731
    runs = []
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        for users in args.users:
            runs.extend(bench(users, args.workdir, args.skip_write, log))
    else:
        with tempfile.TemporaryDirectory(prefix="entraops-memory-") as workdir:
            for users in args.users:
                runs.extend(bench(users, workdir, False, log))
    print("%8s  %-18s  %-24s  %10s  %8s  %8s" % ("users", "step", "module", "VmHWM MB", "wall s", "CPU s"))
    for run in runs:
        print("%8d  %-18s  %-24s  %10.1f  %8.1f  %8.1f" % (run["users"], run["step"], run["module"], run["peak_rss_mb"], run["wall_s"], run["cpu_s"]))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
                    "cpu_count": os.cpu_count(),
                    "emulator": {"throttling": False, "latency_ms": 0, "time_scale": 1},
                    "runs": runs,
                },
                handle,
                indent=1,
            )
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
