#!/usr/bin/env python3
"""Where the read path's time goes: the emulator's CPU per request and the module's own CPU.

    .venv/bin/python benchmarks/read_profile.py --users 50000 [--latency-ms 100] [--profile module.prof] [--runs floor module]

Builds the benchmark tenant (tenants.py), starts the emulator in this process (throttling on,
Graph's budgets, latency) and runs, each as a child process:

* ``floor``: floor.py, the read path's minimum requests sent by a bare client;
* ``module``: license_assignment_info over every holder of the SKU with report and plan, as
  run.py's ``read`` run (optionally under cProfile: ``--profile PATH`` writes its stats).

For each it prints wall seconds, the child's CPU seconds (os.wait4) and this process's CPU seconds
meanwhile, which is the emulator's (the harness does nothing else while the child runs), per
request and per user page of 999. Wall times are noisy on a shared machine; CPU seconds much less.
One JSON document on stdout.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from graph_emulator import Emulator  # noqa: E402

import bounds  # noqa: E402
import run as harness  # noqa: E402
import tenants  # noqa: E402


def own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(emu, action):
    """(result of action(), figures) with the emulator's CPU and requests while it ran."""
    emu.reset_stats()
    cpu_before, started = own_cpu(), time.perf_counter()
    result = action()
    wall, emulator_cpu = time.perf_counter() - started, own_cpu() - cpu_before
    stats = emu.stats()
    requests = stats.get("http_requests") or 0
    user_pages = (stats.get("by_route") or {}).get("GET /v1.0/users", {}).get("count", 0)
    return result, {
        "wall_s": round(wall, 3),
        "emulator_cpu_s": round(emulator_cpu, 3),
        "http_requests": requests,
        "user_pages": user_pages,
        "emulator_cpu_ms_per_request": round(1000 * emulator_cpu / requests, 1) if requests else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--runs", nargs="+", choices=("floor", "module"), default=["floor", "module"])
    parser.add_argument("--profile", help="run the module under cProfile and write its stats here")
    parser.add_argument("--keep", help="directory for the module's report, plan and script (default: a temporary one)")
    args = parser.parse_args(argv)
    tenant, facts = tenants.build_tenant(args.users)
    report = {
        "users": args.users,
        "latency_ms": args.latency_ms,
        "load_average": os.getloadavg(),
        "bound_s": bounds.read_path_minimum(facts, args.latency_ms / 1000.0)["bound_s"],
    }
    with (
        Emulator(tenant=tenant, throttling=True, **harness.latency_knobs(args.latency_ms, 1.0)) as emu,
        tempfile.TemporaryDirectory(prefix="entraops-read-profile-") as scratch,
    ):
        workdir = args.keep or scratch
        os.makedirs(workdir, exist_ok=True)
        state = emu.export_state()
        if "floor" in args.runs:
            harness.reset(emu, tenant, 1.0, args.latency_ms, state)
            env = dict(harness.bench_env(emu), BENCH_SKU_ID=facts["sku_id"], BENCH_GROUP_IDS=",".join(g["id"] for g in facts["licensed_groups"]))
            figures, graph = measured(emu, lambda: harness.ProcessRun([sys.executable, os.path.join(HERE, "floor.py")], env=env).run())
            report["floor"] = dict(graph, client_cpu_s=round(figures["cpu_s"], 3))
        if "module" in args.runs:
            harness.reset(emu, tenant, 1.0, args.latency_ms, state)
            module_args = dict(
                harness.connection_args(emu),
                skus=[facts["sku_part_number"]],
                report_path=os.path.join(workdir, "report.csv"),
                plan_path=os.path.join(workdir, "plan.json"),
                replace_plan=True,
                canary_size=10,
                batch_size=500,
            )
            args_path = os.path.join(workdir, "args.json")
            with open(args_path, "w", encoding="utf-8") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
            argv = [sys.executable]
            if args.profile:
                argv += ["-m", "cProfile", "-o", os.path.abspath(args.profile)]
            argv += [os.path.join(harness.MODULES, "license_assignment_info.py"), args_path]
            env = dict(os.environ, PYTHONHASHSEED="0")
            figures, graph = measured(emu, lambda: harness.ProcessRun(argv, env=env).run())
            os.unlink(args_path)  # holds the client secret
            try:
                result = json.loads(figures["stdout"].strip().splitlines()[-1])
            except (ValueError, IndexError):
                result = {"failed": True, "stderr": figures["stderr"][-1500:]}
            report["module"] = dict(
                graph,
                module_cpu_s=round(figures["cpu_s"], 3),
                peak_rss_mb=figures["peak_rss_mb"],
                ok=not result.get("failed"),
                summary=result.get("summary"),
                error=result.get("msg") or result.get("stderr"),
            )
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
