#!/usr/bin/env python3
"""Wall time, requests and peak memory of tenant_snapshot at a given tenant size.

    .venv/bin/python benchmarks/snapshot.py --users 10000 [100000] [--latency-ms 0] [--throttling] [--out FILE.json]

Per size: builds the benchmark tenant (tenants.py: every user holds E3 directly and inherits it from one of
ceil(N / 10,000) processed licensing groups, so every user carries two license assignment states and every
group 10,000 members), starts the emulator in this process and runs plugins/modules/tenant_snapshot.py as a
separate process with an args file, as Ansible does (run.ProcessRun: wall, CPU, VmHWM of the module process),
pseudonymised with a mapping file. Figures: the module's wall and CPU seconds, its peak RSS, its start-up
RSS (the same process failing its argument check: Python + Ansible + the client imported), the HTTP requests the
emulator received (a $batch is one) and per route, requests per user, the snapshot's size; then the snapshot
is loaded into a second emulator and its users and licensed groups are counted, as a check that it is whole.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from graph_emulator import Emulator  # noqa: E402
from graph_emulator.engine import Directory  # noqa: E402

import run as harness  # noqa: E402
import tenants  # noqa: E402

KEY = "benchmark-pseudonym-key-0123456789"


def bench(users, latency_ms, throttling, workdir, log):
    tenant, _facts = tenants.build_tenant(users)
    groups = sum(1 for group in tenant["groups"] if group["assignedLicenses"])
    startup = harness.run_module("tenant_snapshot", {"path": os.path.join(workdir, "never.json")}, workdir)
    with Emulator(tenant=tenant, port=0, throttling=throttling, latency_ms=latency_ms) as emu:
        del tenant
        emu.reset_stats()
        path, mapping = os.path.join(workdir, f"snapshot-{users}.json"), os.path.join(workdir, f"mapping-{users}.json")
        args = dict(harness.connection_args(emu), path=path, pseudonym_key=KEY, mapping_path=mapping)
        figures = harness.run_module("tenant_snapshot", args, workdir)
        result = figures["result"]
        stats = harness.graph_figures(emu)
    if result.get("failed"):
        raise SystemExit(f"tenant_snapshot failed at {users} users: {result.get('msg')} {figures.get('stderr_tail')}")
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    loaded = Directory(document)
    reloaded = {"users": loaded.user_count() if callable(getattr(loaded, "user_count", None)) else len(document["users"])}
    reloaded["licensed_groups"] = sum(1 for group in document["groups"] if group["assignedLicenses"])
    del document, loaded
    run = {
        "users": users,
        "licensed_groups": groups,
        "latency_ms": latency_ms,
        "throttling": throttling,
        "wall_s": round(figures["wall_s"], 2),
        "cpu_s": round(figures["cpu_s"], 2),
        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
        "startup_rss_mb": round(startup["peak_rss_mb"], 1),
        "http_requests": stats["http_requests"],
        "graph_calls": stats["graph_calls"],
        "by_route": stats["by_route"],
        "requests_per_user": round(stats["http_requests"] / float(users), 5),
        "module_requests": result["graph_requests"],
        "snapshot_mb": round(os.path.getsize(path) / 1048576.0, 1),
        "mapping_mb": round(os.path.getsize(mapping) / 1048576.0, 1),
        "snapshot_users": result["users"],
        "snapshot_groups": result["groups"],
        "reloaded": reloaded,
    }
    log(
        f"{users:>7} users: wall {run['wall_s']:.1f}s cpu {run['cpu_s']:.1f}s peak RSS {run['peak_rss_mb']:.0f} MB "
        f"(start-up {run['startup_rss_mb']:.0f} MB), {run['http_requests']} requests ({run['requests_per_user']} per user), "
        f"snapshot {run['snapshot_mb']} MB, reloaded {reloaded}"
    )
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10000])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request (default 0)")
    parser.add_argument("--throttling", action="store_true", help="enforce Graph's throttling budgets")
    parser.add_argument("--out", help="JSON file for the figures (default: printed only)")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as workdir:
        for users in args.users:
            runs.append(bench(users, args.latency_ms, args.throttling, workdir, print))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
        document = {
            "command": " ".join(["snapshot.py"] + [harness._portable(arg) for arg in (sys.argv[1:] if argv is None else argv)]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpu_count": os.cpu_count(),
            "runs": runs,
        }
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
    return runs


if __name__ == "__main__":
    main()
