#!/usr/bin/env python3
"""Performance benchmarks of entraops.licensing against the Graph emulator with Graph's budgets on.

    .venv/bin/python benchmarks/run.py --users 1000 10000 --runs read write baseline

Per tenant size: builds a tenant (benchmarks/tenants.py), starts the emulator in this process
(throttling on, Graph's real budgets, latency, time scale), and runs each requested task as a
separate process: ``read`` (license_assignment_info over every holder of the SKU, writing the
report and plan), ``write`` (direct_license over that plan), ``baseline`` (benchmarks/baselines/
ms_sample.py on a fresh copy of the same tenant), ``e2e`` (the role through ansible-playbook,
see e2e.py). Prints a table and writes JSON (see README.md for every field and for how the time
scale applies).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from graph_emulator import Emulator  # noqa: E402

import bounds  # noqa: E402
import tenants  # noqa: E402

ROOT = os.path.dirname(HERE)
MODULES = os.path.join(ROOT, "plugins", "modules")
RUNS = ("read", "write", "baseline", "e2e")


class ProcessRun:
    """Wall time, CPU time and peak RSS of one child process (os.wait4 gives that child's own rusage)."""

    def __init__(self, argv, env=None, stdout_path=None, cwd=None):
        self.argv = argv
        self.env = env
        self.stdout_path = stdout_path
        self.cwd = cwd

    def run(self):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            process = subprocess.Popen(self.argv, stdout=out, stderr=err, env=self.env, cwd=self.cwd)
            peak = HighWaterMark(process.pid)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            peak.stop()
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        # ru_maxrss of a child includes the RSS of the parent it was forked from (Linux keeps the old
        # mm's high-water mark across exec), and this parent holds the emulator's tenant: use VmHWM.
        return {
            "returncode": process.returncode,
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": peak.megabytes,
            "ru_maxrss_mb": usage.ru_maxrss / 1024.0,
            "stdout": stdout,
            "stderr": stderr,
        }


class HighWaterMark:
    """Polls /proc/PID/status VmHWM (peak RSS of the process image after exec) until stopped."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.kilobytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            self.kilobytes = max(self.kilobytes, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()

    @property
    def megabytes(self):
        return round(self.kilobytes / 1024.0, 1)


def connection_args(emu):
    return {
        "tenant_id": emu.tenant_id,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "graph_url": emu.base_url,
        "authority_url": emu.authority_url,
        "ca_bundle": emu.ca_path,
        "timeout": 120,
        "max_retry_time": 3600,
    }


def run_module(name, args, workdir):
    """Run plugins/modules/<name>.py as Ansible runs it (args file with ANSIBLE_MODULE_ARGS); its result and process figures."""
    args_path = os.path.join(workdir, f"{name}.args.json")
    with open(args_path, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONHASHSEED="0")
    figures = ProcessRun([sys.executable, os.path.join(MODULES, f"{name}.py"), args_path], env=env).run()
    os.unlink(args_path)  # holds the client secret
    try:
        figures["result"] = json.loads(figures["stdout"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        figures["result"] = {"failed": True, "msg": "no JSON result", "stderr_tail": figures["stderr"][-2000:]}
    del figures["stdout"]
    figures["stderr_tail"] = figures.pop("stderr")[-1000:]
    return figures


def module_startup_seconds(workdir):
    """Wall time of a module process that imports everything and fails on its argument check (no Graph call)."""
    samples = []
    for _ in range(3):
        figures = run_module("license_assignment_info", {"tenant_id": "x", "client_id": "y", "access_token": "z"}, workdir)
        samples.append(figures["wall_s"])
    return min(samples)


def graph_figures(emu):
    stats = emu.stats()
    by_route = {route: entry["count"] for route, entry in sorted(stats.get("by_route", {}).items())}
    return {
        "http_requests": stats.get("http_requests"),
        "graph_calls": stats.get("total"),
        "batch_items": stats.get("batch_items"),
        "by_route": by_route,
        "by_status": stats.get("by_status"),
        "resource_units": stats.get("resource_units"),
        "writes": stats.get("writes"),
        "throttled_429": stats.get("throttled"),
        "early_retries": stats.get("early_retries"),
    }


def finish(run, emu, figures, minimum, time_scale, startup_s):
    """Add graph figures, emulated wall, bound and ratios to ``run``."""
    run.update(graph_figures(emu))
    run["wall_s"] = round(figures["wall_s"], 3)
    run["wall_emulated_s"] = round(figures["wall_s"] * time_scale, 3)
    run["cpu_s"] = round(figures["cpu_s"], 3)
    run["peak_rss_mb"] = round(figures["peak_rss_mb"], 1)
    run["ru_maxrss_mb"] = round(figures["ru_maxrss_mb"], 1)
    run["minimum"] = minimum
    bound = minimum["bound_s"]
    run["ratio_wall_bound"] = round(run["wall_emulated_s"] / bound, 3) if bound else None
    # Process start-up (Python + Ansible module imports) is not Graph work: the read target allows it.
    net = max(0.0, figures["wall_s"] - startup_s) * time_scale
    run["ratio_wall_minus_startup_bound"] = round(net / bound, 3) if bound else None
    run["ratio_calls_minimum"] = round(run["graph_calls"] / minimum["graph_calls"], 3) if minimum["graph_calls"] else None
    run["ratio_http_minimum"] = round(run["http_requests"] / minimum["http_requests"], 3) if minimum["http_requests"] else None
    run["loss_ledger"] = len(emu.loss_ledger())
    return run


LATENCY_MODELS = ("answer", "added")


def latency_knobs(latency_ms, time_scale, model="answer"):
    """Emulator settings for ``latency_ms`` (emulated) per Graph request, in the emulator's wall clock.

    ``answer`` (default): every request is answered ``latency`` after it arrived, the emulator's own
    work inside it (``answer_time_ms``), which is what the latency bound assumes of Graph; ``added``:
    the latency is added to the emulator's own work (``latency_ms``; the model before 2026-11-27).
    """
    if model not in LATENCY_MODELS:
        raise ValueError("latency model: got %r, expected one of %s" % (model, ", ".join(LATENCY_MODELS)))
    wall_ms = latency_ms / time_scale
    return {"latency_ms": wall_ms if model == "added" else 0.0, "answer_time_ms": wall_ms if model == "answer" else 0.0}


def reset(emu, tenant, time_scale, latency_ms, state=None, latency_model="answer"):
    emu.load_state(state if state is not None else tenant)
    emu.configure(throttling=True, time_scale=time_scale, **latency_knobs(latency_ms, time_scale, latency_model))
    emu.clear_ledger()
    emu.reset_stats()


def bench_size(users, wanted, time_scale, latency_ms, workdir, log, latency_model="answer", budgets_left=(1.0,)):
    runs = []
    started = time.perf_counter()
    tenant, facts = tenants.build_tenant(users)
    latency_s = latency_ms / 1000.0
    with Emulator(tenant=tenant, throttling=True, time_scale=time_scale, **latency_knobs(latency_ms, time_scale, latency_model)) as emu:
        initial_state = emu.export_state()
        log(f"[{users:,} users] tenant ready in {time.perf_counter() - started:.1f}s")
        startup_s = module_startup_seconds(workdir)
        base = {"users": users, "time_scale": time_scale, "latency_ms": latency_ms, "latency_model": latency_model, "module_startup_s": round(startup_s, 3)}
        plan_path = os.path.join(workdir, f"plan-{users}.json")
        report_path = os.path.join(workdir, f"report-{users}.csv")
        plan_rows = None
        if "read" in wanted or "write" in wanted:
            reset(emu, tenant, time_scale, latency_ms, initial_state, latency_model)
            args = dict(
                connection_args(emu),
                skus=[facts["sku_part_number"]],
                report_path=report_path,
                plan_path=plan_path,
                replace_plan=True,
                canary_size=10,
                batch_size=500,
            )
            figures = run_module("license_assignment_info", args, workdir)
            result = figures["result"]
            run = dict(base, run="read", ok=not result.get("failed"), summary=result.get("summary"), error=result.get("msg"))
            finish(run, emu, figures, bounds.read_path_minimum(facts, latency_s), time_scale, startup_s)
            add_floor(run, emu, facts, tenant, time_scale, latency_ms, initial_state)
            runs.append(run)
            log(_line(run))
            plan_rows = (result.get("summary") or {}).get("safe_to_remove")
        if "write" in wanted and plan_rows:
            for left in budgets_left:
                run = bench_write(emu, base, facts, plan_path, plan_rows, workdir, time_scale, latency_s, startup_s, left, initial_state)
                runs.append(run)
                log(_line(run))
        if "baseline" in wanted:
            reset(emu, tenant, time_scale, latency_ms, initial_state, latency_model)
            figures = ProcessRun([sys.executable, os.path.join(HERE, "baselines", "ms_sample.py")], env=bench_env(emu)).run()
            try:
                summary = json.loads(figures["stdout"].strip().splitlines()[-1])
            except (ValueError, IndexError):
                summary = {"error": figures["stderr"][-1000:]}
            run = dict(base, run="baseline", ok=figures["returncode"] == 0, summary=summary, removed=summary.get("removed"))
            removals = plan_rows if plan_rows else summary.get("removed") or 0
            finish(run, emu, figures, bounds.write_path_minimum(facts, removals, latency_s), time_scale, 0.0)
            run["throttled_share_of_writes"] = round(run["throttled_429"] / max(1, run["writes"]), 4)
            runs.append(run)
            log(_line(run))
        if "e2e" in wanted:
            import e2e  # only needs ansible-playbook when asked for

            reset(emu, tenant, time_scale, latency_ms, initial_state, latency_model)
            run = e2e.run_role(emu, facts, base, time_scale, workdir, log)
            finish_e2e(run, emu, facts, latency_s, time_scale)
            runs.append(run)
            log(_line(run))
    compare(runs)
    return runs


def bench_write(emu, base, facts, plan_path, plan_rows, workdir, time_scale, latency_s, startup_s, budget_left, initial_state):
    """direct_license over the whole plan with its default options, the write budget ``budget_left`` full at the start.

    Refused requests are charged (the emulator's default, as Graph does). The only option given is
    the write rate when the emulated clock runs faster than the wall clock: the default (20 per
    second, Graph's budget) times the time scale.
    """
    journal_path = os.path.join(workdir, f"journal-{base['users']}-{budget_left}.jsonl")
    emu.load_state(initial_state)
    emu.configure(throttling=True, write_budget_left=budget_left)  # fresh budgets, as for a task started later
    emu.clear_ledger()
    emu.reset_stats()
    args = dict(connection_args(emu), state="absent", plan_path=plan_path, journal_path=journal_path)
    if time_scale != 1:
        args["write_rate"] = bounds.WRITE_RATE * time_scale
    figures = run_module("direct_license", args, workdir)
    emu.configure(write_budget_left=1.0)
    result = figures["result"]
    run = dict(
        base,
        run="write",
        write_budget_left=budget_left,
        charge_refused=emu.config()["charge_refused"],
        ok=not result.get("failed"),
        removed=result.get("removed_total", len(result.get("removed") or [])),
        planned=plan_rows,
        failures=result.get("failures_total", len(result.get("failures") or [])),
        error=result.get("msg"),
        graph=result.get("graph"),
    )
    finish(run, emu, figures, bounds.write_path_minimum(facts, plan_rows, latency_s), time_scale, startup_s)
    run["throttled_share_of_writes"] = round(run["throttled_429"] / max(1, run["writes"]), 4)
    return run


def bench_env(emu):
    return dict(
        os.environ,
        BENCH_GRAPH_URL=emu.base_url,
        BENCH_TENANT_ID=emu.tenant_id,
        BENCH_CLIENT_ID=emu.client_id,
        BENCH_CLIENT_SECRET=emu.client_secret,
        BENCH_CA_PATH=emu.ca_path,
    )


def add_floor(run, emu, facts, tenant, time_scale, latency_ms, state):
    """What a bare client needs for the read path's minimum requests on this emulator (floor.py)."""
    env = dict(bench_env(emu), BENCH_SKU_ID=facts["sku_id"], BENCH_GROUP_IDS=",".join(g["id"] for g in facts["licensed_groups"]))
    figures = ProcessRun([sys.executable, os.path.join(HERE, "floor.py")], env=env).run()
    try:
        floor = json.loads(figures["stdout"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        run["floor"] = {"error": figures["stderr"][-500:]}
        return
    floor["wall_emulated_s"] = round(floor["wall_s"] * time_scale, 3)
    run["floor"] = floor
    net = max(0.0, run["wall_s"] - run["module_startup_s"])
    run["ratio_wall_minus_startup_floor"] = round(net / floor["wall_s"], 3) if floor["wall_s"] else None


def finish_e2e(run, emu, facts, latency_s, time_scale):
    run.update(graph_figures(emu))
    run["wall_emulated_s"] = round(run["wall_s"] * time_scale, 3)
    run["loss_ledger"] = len(emu.loss_ledger())


def compare(runs):
    """ours / baseline for requests and wall time (the write path does the baseline's job)."""
    by_kind = dict((run["run"], run) for run in runs)
    ours, baseline = by_kind.get("write"), by_kind.get("baseline")
    if not ours or not baseline:
        return
    for name in ("http_requests", "graph_calls", "wall_s"):
        if baseline.get(name):
            ours["vs_baseline_" + name] = round(ours[name] / baseline[name], 4)


def _line(run):
    return (
        f"[{run['users']:,} users] {run['run']:8s} ok={run.get('ok')} wall={run.get('wall_s')}s "
        f"(emulated {run.get('wall_emulated_s')}s) bound={run.get('minimum', {}).get('bound_s')}s "
        f"ratio={run.get('ratio_wall_bound')} http={run.get('http_requests')} calls={run.get('graph_calls')} "
        f"429={run.get('throttled_429')} rss={run.get('peak_rss_mb')}MB {run.get('error') or ''}"
    )


COLUMNS = (
    ("users", "users", "{:,}"),
    ("run", "run", "{}"),
    ("http", "http_requests", "{:,}"),
    ("calls", "graph_calls", "{:,}"),
    ("min calls", "min_calls", "{:,}"),
    ("RU", "resource_units", "{:,}"),
    ("writes", "writes", "{:,}"),
    ("429", "throttled_429", "{:,}"),
    ("wall s", "wall_s", "{:.1f}"),
    ("emul. s", "wall_emulated_s", "{:.1f}"),
    ("bound s", "bound_s", "{:.1f}"),
    ("wall/bound", "ratio_wall_bound", "{:.2f}"),
    ("floor s", "floor_s", "{:.1f}"),
    ("RSS MB", "peak_rss_mb", "{:.0f}"),
    ("CPU s", "cpu_s", "{:.1f}"),
)


def table(runs):
    rows = []
    for run in runs:
        flat = dict(
            run,
            min_calls=(run.get("minimum") or {}).get("graph_calls"),
            bound_s=(run.get("minimum") or {}).get("bound_s"),
            floor_s=(run.get("floor") or {}).get("wall_emulated_s"),
        )
        rows.append([_cell(flat.get(key), fmt) for _, key, fmt in COLUMNS])
    header = [title for title, _, _ in COLUMNS]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(header, widths))]
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _cell(value, fmt):
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def parse_scales(values):
    """['10000=5', '2'] -> (default 2, {10000: 5})."""
    default, per_size = 1.0, {}
    for value in values or []:
        if "=" in value:
            size, scale = value.split("=", 1)
            per_size[int(size)] = float(scale)
        else:
            default = float(value)
    return default, per_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=["read", "write", "baseline"])
    parser.add_argument("--latency-ms", type=float, default=100.0, help="emulated Graph latency per request (default 100)")
    parser.add_argument(
        "--latency-model",
        choices=LATENCY_MODELS,
        default="answer",
        help="answer: Graph answers LATENCY after a request arrives, its work included (the bound's model; "
        "default); added: LATENCY on top of the emulator's own work",
    )
    parser.add_argument(
        "--time-scale", nargs="*", default=[], help="emulated seconds per wall second: one value, and/or SIZE=VALUE per tenant size (default 1)"
    )
    parser.add_argument(
        "--write-budget-left",
        type=float,
        nargs="+",
        default=[1.0],
        help="one write run per value: the share of Graph's write budget left when it starts (default 1: full; 0.01: nearly spent)",
    )
    parser.add_argument("--out", help="JSON output path (default benchmarks/results/run-<timestamp>.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    default_scale, per_size = parse_scales(args.time_scale)
    out = args.out or os.path.join(HERE, "results", time.strftime("run-%Y%m%dT%H%M%S.json"))
    log = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    all_runs = []
    with tempfile.TemporaryDirectory(prefix="entraops-bench-") as workdir:
        for users in args.users:
            all_runs.extend(
                bench_size(
                    users,
                    args.runs,
                    per_size.get(users, default_scale),
                    args.latency_ms,
                    workdir,
                    log,
                    latency_model=args.latency_model,
                    budgets_left=args.write_budget_left,
                )
            )
            _write(out, args, all_runs)
    print(table(all_runs))
    print(f"JSON: {out}")
    return 0 if all(run.get("ok") for run in all_runs) else 1


def _portable(arg):
    """An argument as another machine can repeat it: a path inside the repository relative to its root."""
    root = os.path.dirname(HERE)
    if os.path.isabs(arg) and os.path.abspath(arg).startswith(root + os.sep):
        return os.path.relpath(arg, root)
    return arg


def _write(path, args, runs):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    document = {
        "command": " ".join([os.path.basename(sys.argv[0])] + [_portable(arg) for arg in sys.argv[1:]]),
        "latency_ms": args.latency_ms,
        "latency_model": args.latency_model,
        "budgets": {"write_rate_per_s": bounds.WRITE_RATE, "write_bucket": bounds.WRITE_BUCKET, "ru_rate_per_s_over_500_users": bounds.ru_rate(1000)},
        "cpu_count": os.cpu_count(),
        "runs": runs,
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
