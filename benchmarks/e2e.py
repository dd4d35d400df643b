"""End-to-end run: the migrate_direct_to_group role from preflight to report, through ansible-playbook.

The tenant is generate_tenant's (every user holds E3 directly, no licensing group): the role
creates the group from the direct holders, assigns it E3, waits for processing, verifies, runs
the canary and every batch (re-reading the tenant after each, as the role does) and writes the
report. Every module process goes through e2e/timed_python, which logs its wall time, so
``ansible_overhead_s = wall - time inside module processes``.
"""

import json
import os
import subprocess
import sys
import time

from graph_emulator import generate_tenant

import bounds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUR_MODULES = {"sku_info", "licensing_group", "group_license", "license_processing_wait", "license_assignment_info", "direct_license", "migration_report"}


def timed_interpreter(out_dir):
    """e2e/timed_python with this interpreter on its #! line (python -S: the wrapper needs the standard library only).

    Its own start-up counts as Ansible overhead, so it must not be more than a bare interpreter's: through
    ``#!/usr/bin/env python3`` a pyenv shim (a bash script) added ~0.17 s to every module process here.
    """
    with open(os.path.join(HERE, "e2e", "timed_python"), encoding="utf-8") as handle:
        body = handle.read().split("\n", 1)[1]
    path = os.path.join(out_dir, "timed_python")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("#!%s -S\n%s" % (sys.executable, body))
    os.chmod(path, 0o755)
    return path


def run_role(emu, facts, base, time_scale, workdir, log):
    users = facts["users"]
    emu.load_state(generate_tenant(users=users, seed=7))
    emu.configure(throttling=True, time_scale=time_scale)
    emu.clear_ledger()
    emu.reset_stats()
    out_dir = os.path.join(workdir, f"e2e-{users}")
    os.makedirs(out_dir, exist_ok=True)
    module_log = os.path.join(out_dir, "modules.jsonl")
    inventory = {
        "tenants": {
            "hosts": {
                "contoso": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": timed_interpreter(out_dir),
                    "entra_tenant_id": emu.tenant_id,
                    "entra_client_id": emu.client_id,
                    "entra_client_secret": emu.client_secret,
                    "entra_graph_url": emu.base_url,
                    "entra_authority_url": emu.authority_url,
                    "entra_ca_bundle": emu.ca_path,
                    "entra_write_rate": bounds.WRITE_RATE * time_scale,
                }
            }
        }
    }
    role_vars = {
        "migrate_direct_to_group_groups": [
            {
                "name": "LIC E3 all",
                "description": "benchmark licensing group",
                "members_from_direct_sku": facts["sku_part_number"],
                "licenses": [{"sku": facts["sku_part_number"], "disabled_plans": []}],
            }
        ],
        "migrate_direct_to_group_remove_batches": "all",
        "migrate_direct_to_group_canary_size": 10,
        "migrate_direct_to_group_batch_size": 500,
        "migrate_direct_to_group_wait_timeout": 3600,
        "migrate_direct_to_group_poll_interval": 1,
        "migrate_direct_to_group_output_dir": out_dir,
    }
    inventory_path = os.path.join(out_dir, "inventory.json")
    vars_path = os.path.join(out_dir, "vars.json")
    with open(inventory_path, "w", encoding="utf-8") as handle:
        json.dump(inventory, handle)
    with open(vars_path, "w", encoding="utf-8") as handle:
        json.dump(role_vars, handle)
    env = dict(
        os.environ,
        BENCH_REAL_PYTHON=sys.executable,
        BENCH_MODULE_LOG=module_log,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".venv", "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    started = time.perf_counter()
    completed = subprocess.run(
        [playbook, "-i", inventory_path, os.path.join(HERE, "e2e", "migrate.yml"), "-e", f"@{vars_path}"], env=env, capture_output=True, text=True, cwd=out_dir
    )
    wall = time.perf_counter() - started
    os.unlink(inventory_path)  # holds the client secret
    modules = []
    if os.path.exists(module_log):
        with open(module_log, encoding="utf-8") as handle:
            modules = [json.loads(line) for line in handle if line.strip()]
    inside = sum(entry["wall_s"] for entry in modules)
    inside_ours = sum(entry["wall_s"] for entry in modules if entry["module"] in OUR_MODULES)
    by_module = {}
    for entry in modules:
        slot = by_module.setdefault(entry["module"], {"runs": 0, "wall_s": 0.0, "peak_rss_mb": 0.0})
        slot["runs"] += 1
        slot["wall_s"] = round(slot["wall_s"] + entry["wall_s"], 3)
        slot["peak_rss_mb"] = round(max(slot["peak_rss_mb"], entry["peak_rss_mb"]), 1)
    direct_left = sum(1 for user in emu.export_state()["users"] if user.get("directLicenses"))
    run = dict(
        base,
        run="e2e",
        ok=completed.returncode == 0,
        wall_s=round(wall, 3),
        module_processes=len(modules),
        inside_modules_s=round(inside, 3),
        inside_our_modules_s=round(inside_ours, 3),
        ansible_overhead_s=round(wall - inside, 3),
        ansible_overhead_incl_builtin_modules_s=round(wall - inside_ours, 3),
        by_module=by_module,
        peak_rss_mb=max([entry["peak_rss_mb"] for entry in modules] or [0]),
        direct_assignments_left=direct_left,
        error=None if completed.returncode == 0 else (completed.stdout[-1500:] + completed.stderr[-500:]),
    )
    recap = [line for line in completed.stdout.splitlines() if "ok=" in line and "failed=" in line]
    run["play_recap"] = recap[-1].strip() if recap else None
    return run
