# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The role end to end (playbooks/migrate.yml and rollback.yml) against the emulator, under faults and at -vvvv.

* Secrets: the whole role, every phase and every batch, then the rollback playbook, at ``-vvvv``
  with a distinctive client secret; no output, log or file holds it (nor any JWT), and the files
  the role writes with user data are readable by their owner only.
* Faults: a 429 storm (top level and inside ``$batch``), removals refused with 503 and applied
  but answered 504; the role stops on its failure budget; the same command run again finishes.
* Kill: ansible-playbook and its module SIGKILLed in the middle of the removal; the same
  command run again finishes; the rollback playbook restores exactly what was removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.entraops.licensing.tests.reliability.campaign import (
    ASSIGN_LICENSE_ROUTE,
    build_tenant,
    direct_state,
    holders_of_direct_e3,
    inherited_e3_healthy,
    reset,
    split_ledger,
    unresolved_intents,
    wait_until_quiet,
)
from ansible_collections.entraops.licensing.tests.reliability.test_secrets_and_transport import CLIENT_SECRET, JWT, files_under, permissions

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# Minutes each (ansible-playbook runs every phase): on demand with scripts/reliability, not in CI.
pytestmark = pytest.mark.role
ROLE_USERS = 120
HOST = "contoso"
GROUP = "LIC E3 role campaign"


class RoleRun:
    """An inventory (one tenant host, its connection in host variables), the role's variables and its output folder."""

    def __init__(self, emu, folder, secret=None):
        self.emu = emu
        self.folder = folder
        self.out_dir = os.path.join(str(folder), "out")
        os.mkdir(self.out_dir)
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "entra_tenant_id": emu.tenant_id,
            "entra_client_id": emu.client_id,
            "entra_client_secret": emu.client_secret,
            "entra_graph_url": emu.base_url,
            "entra_authority_url": emu.authority_url,
            "entra_ca_bundle": emu.ca_path,
        }
        if secret:
            app = emu.add_app(permissions=permissions(), secret=secret, display_name="reliability role app")
            host.update(entra_client_id=app["clientId"], entra_client_secret=secret)
        self.inventory = self._private_file("inventory.json", {"tenants": {"hosts": {HOST: host}}})
        self.variables = self._private_file(
            "vars.json",
            {
                "migrate_direct_to_group_groups": [
                    {"name": GROUP, "members_from_direct_sku": "ENTERPRISEPACK", "licenses": [{"sku": "ENTERPRISEPACK", "disabled_plans": []}]}
                ],
                "migrate_direct_to_group_canary_size": 10,
                "migrate_direct_to_group_batch_size": 40,
                "migrate_direct_to_group_wait_timeout": 120,
                "migrate_direct_to_group_poll_interval": 1,
                "migrate_direct_to_group_remove_batches": "all",
                "migrate_direct_to_group_output_dir": self.out_dir,
            },
        )
        self.env = dict(
            os.environ, ANSIBLE_LOG_PATH=os.path.join(self.out_dir, "ansible.log"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="0"
        )
        self.env.pop("AZURE_CLIENT_SECRET", None)

    def _private_file(self, name, content):
        path = os.path.join(str(self.folder), name)
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(content, stream)
        os.chmod(path, 0o600)
        return path

    def command(self, playbook, *extra):
        return [ANSIBLE_PLAYBOOK, "-i", self.inventory, "entraops.licensing.%s" % playbook, "-e", "@%s" % self.variables] + list(extra)

    def run(self, playbook="migrate", *extra):
        completed = subprocess.run(
            self.command(playbook, *extra),
            env=self.env,
            cwd=str(self.folder),
            stdin=subprocess.DEVNULL,  # not interactive: a prompt between batches is not waited for
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=600,
            check=False,
        )
        return completed.returncode, completed.stdout.decode("utf-8", "replace"), completed.stderr.decode("utf-8", "replace")

    def set_vars(self, **variables):
        """Add role variables to the run's extra vars."""
        with open(self.variables, "r", encoding="utf-8") as stream:
            content = json.load(stream)
        content.update(variables)
        self._private_file("vars.json", content)

    def journal_path(self):
        return os.path.join(self.out_dir, "%s-journal.jsonl" % HOST)


def table_row(figures, name, emu, before, journal_path, skipped=None):
    ours, injected = split_ledger(emu)
    migrated = [user_id for user_id in before if user_id not in holders_of_direct_e3(emu)]
    pending = unresolved_intents(journal_path)
    figures(
        kind="scenario", scenario=name, migrated=len(migrated), skipped=skipped or {}, losses=len(ours), injected_losses=len(injected), pending=len(pending)
    )
    assert ours == [] and pending == []
    assert all(inherited_e3_healthy(emu, user_id) for user_id in migrated)
    return migrated


def test_role_at_vvvv_leaks_no_secret_and_keeps_user_data_private(campaign_emulator, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(ROLE_USERS, seed=17))
    before = holders_of_direct_e3(emu)
    role = RoleRun(emu, tmp_path, secret=CLIENT_SECRET)
    status, stdout, stderr = role.run("migrate", "-vvvv")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert table_row(figures, "role: every phase and batch at -vvvv", emu, before, role.journal_path()) == before
    status, rollback_stdout, rollback_stderr = role.run("rollback", "-vvvv")
    assert status == 0, rollback_stdout[-3000:] + rollback_stderr[-2000:]
    assert holders_of_direct_e3(emu) == before

    places = {"migrate stdout": stdout, "migrate stderr": stderr, "rollback stdout": rollback_stdout, "rollback stderr": rollback_stderr}
    for path in files_under(role.out_dir):
        with open(path, "rb") as stream:
            places[os.path.relpath(path, role.out_dir)] = stream.read().decode("utf-8", "replace")
    leaks = [
        "%s in %s" % (what, where)
        for where, text in places.items()
        for what, found in (("the client secret", CLIENT_SECRET in text), ("a JWT", JWT.search(text) is not None))
        if found
    ]
    data_files = [path for path in files_under(role.out_dir) if not path.endswith("ansible.log")]
    too_open = ["%s %o" % (os.path.basename(path), stat.S_IMODE(os.stat(path).st_mode)) for path in data_files if stat.S_IMODE(os.stat(path).st_mode) & 0o077]
    figures(
        kind="secrets", what="the role (all phases + rollback) at -vvvv", places=len(places), leaks=len(leaks), files=len(data_files), open_files=len(too_open)
    )
    assert leaks == []
    assert any(path.endswith(".html") for path in data_files) and any(path.endswith(".ps1") for path in data_files)
    assert too_open == [], "files holding user data readable by others: %s" % too_open


def remove_tasks_run(stdout):
    """The batch groups the remove phase ran, one per direct_license task, from its task banners."""
    marker = "Remove - direct assignments the rule allows, each batch verified, batches "
    return [line.split(marker, 1)[1].split("]", 1)[0] for line in stdout.splitlines() if line.startswith("TASK [") and marker in line]


def test_role_under_the_free_strategy_and_with_a_prompt_between_batches(campaign_emulator, tmp_path, figures):
    """strategy free (ANSIBLE_STRATEGY) runs the whole role: the pauses, which it refuses even when skipped, are only
    loaded when asked for. With a prompt between batches (the linear strategy) each batch is its own task and the
    prompt, not interactive here, is passed."""
    emu = campaign_emulator
    reset(emu, build_tenant(ROLE_USERS, seed=31))
    before = holders_of_direct_e3(emu)
    (tmp_path / "free").mkdir()
    free = RoleRun(emu, tmp_path / "free")
    free.env["ANSIBLE_STRATEGY"] = "free"
    status, stdout, stderr = free.run("migrate")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert remove_tasks_run(stdout) == ["0, 1, 2, 3"]  # canary and three batches of 40 in one task
    assert table_row(figures, "role: strategy free", emu, before, free.journal_path()) == before

    reset(emu, build_tenant(ROLE_USERS, seed=37))
    before = holders_of_direct_e3(emu)
    (tmp_path / "prompted").mkdir()
    prompted = RoleRun(emu, tmp_path / "prompted")
    prompted.set_vars(migrate_direct_to_group_prompt_between_batches=True)
    status, stdout, stderr = prompted.run("migrate")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert remove_tasks_run(stdout) == ["0", "1", "2", "3"]
    # a prompt after each batch but the last (its text, naming the next batch, rendered without error); without a
    # terminal ansible-core does not wait for it
    assert stdout.count("TASK [entraops.licensing.migrate_direct_to_group : Remove - ask for approval of the next batch]") == 3
    assert "Not waiting for response to prompt as stdin is not interactive" in stdout + stderr
    assert table_row(figures, "role: a prompt between batches", emu, before, prompted.journal_path()) == before


def test_role_under_storms_and_5xx_stops_then_the_rerun_finishes(campaign_emulator, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(ROLE_USERS, seed=19))
    before = holders_of_direct_e3(emu)
    role = RoleRun(emu, tmp_path)
    emu.add_fault(method="GET", in_batch=False, status=429, retry_after=0, count=25)
    emu.add_fault(method="GET", route=r"/users/[^/]+$", status=429, retry_after=0, skip=100, count=40)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=504, apply_then=True, skip=15, count=3)
    emu.add_fault(method="POST", route=ASSIGN_LICENSE_ROUTE, status=503, skip=60, count=2)
    status, stdout, dummy = role.run("migrate")
    assert status != 0 and "Traceback" not in stdout  # the two refused removals exceed the failure budget of 0: the role stops
    emu.clear_faults()
    status, stdout, stderr = role.run("migrate")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert table_row(figures, "role: 429 storm + 503 + applied-504, stop, re-run", emu, before, role.journal_path()) == before


