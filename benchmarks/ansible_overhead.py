#!/usr/bin/env python3
"""What Ansible itself costs per task and host on this controller: the floor under many_tenants.py.

    .venv/bin/python benchmarks/ansible_overhead.py [--hosts 20] [--forks 10] [--tasks 20] [--out FILE.json]

Three playbooks on ``--hosts`` inventory hosts (local connection, the repository's ansible-core), ``--tasks``
tasks each, with ``--forks``, no Graph and no emulator:

* ``controller``: ``ansible.builtin.set_fact`` tasks, the kind of task that runs only on the controller (the
  role's records, facts, asserts and messages): a worker per host and task, no module process;
* ``builtin_module``: ``ansible.builtin.ping``: a worker plus a module process (AnsiballZ: the interpreter,
  ansible's module_utils from the payload's zip, the module);
* ``collection_module``: ``entraops.licensing.sku_info`` with an option value it refuses (``skus: []`` is
  allowed, so ``graph_url: not-a-url``), which fails at argument checking after importing everything a
  Graph module imports (msal, requests, the collection's module_utils): the start-up cost of each of the
  role's module processes before any HTTP.

Measured: wall of ansible-playbook and CPU (user + system) of its whole process tree; per task-host CPU and
wall per task = (run - the same playbook with one task) / (tasks - 1), so the playbook's start-up is out.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from results_file import emit  # noqa: E402

KINDS = {
    "controller": lambda index: {"ansible.builtin.set_fact": {"fact_%d" % index: "{{ inventory_hostname }}-%d" % index}},
    "builtin_module": lambda index: {"ansible.builtin.ping": {}},
    "collection_module": lambda index: {
        "entraops.licensing.sku_info": {
            "tenant_id": "00000000-0000-4000-8000-000000000001",
            "client_id": "00000000-0000-4000-8000-000000000002",
            "client_secret": "not-a-secret",
            "graph_url": "not-a-url",
        },
        "ignore_errors": True,
    },
}


def run_playbook(directory, kind, hosts, forks, tasks):
    inventory = os.path.join(directory, "inventory.json")
    with open(inventory, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "all": {
                    "hosts": dict(
                        ("tenant%02d" % (index + 1), {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}) for index in range(hosts)
                    )
                }
            },
            handle,
        )
    playbook = os.path.join(directory, "%s-%d.yml" % (kind, tasks))
    with open(playbook, "w", encoding="utf-8") as handle:
        json.dump([{"hosts": "all", "gather_facts": False, "tasks": [dict(name="task %d" % index, **KINDS[kind](index)) for index in range(tasks)]}], handle)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCAL_TEMP=os.path.join(directory, "tmp"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".venv", "collections"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, "-f", str(forks), playbook]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit("%s playbook failed (%d):\n%s" % (kind, completed.returncode, completed.stdout[-3000:]))
    if kind == "collection_module" and "graph_url" not in completed.stdout:
        raise SystemExit("sku_info did not refuse graph_url as expected:\n%s" % completed.stdout[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(hosts, forks, tasks):
    figures = {"hosts": hosts, "forks": forks, "tasks": tasks, "cpu_count": os.cpu_count(), "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="entraops-ansible-overhead-") as directory:
        for kind in KINDS:
            wall_one, cpu_one = run_playbook(directory, kind, hosts, forks, 1)
            wall_all, cpu_all = run_playbook(directory, kind, hosts, forks, tasks)
            figures["kinds"][kind] = {
                "wall_s_one_task": round(wall_one, 2),
                "wall_s_all_tasks": round(wall_all, 2),
                "cpu_s_all_tasks": round(cpu_all, 2),
                "wall_s_per_task": round((wall_all - wall_one) / (tasks - 1), 3),
                "cpu_ms_per_task_and_host": round(1000 * (cpu_all - cpu_one) / ((tasks - 1) * hosts), 1),
            }
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--out", help="JSON output (default: print only)")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.forks < 1 or args.tasks < 2:
        parser.error("--hosts and --forks must be at least 1 and --tasks at least 2, got %d, %d, %d" % (args.hosts, args.forks, args.tasks))
    figures = measure(args.hosts, args.forks, args.tasks)
    figures["command"] = "ansible_overhead.py --hosts %d --forks %d --tasks %d" % (args.hosts, args.forks, args.tasks)
    emit(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
