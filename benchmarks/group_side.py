#!/usr/bin/env python3
"""The group side of a migration at scale: every module the role runs before ``verify``, one process each.

    .venv/bin/python benchmarks/group_side.py --users 10000 100000 [--latency-ms 100] [--time-scale 1] [--out FILE]

The end-to-end run (``run.py --runs e2e``) covers these modules at up to 10,000 users; a whole
role run at 100,000 users would spend most of an hour in removals. This runs, on the generated
tenant (every user holds E3 directly, no licensing group), what the role's group, assign and wait
phases run, as separate module processes like Ansible's, and prints per module: HTTP requests,
Graph calls, writes, 429s, wall and CPU seconds, and peak RSS (VmHWM of the module process), so
the memory target ("any module under 300 MB at 100,000 users") is measured for them too.

Steps: ``sku_info``; ``licensing_group`` in check mode (the preflight: members resolved, nothing
written); ``licensing_group`` (creates the group, adds every direct holder of E3 as a member through
$batch); ``group_license`` (assigns E3 to the group); ``license_processing_wait`` (until Entra has
processed every member; the emulator processes at --processing-rate users per emulated second).
Budgets are on (Graph's), as in run.py; latency (its ``answer`` model) and time scale apply the same way
(see README.md), and
the writing steps pace themselves to Graph's write budget as the role has them do
(``migrate_direct_to_group_write_rate``).
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from graph_emulator import Emulator, generate_tenant  # noqa: E402

import bounds  # noqa: E402
from run import connection_args, graph_figures, latency_knobs, run_module  # noqa: E402

GROUP = "LIC E3 all"


def steps(sku, write_rate):
    group = {"name": GROUP, "description": "benchmark licensing group", "members_from_direct_sku": sku}
    return [
        ("sku_info", "sku_info", {"skus": [sku], "permissions_for": ["read", "group", "assign", "remove"]}),
        ("licensing_group (check mode)", "licensing_group", dict(group, _ansible_check_mode=True)),
        ("licensing_group", "licensing_group", dict(group, write_rate=write_rate)),
        ("group_license", "group_license", {"group": GROUP, "licenses": [{"sku": sku, "disabled_plans": []}], "write_rate": write_rate}),
        ("license_processing_wait", "license_processing_wait", {"groups": [GROUP], "wait_timeout": 7200, "poll_interval": 1}),
    ]


def bench(users, latency_ms, time_scale, processing_rate, workdir, log):
    tenant = generate_tenant(users=users, seed=7)
    sku = tenant["subscribedSkus"][0]["skuPartNumber"]
    rows = []
    with Emulator(tenant, throttling=True, time_scale=time_scale, processing_rate=processing_rate, **latency_knobs(latency_ms, time_scale)) as emu:
        emu.clear_ledger()
        # The role's pacing (migrate_direct_to_group_write_rate, Graph's 20 writes/s) in the emulator's time scale.
        for label, module, args in steps(sku, bounds.WRITE_RATE * time_scale):
            emu.reset_stats()
            figures = run_module(module, dict(connection_args(emu), **args), workdir)
            result = figures["result"]
            row = {
                "users": users,
                "step": label,
                "ok": not result.get("failed"),
                "wall_s": round(figures["wall_s"], 3),
                "wall_emulated_s": round(figures["wall_s"] * time_scale, 3),
                "cpu_s": round(figures["cpu_s"], 3),
                "peak_rss_mb": figures["peak_rss_mb"],
                "time_scale": time_scale,
                "latency_ms": latency_ms,
            }
            row.update(graph_figures(emu))
            if result.get("failed"):
                row["error"] = (result.get("msg") or "")[:500] + figures.get("stderr_tail", "")[-500:]
            for key in ("members_added", "members_total"):
                if key in result:
                    row[key] = result[key]
            rows.append(row)
            log(row)
            if result.get("failed"):
                break
        row_ledger = len(emu.loss_ledger())
        for row in rows:
            row["loss_ledger"] = row_ledger
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10000])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--processing-rate", type=float, default=1000.0, help="users Entra processes per emulated second")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    print(f"{'users':>7}  {'step':<30} {'http':>6} {'calls':>7} {'writes':>6} {'429':>4} {'wall s':>8} {'CPU s':>6} {'RSS MB':>7}")

    def log(row):
        print(
            f"{row['users']:>7,}  {row['step']:<30} {row['http_requests']:>6,} {row['graph_calls']:>7,} {row['writes']:>6,} "
            f"{row['throttled_429']:>4} {row['wall_s']:>8.1f} {row['cpu_s']:>6.1f} {row['peak_rss_mb']:>7.1f}"
            + ("" if row["ok"] else "  FAILED: " + row.get("error", "")[:200]),
            flush=True,
        )

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for users in args.users:
            rows.extend(bench(users, args.latency_ms, args.time_scale, args.processing_rate, workdir, log))
    out = args.out or os.path.join(HERE, "results", time.strftime("group-side-%Y%m%d-%H%M%S.json"))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"command": "group_side.py " + " ".join(argv if argv is not None else sys.argv[1:]), "runs": rows}, handle, indent=1, sort_keys=True)
    print("JSON:", out)
    return 0 if all(row["ok"] and row["loss_ledger"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
