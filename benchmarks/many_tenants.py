#!/usr/bin/env python3
"""Many tenants in one run: the migrate_direct_to_group role on N emulated tenants, one inventory host each.

    .venv/bin/python benchmarks/many_tenants.py --tenants 20 --users 5000 --forks 10 [--time-scale 1]
        [--bad-credential 1] [--storm 1] [--out benchmarks/results/NAME.json]

Each tenant is its own emulator process (``graph-emulator serve``: its own tenant, its own app
registration and budgets, as a single-tenant app registration per customer tenant has), started
from this process, Graph's throttling budgets on, 100 ms answer time. One ``ansible-playbook``
runs ``many_tenants/migrate.yml`` (the collection's playbooks/migrate.yml plus the emulator's
connection settings) with ``--forks`` over an inventory of one host per tenant: the whole role,
preflight to report, every batch approved, as ``e2e.py`` runs it for one tenant.

Measured: wall time of ansible-playbook; controller CPU (user + system) of its whole process tree,
background jobs included (this process is the child subreaper of the run, so the jobs that
``async`` detaches are reaped here and their CPU counted; ``getrusage(RUSAGE_CHILDREN)``);
peak memory of the tree (RSS and PSS summed over its processes, sampled every 0.5 s from /proc);
each emulator's CPU apart (it plays Graph, not the controller); per tenant: Graph figures from
its emulator (writes, 429s, early retries, faults fired), its loss ledger, its files (plan,
journal, report: distinct, each naming only that tenant's users), its recap and failure reason.

Variants: ``--bad-credential K`` gives the last K tenants a wrong client secret; ``--storm K``
puts K other tenants in a throttling storm (every user assignLicense answered 429 after the
first ``--storm-skip`` ones, forever) with ``max_retry_time`` ``--storm-max-retry-time``. Those
tenants must fail with their reason; every other tenant must migrate with an empty loss ledger.

Bound (emulated seconds, per tenant, ``bounds.role_minimum``): the role's writes at Graph's 20
writes/s per app and tenant (group creation, member additions by 20, the group license, one
removal per user) plus Entra's group-license processing of every member (1,000 per s), which
must end before the first removal. Tenants have their own budgets, so the run's bound is the
largest tenant's. ``--time-scale S`` runs every emulator S times faster (budgets refill, group
processing, answer time) and the client's write rate is 20 x S; CPU is not scaled (README
"Time scale"), so ratios at S > 1 are pessimistic.
"""

import argparse
import ctypes
import json
import math
import os
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bounds  # noqa: E402

ROOT = os.path.dirname(HERE)
PLAYBOOK = os.path.join(HERE, "many_tenants", "migrate.yml")
SEED = 7
PROCESSING_RATE = 1000.0
PR_SET_CHILD_SUBREAPER = 36
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def become_subreaper(on=True):
    """Orphans of the run (background jobs detached by async_wrapper) are reparented to this process, not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


# --- emulators -------------------------------------------------------------------------------------------------


class Tenant:
    """One emulator process serving one tenant with its own app registration."""

    def __init__(self, index, users, workdir, time_scale, latency_ms):
        self.index = index
        self.host = "tenant%02d" % (index + 1)
        self.users = users
        self.seed = SEED + index
        self.dir = os.path.join(workdir, "emulators", self.host)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.info_path = os.path.join(self.dir, "info.json")
        self.log = open(os.path.join(self.dir, "emulator.log"), "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "graph_emulator.cli",
                "serve",
                "--port",
                "0",
                "--users",
                str(users),
                "--seed",
                str(self.seed),
                "--info-file",
                self.info_path,
                "--state-dir",
                os.path.join(self.dir, "state"),
                "--throttling",
                "--time-scale",
                str(time_scale),
                "--answer-time-ms",
                str(latency_ms / time_scale),
                "--processing-rate",
                str(PROCESSING_RATE),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONHASHSEED="0"),
        )
        self.info = None
        self.role = "good"
        self.expected_failure = None

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("emulator of %s exited with %s (see %s)" % (self.host, self.process.returncode, self.log.name))
            if os.path.exists(self.info_path):
                with open(self.info_path, encoding="utf-8") as handle:
                    self.info = json.load(handle)
                self._context = ssl.create_default_context(cafile=self.info["ca_path"])
                return
            time.sleep(0.2)
        raise RuntimeError("emulator of %s not ready in time" % self.host)

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.info["base_url"] + "/_emulator/" + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=self._context, timeout=120) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def cpu_seconds(self):
        return proc_cpu_seconds(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- /proc sampling of the run's process tree -------------------------------------------------------------------


def proc_stat(pid):
    """(ppid, state, cpu seconds, rss kB) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE_KB