def process_tree(root):
    """``root`` and every process descended from it (by parent id, from /proc), parents first.

    ansible-core 2.19's workers start a session of their own (setsid), so killing ansible-playbook's process group
    leaves the worker, and the module it runs, alive: a "killed" run would go on removing.
    """
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_tree(root):
    """SIGKILL ``root`` and all its descendants, whatever their session: stopped first, so none forks in between."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in process_tree(root):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def test_role_killed_mid_removal_then_rerun_and_rollback(campaign_emulator, tmp_path, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(ROLE_USERS, seed=23))
    before_state = direct_state(emu)
    before = holders_of_direct_e3(emu)
    role = RoleRun(emu, tmp_path)
    emu.configure(latency_ms=15)
    process = subprocess.Popen(
        role.command("migrate"), env=role.env, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        removals = sum(1 for entry in emu.request_log() if entry["method"] == "POST" and entry["path"].endswith("/assignLicense"))
        if removals >= 45:
            kill_tree(process.pid)  # ansible-playbook, its worker and the module it runs
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the role ended before the kill point"
    emu.configure(latency_ms=0)
    wait_until_quiet(emu)
    remaining = [user_id for user_id in before if user_id in holders_of_direct_e3(emu)]
    assert 0 < len(remaining) < len(before)  # stopped half way: nothing went on removing after the kill
    status, stdout, stderr = role.run("migrate")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert table_row(figures, "role: SIGKILL mid-removal, re-run", emu, before, role.journal_path()) == before
    status, stdout, stderr = role.run("rollback")
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    assert direct_state(emu) == before_state
    assert split_ledger(emu)[0] == []