def proc_cpu_seconds(pid):
    stat = proc_stat(pid)
    return stat[2] if stat else None


def proc_pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Peak RSS and PSS summed over this process's descendants except the emulators; reaps the run's orphans."""

    def __init__(self, excluded_pids, interval=0.5):
        self.excluded = set(excluded_pids)
        self.interval = interval
        self.protected = set()  # children another wait collects (ansible-playbook)
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0
        self.reaped = 0
        self.samples = 0
        self.protected_cpu_s = 0.0  # CPU of ansible-playbook's own process (the strategy), as last sampled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()  # a last pass reaps what ended meanwhile

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self):
        me = os.getpid()
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = proc_stat(int(name))
                if stat:
                    stats[int(name)] = stat
        children = {}
        for pid, (ppid, _, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        tree, queue = [], [pid for pid in children.get(me, []) if pid not in self.excluded]
        while queue:
            pid = queue.pop()
            tree.append(pid)
            queue.extend(children.get(pid, []))
        live = [pid for pid in tree if stats[pid][1] != "Z"]
        for pid in self.protected:
            if pid in stats:
                self.protected_cpu_s = max(self.protected_cpu_s, stats[pid][2])
        rss = sum(stats[pid][3] for pid in live)
        self.samples += 1
        if rss > self.peak_rss_kb:
            self.peak_rss_kb = rss
        self.peak_processes = max(self.peak_processes, len(live))
        if rss * 2 > self.peak_pss_kb:  # PSS <= RSS: only worth reading when it could be a new peak
            self.peak_pss_kb = max(self.peak_pss_kb, sum(proc_pss_kb(pid) for pid in live))
        for pid in children.get(me, []):
            if stats[pid][1] == "Z" and pid not in self.excluded and pid not in self.protected:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        self.reaped += 1
                except ChildProcessError:
                    pass


# --- the run ----------------------------------------------------------------------------------------------------


def inventory_for(tenants, time_scale, storm_max_retry_time, interpreter=None):
    hosts = {}
    for tenant in tenants:
        info = tenant.info
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": interpreter or sys.executable,
            "entra_tenant_id": info["tenant_id"],
            "entra_client_id": info["client_id"],
            "entra_client_secret": info["client_secret"] if tenant.role != "bad_credential" else "not-the-secret-of-" + tenant.host,
            "entra_graph_url": info["base_url"],
            "entra_authority_url": info["authority_url"],
            "entra_ca_bundle": info["ca_path"],
        }
        if time_scale != 1:
            # Graph's budget in the emulator's clock; at scale 1 nothing is passed and the defaults are measured.
            host["entra_write_rate"] = bounds.WRITE_RATE * time_scale
            host["migrate_direct_to_group_write_rate"] = bounds.WRITE_RATE * time_scale
        if tenant.role == "storm":
            host["entra_max_retry_time"] = storm_max_retry_time
        hosts[tenant.host] = host
    return {"tenants": {"hosts": hosts}}


def role_vars(out_dir, batch_size, background="auto"):
    extra = {} if background == "auto" else {"migrate_direct_to_group_background": background}
    return extra | {
        "migrate_direct_to_group_groups": [
            {
                "name": "LIC E3 all",
                "description": "benchmark licensing group",
                "members_from_direct_sku": "ENTERPRISEPACK",
                "licenses": [{"sku": "ENTERPRISEPACK", "disabled_plans": []}],
            }
        ],
        "migrate_direct_to_group_remove_batches": "all",
        "migrate_direct_to_group_canary_size": 10,
        "migrate_direct_to_group_batch_size": batch_size,
        "migrate_direct_to_group_wait_timeout": 3600,
        "migrate_direct_to_group_poll_interval": 1,
        "migrate_direct_to_group_output_dir": out_dir,
    }


def run_playbook(tenants, args, workdir, log):
    out_dir = os.path.join(workdir, "migration")
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    inventory_path = os.path.join(workdir, "inventory.json")
    vars_path = os.path.join(workdir, "vars.json")
    module_log = os.path.join(workdir, "modules.jsonl")
    interpreter = None
    if args.module_log:  # e2e's timing wrapper: one line per module process (name, wall, CPU, peak RSS)
        import e2e

        interpreter = e2e.timed_interpreter(workdir)
    fd = os.open(inventory_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the client secrets
    with os.fdopen(fd, "w") as handle:
        json.dump(inventory_for(tenants, args.time_scale, args.storm_max_retry_time, interpreter), handle)
    with open(vars_path, "w", encoding="utf-8") as handle:
        json.dump(role_vars(out_dir, args.batch_size, args.background), handle)
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "ansible-tmp"),
        ANSIBLE_ASYNC_DIR=os.path.join(workdir, "ansible-async"),
        BENCH_REAL_PYTHON=sys.executable,
        BENCH_MODULE_LOG=module_log,
        ANSIBLE_STRATEGY=args.strategy,
    )
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".venv", "collections"))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    argv = [playbook, "-i", inventory_path, "-f", str(args.forks), PLAYBOOK, "-e", "@" + vars_path]
    sampler = TreeSampler([tenant.process.pid for tenant in tenants])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = []
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=workdir, text=True, errors="replace")
    sampler.protected.add(process.pid)
    sampler.start()

    def read_output():  # each line with the second it was printed at: where the time went; task banners go to progress.log
        with open(os.path.join(workdir, "progress.log"), "w", encoding="utf-8") as progress:
            for line in process.stdout:
                lines.append((time.perf_counter() - started, line.rstrip("\n")))
                if line.startswith(("TASK [", "PLAY RECAP")):
                    progress.write("%8.1f %s" % (lines[-1][0], line))
                    progress.flush()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    _, status, _ = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    sampler.stop()
    text = "\n".join(line for _, line in lines)
    timed = "\n".join("%8.2f %s" % (second, line) for second, line in lines)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(inventory_path)
    modules = {}
    if os.path.exists(module_log):
        with open(module_log, encoding="utf-8") as handle:
            for line in handle:
                entry = json.loads(line)
                slot = modules.setdefault(entry["module"], {"runs": 0, "cpu_s": 0.0, "wall_s": 0.0, "peak_rss_mb": 0.0})
                slot["runs"] += 1
                slot["cpu_s"] = round(slot["cpu_s"] + entry["cpu_s"], 2)
                slot["wall_s"] = round(slot["wall_s"] + entry["wall_s"], 2)
                slot["peak_rss_mb"] = round(max(slot["peak_rss_mb"], entry["peak_rss_mb"]), 1)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log("ansible-playbook exited %s after %.1f s; controller CPU %.1f s" % (process.returncode, wall, cpu))
    return {
        "returncode": process.returncode,
        "wall_s": wall,
        "controller_cpu_s": cpu,
        "controller_user_s": after.ru_utime - before.ru_utime,
        "controller_system_s": after.ru_stime - before.ru_stime,
        "peak_rss_mb": sampler.peak_rss_kb / 1024.0,
        "peak_pss_mb": sampler.peak_pss_kb / 1024.0,
        "peak_processes": sampler.peak_processes,
        "main_process_cpu_s": sampler.protected_cpu_s,
        "by_module": modules,
        "orphans_reaped": sampler.reaped,
        "samples": sampler.samples,
        "output": text,
        "timed_output": timed,
        "task_seconds": task_seconds(lines),
        "out_dir": out_dir,
        "argv": argv,
    }


def task_seconds(lines):
    """Seconds from each TASK banner to the next, summed per task name (the longest first): where the wall time went."""
    spans, current, since = {}, None, 0.0
    for second, line in lines:
        if line.startswith(("TASK [", "PLAY RECAP")):
            if current:
                spans[current] = spans.get(current, 0.0) + second - since
            current, since = line[6 : line.find("]")] if line.startswith("TASK [") else None, second
    return dict(sorted(((name, round(value, 2)) for name, value in spans.items()), key=lambda pair: -pair[1]))


RECAP = re.compile(r"^(tenant\d+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")
FATAL = re.compile(r"^fatal: \[(tenant\d+)\]: FAILED! => (\{.*\})\s*$")


def parse_output(text):
    recaps, reasons = {}, {}
    for line in text.splitlines():
        match = RECAP.match(line)
        if match:
            keys = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
            recaps[match.group(1)] = dict(zip(keys, (int(value) for value in match.groups()[1:])))
            continue
        match = FATAL.match(line)
        if match:
            try:
                reasons[match.group(1)] = json.loads(match.group(2)).get("msg")
            except ValueError:
                reasons[match.group(1)] = match.group(2)[:500]
    return recaps, reasons


def scrub(text, secrets):
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def tenant_files(out_dir, host):
    names = {"plan": "%s-plan.json", "journal": "%s-journal.jsonl", "report": "%s-report.json", "report_html": "%s-report.html"}
    return dict((key, os.path.join(out_dir, pattern % host)) for key, pattern in names.items())


def check_files(tenant, files, user_ids):
    """The tenant's plan, journal and report exist and name only this tenant's users (and its tenant id)."""
    problems, figures = [], {}
    for key in ("plan", "journal", "report"):
        if not os.path.isfile(files[key]):
            problems.append("no %s at %s" % (key, files[key]))
    if problems:
        return problems, figures
    with open(files["plan"], encoding="utf-8") as handle:
        plan = json.load(handle)
    plan_users = [row.get("user_id") for row in plan.get("rows", [])]
    figures["plan_rows"] = len(plan_users)
    figures["plan_tenant_id"] = plan.get("tenant_id")
    foreign = [user for user in plan_users if user not in user_ids]
    if foreign or not plan_users:
        problems.append("plan has %d rows, %d of users not in this tenant" % (len(plan_users), len(foreign)))
    journal_users, journal_lines = set(), 0
    with open(files["journal"], encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                journal_lines += 1
                entry = json.loads(line)
                if entry.get("user_id"):
                    journal_users.add(entry["user_id"])
    figures["journal_lines"] = journal_lines
    figures["journal_users"] = len(journal_users)
    if journal_users - user_ids:
        problems.append("journal names %d users not in this tenant" % len(journal_users - user_ids))
    with open(files["report"], encoding="utf-8") as handle:
        report = json.load(handle)
    figures["report_totals"] = report.get("totals")
    report_text = json.dumps(report)
    if tenant.host not in report_text:
        problems.append("report does not name %s" % tenant.host)
    return problems, figures


def collect(tenants, run, facts_by_host, secrets):
    recaps, reasons = parse_output(run["output"])
    results = []
    for tenant in tenants:
        stats = tenant.control("GET", "stats")
        ledger = tenant.control("GET", "ledger").get("value", [])
        state = tenant.control("GET", "state")
        user_ids = set(user["id"] for user in state["users"])
        direct_left = sum(1 for user in state["users"] if user.get("directLicenses"))
        files = tenant_files(run["out_dir"], tenant.host)
        recap = recaps.get(tenant.host) or {}
        failed = bool(recap.get("failed")) or not recap
        entry = {
            "host": tenant.host,
            "role": tenant.role,
            "users": tenant.users,
            "ok": not failed,
            "recap": recap,
            "failure_reason": scrub(reasons.get(tenant.host) or "", secrets) if failed else None,
            "writes": stats.get("writes"),
            "http_requests": stats.get("http_requests"),
            "graph_calls": stats.get("total"),
            "throttled_429": stats.get("throttled"),
            "early_retries": stats.get("early_retries"),
            "faults_fired": stats.get("faults_fired"),
            "loss_ledger": len(ledger),
            "direct_assignments_left": direct_left,
            "emulator_cpu_s": round(tenant.cpu_seconds() or 0.0, 2),
            "minimum": facts_by_host[tenant.host],
        }
        if not failed:
            problems, figures = check_files(tenant, files, user_ids)
            entry.update(figures)
            entry["file_problems"] = problems
        results.append(entry)
    return results


def check_run(results, run):
    """What must hold: good tenants migrated with empty ledgers and separate files; bad ones failed with their reason."""
    problems = []
    seen_paths, plan_tenants = {}, {}
    for entry in results:
        host = entry["host"]
        if entry["loss_ledger"]:
            problems.append("%s: loss ledger has %d entries" % (host, entry["loss_ledger"]))
        if entry["role"] == "good":
            if not entry["ok"]:
                problems.append("%s: failed: %s" % (host, entry["failure_reason"]))
                continue
            if entry["direct_assignments_left"]:
                problems.append("%s: %d users still hold a direct assignment" % (host, entry["direct_assignments_left"]))
            problems.extend("%s: %s" % (host, problem) for problem in entry.get("file_problems", []))
            if entry.get("plan_tenant_id") in plan_tenants:
                problems.append("%s and %s have plans of the same tenant %s" % (host, plan_tenants[entry["plan_tenant_id"]], entry["plan_tenant_id"]))
            plan_tenants[entry.get("plan_tenant_id")] = host
            for key, path in tenant_files(run["out_dir"], host).items():
                real = os.path.realpath(path)
                if real in seen_paths:
                    problems.append("%s and %s share %s" % (host, seen_paths[real], path))
                seen_paths[real] = host
        else:
            if entry["ok"]:
                problems.append("%s (%s) did not fail" % (host, entry["role"]))
            elif not entry["failure_reason"] or entry["expected_failure"] not in entry["failure_reason"]:
                problems.append("%s (%s): failure reason %r does not say %r" % (host, entry["role"], entry["failure_reason"], entry["expected_failure"]))
    return problems


def tenant_minimum(users, latency_s):
    return bounds.role_minimum(users, PROCESSING_RATE, latency_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--users", type=int, default=5000, help="users per tenant (default 5000)")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=1.0, help="emulated seconds per wall second (default 1)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="emulated Graph answer time (default 100)")
    parser.add_argument("--batch-size", type=int, default=500, help="role batch size (default 500, the role's)")
    parser.add_argument(
        "--background",
        choices=("auto", "always", "never"),
        default="auto",
        help="migrate_direct_to_group_background (default: the role's default, auto; never shows the linear strategy's waves)",
    )
    parser.add_argument(
        "--strategy",
        choices=["linear", "free", "host_pinned"],
        default="linear",
        help="the play's strategy (ANSIBLE_STRATEGY; default linear, Ansible's): free lets each tenant go on without waiting for the others at every task",
    )
    parser.add_argument("--bad-credential", type=int, default=0, help="tenants (the last ones) given a wrong client secret")
    parser.add_argument("--storm", type=int, default=0, help="tenants (before the bad ones) in a throttling storm")
    parser.add_argument("--storm-skip", type=int, default=100, help="user assignLicense calls answered before the storm starts (default 100)")
    parser.add_argument("--storm-max-retry-time", type=int, default=60, help="max_retry_time of the storm tenants (default 60 s)")
    parser.add_argument("--module-log", action="store_true", help="time every module process (e2e's wrapper; adds ~20 ms each)")
    parser.add_argument("--workdir", help="keep the run's files here (default: a temporary directory, removed)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/many-tenants-<timestamp>.json)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.bad_credential + args.storm >= args.tenants:
        parser.error("at least one tenant must be a good one")
    log = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    out = args.out or os.path.join(HERE, "results", time.strftime("many-tenants-%Y%m%dT%H%M%S.json"))
    become_subreaper()
    workdir = args.workdir or tempfile.mkdtemp(prefix="entraops-tenants-")
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    tenants = []
    try:
        started = time.perf_counter()
        tenants = [Tenant(index, args.users, workdir, args.time_scale, args.latency_ms) for index in range(args.tenants)]
        deadline = time.monotonic() + 60 + args.tenants * args.users / 500.0
        for tenant in tenants:
            tenant.wait_ready(deadline)
        for tenant in tenants[args.tenants - args.bad_credential :]:
            tenant.role, tenant.expected_failure = "bad_credential", "AADSTS7000215"
        for tenant in tenants[args.tenants - args.bad_credential - args.storm : args.tenants - args.bad_credential]:
            tenant.role, tenant.expected_failure = "storm", "429"
            tenant.control(
                "POST",
                "faults",
                {"method": "POST", "route": "/users/[^/]+/assignLicense$", "status": 429, "retry_after": 1, "skip": args.storm_skip, "count": None},
            )
        emulator_cpu_before = dict((tenant.host, tenant.cpu_seconds() or 0.0) for tenant in tenants)
        for tenant in tenants:
            tenant.control("DELETE", "stats")
            tenant.control("DELETE", "ledger")
        log("%d emulators of %d users ready in %.1f s (time scale %s)" % (len(tenants), args.users, time.perf_counter() - started, args.time_scale))
        latency_s = args.latency_ms / 1000.0
        facts_by_host = dict((tenant.host, tenant_minimum(tenant.users, latency_s)) for tenant in tenants)
        run = run_playbook(tenants, args, workdir, log)
        secrets = [tenant.info["client_secret"] for tenant in tenants]
        results = collect(tenants, run, facts_by_host, secrets)
        for entry in results:
            entry["emulator_cpu_s"] = round(entry["emulator_cpu_s"] - emulator_cpu_before[entry["host"]], 2)
            entry["expected_failure"] = next(tenant.expected_failure for tenant in tenants if tenant.host == entry["host"])
        problems = check_run(results, run)
        document = summarize(args, run, results, problems)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
        with open(os.path.join(workdir, "ansible.log"), "w", encoding="utf-8") as handle:  # seconds from the start on each line
            handle.write(scrub(run["timed_output"], secrets) + "\n")
        print(table(document))
        for problem in problems:
            print("PROBLEM: " + problem)
        print("JSON: %s" % out)
        return 0 if not problems else 1
    finally:
        for tenant in tenants:
            tenant.stop()
        become_subreaper(False)  # a test process goes on without adopting others' orphans
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def summarize(args, run, results, problems):
    time_scale = args.time_scale
    good = [entry for entry in results if entry["role"] == "good"]
    bound = max(entry["minimum"]["bound_s"] for entry in good)
    write_bound = max(entry["minimum"]["write_bound_s"] for entry in good)
    wall_emulated = run["wall_s"] * time_scale
    tenants = len(results)
    return {
        "command": " ".join(["many_tenants.py"] + (sys.argv[1:] if argv_is_cli() else [])),
        "tenants": tenants,
        "users_per_tenant": args.users,
        "forks": args.forks,
        "time_scale": time_scale,
        "latency_ms": args.latency_ms,
        "batch_size": args.batch_size,
        "background": args.background,
        "strategy": args.strategy,
        "cpu_count": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "ansible_returncode": run["returncode"],
        "wall_s": round(run["wall_s"], 2),
        "wall_emulated_s": round(wall_emulated, 2),
        "largest_tenant_bound_s": bound,
        "largest_tenant_write_bound_s": write_bound,
        "ratio_wall_bound": round(wall_emulated / bound, 3),
        "target_ratio": 1.2,
        "controller_cpu_s": round(run["controller_cpu_s"], 1),
        "controller_user_s": round(run["controller_user_s"], 1),
        "controller_system_s": round(run["controller_system_s"], 1),
        "controller_cpu_s_per_tenant": round(run["controller_cpu_s"] / tenants, 2),
        "ansible_main_process_cpu_s": round(run["main_process_cpu_s"], 1),
        "by_module": run["by_module"],
        "controller_cpu_share_of_cores": round(run["controller_cpu_s"] / (run["wall_s"] * os.cpu_count()), 3),
        "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "peak_rss_mb_per_tenant": round(run["peak_rss_mb"] / tenants, 1),
        "peak_pss_mb": round(run["peak_pss_mb"], 1),
        "peak_pss_mb_per_tenant": round(run["peak_pss_mb"] / tenants, 1),
        "peak_processes": run["peak_processes"],
        "orphans_reaped": run["orphans_reaped"],
        "emulator_cpu_s": round(sum(entry["emulator_cpu_s"] for entry in results), 1),
        "throttled_429": sum(entry["throttled_429"] or 0 for entry in results),
        "throttled_429_good_tenants": sum(entry["throttled_429"] or 0 for entry in good),
        "loss_ledger_total": sum(entry["loss_ledger"] for entry in results),
        "task_seconds": dict(list(run["task_seconds"].items())[:25]),
        "tenants_ok": sum(1 for entry in results if entry["ok"]),
        "tenants_failed": [{"host": entry["host"], "role": entry["role"], "reason": entry["failure_reason"]} for entry in results if not entry["ok"]],
        "problems": problems,
        "per_tenant": results,
    }


def argv_is_cli():
    return bool(sys.argv and sys.argv[0].endswith("many_tenants.py"))


def table(document):
    lines = [
        "%d tenants x %d users, forks %d, strategy %s, background %s, time scale %s: wall %.1f s (emulated %.1f s), largest tenant bound %.1f s, ratio %.3f (target <= %.1f)"
        % (
            document["tenants"],
            document["users_per_tenant"],
            document["forks"],
            document.get("strategy", "linear"),
            document["background"],
            document["time_scale"],
            document["wall_s"],
            document["wall_emulated_s"],
            document["largest_tenant_bound_s"],
            document["ratio_wall_bound"],
            document["target_ratio"],
        ),
        "controller CPU %.1f s (%.2f s per tenant, %.0f %% of %d cores), peak RSS %.0f MB (%.1f MB per tenant), PSS %.0f MB (%.1f per tenant); emulators' CPU %.1f s"
        % (
            document["controller_cpu_s"],
            document["controller_cpu_s_per_tenant"],
            100 * document["controller_cpu_share_of_cores"],
            document["cpu_count"],
            document["peak_rss_mb"],
            document["peak_rss_mb_per_tenant"],
            document["peak_pss_mb"],
            document["peak_pss_mb_per_tenant"],
            document["emulator_cpu_s"],
        ),
        "%-9s %-15s %-4s %7s %6s %6s %5s %7s %6s %s" % ("host", "role", "ok", "writes", "429", "faults", "early", "ledger", "left", "reason"),
    ]
    for entry in document["per_tenant"]:
        lines.append(
            "%-9s %-15s %-4s %7s %6s %6s %5s %7s %6s %s"
            % (
                entry["host"],
                entry["role"],
                "yes" if entry["ok"] else "NO",
                entry["writes"],
                entry["throttled_429"],
                entry["faults_fired"],
                entry["early_retries"],
                entry["loss_ledger"],
                entry["direct_assignments_left"],
                (entry["failure_reason"] or "")[:110],
            )
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
