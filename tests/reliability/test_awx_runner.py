# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The role as AWX runs it: ansible_runner.run on a private data directory laid out as AWX lays it (awx.py).

Against the Graph emulator over HTTPS (its CA given as a host variable, as an inventory would), credentials injected as
environment variables by the shipped credential type (extensions/awx/entra_app_credential_type.yml), the role's files
on a "volume" outside the private data directory (the job's container is thrown away):

* the whole role in one job: status, rc, job events and stdout checked, every user migrated, the loss ledger empty, the
  secret in no artifact (but ``command``, ansible-runner's record of the environment it was given) and no output file;
* a job in a container without the volume, or with the plan but without the journal, refuses the next batch before any
  Graph call; a rollback job restores the canary from the plan alone;
* the credential type's injectors, rendered as AWX renders them, give exactly the variables and file the modules read
  (secret, and certificate as a file), and a module authenticates with each;
* job slicing: three tenants in two slice jobs run side by side, each tenant's plan, journal and report its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import stat
import sys

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan
from ansible_collections.entraops.licensing.plugins.modules import direct_license
from ansible_collections.entraops.licensing.tests.reliability.awx import (
    AwxJob,
    artifact_texts,
    credential_type,
    events_of,
    slice_hosts,
    task_results,
)
from ansible_collections.entraops.licensing.tests.reliability.campaign import build_tenant, direct_state, holders_of_direct_e3, reset, split_ledger
from ansible_collections.entraops.licensing.tests.reliability.test_secrets_and_transport import JWT, encrypted_certificate, permissions

ansible_runner = pytest.importorskip("ansible_runner")

# ansible-playbook runs every phase: with the role campaign (tests/reliability/README.md).
pytestmark = pytest.mark.role
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(direct_license.__file__), *([".."] * 5)))
AWX_USERS = 30
CANARY = 5
SECRET = "AWX-job-client-secret-Hd7q~Lm2x.Vb9"
CERTIFICATE_PASSWORD = "RELIABILITY-cert-password-Yv3!pX6q"  # what encrypted_certificate encrypts with
GROUP = "LIC E3 awx"
PLAYBOOKS = {
    # The project's playbooks, as a project repository holds them: the collection's playbooks imported.
    "migrate.yml": "---\n- name: Migration\n  ansible.builtin.import_playbook: entraops.licensing.migrate\n",
    "rollback.yml": "---\n- name: Rollback\n  ansible.builtin.import_playbook: entraops.licensing.rollback\n",
    "skus.yml": (
        "---\n- name: Read the tenant's SKUs with the injected credential\n  hosts: all\n  connection: local\n  gather_facts: false\n"
        '  vars:\n    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n  tasks:\n'
        "    - name: SKUs\n      entraops.licensing.sku_info:\n        skus: [ENTERPRISEPACK]\n"
        '        graph_url: "{{ entra_graph_url }}"\n        authority_url: "{{ entra_authority_url }}"\n        ca_bundle: "{{ entra_ca_bundle }}"\n'
        "      register: skus\n"
        "    - name: Show the SKU\n      ansible.builtin.debug:\n        msg: \"{{ skus.skus | map(attribute='sku_part_number') | list }}\"\n"
    ),
}


@pytest.fixture
def execution_environment(monkeypatch):
    """What the execution environment image provides (ansible-core and the collection); no credential of the developer's."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS_ROOT)
    monkeypatch.setenv("ANSIBLE_NOCOLOR", "1")
    monkeypatch.setenv("ANSIBLE_LOCALHOST_WARNING", "0")
    for name in list(os.environ):
        if name.startswith("AZURE_") or name in ("GRAPH_ACCESS_TOKEN", "REQUESTS_CA_BUNDLE"):
            monkeypatch.delenv(name)


def tenant_host(emu, **more):
    """Inventory host variables of one tenant: the emulator's hosts and CA (the credential comes from the environment)."""
    host = {"ansible_connection": "local", "entra_graph_url": emu.base_url, "entra_authority_url": emu.authority_url, "entra_ca_bundle": emu.ca_path}
    host.update(more)
    return host


def role_vars(output_dir, **more):
    variables = {
        "migrate_direct_to_group_groups": [
            {"name": GROUP, "members_from_direct_sku": "ENTERPRISEPACK", "licenses": [{"sku": "ENTERPRISEPACK", "disabled_plans": []}]}
        ],
        "migrate_direct_to_group_canary_size": CANARY,
        "migrate_direct_to_group_batch_size": 25,
        "migrate_direct_to_group_wait_timeout": 120,
        "migrate_direct_to_group_poll_interval": 1,
        "migrate_direct_to_group_remove_batches": "all",
        "migrate_direct_to_group_output_dir": str(output_dir),
    }
    variables.update(more)
    return variables


def secret_inputs(emu, app):
    return {"tenant_id": emu.tenant_id, "client_id": app["clientId"], "client_secret": SECRET}


def assert_successful(runner, job):
    stdout = runner.stdout.read()
    assert runner.status == "successful" and runner.rc == 0, stdout[-4000:]
    # The artifacts AWX reads back: status, rc, stdout and the job events.
    with open(os.path.join(job.artifact_dir, "status"), encoding="utf-8") as stream:
        assert stream.read().strip() == "successful"
    with open(os.path.join(job.artifact_dir, "rc"), encoding="utf-8") as stream:
        assert stream.read().strip() == "0"
    stats = events_of(runner, "playbook_on_stats")
    assert len(stats) == 1
    data = stats[0]["event_data"]
    assert data["failures"] == {} and data["dark"] == {} and set(data["ok"]) == set(job.hosts)
    assert "PLAY RECAP" in stdout
    return stdout


def assert_failed(runner, job, expected):
    stdout = runner.stdout.read()
    assert runner.status == "failed" and runner.rc != 0, stdout[-3000:]
    with open(os.path.join(job.artifact_dir, "status"), encoding="utf-8") as stream:
        assert stream.read().strip() == "failed"
    messages = [res.get("msg", "") for item in events_of(runner, "runner_on_failed") for res in [(item["event_data"].get("res") or {})]]
    assert any(expected in message for message in messages), messages
    return stdout


def assert_no_secret(job, secrets, *folders):
    """No secret (nor a JWT) in the job's artifacts or in the files the role wrote; ``command`` holds the environment only."""
    places = artifact_texts(job)
    assert "stdout" in places and any(path.startswith("job_events") for path in places)
    for folder in folders:
        for root, dummy, names in os.walk(str(folder)):
            for name in names:
                with open(os.path.join(root, name), "rb") as stream:
                    places[os.path.join(root, name)] = stream.read().decode("utf-8", "replace")
    leaks = ["%s in %s" % (label, where) for where, text in places.items() for label, value in secrets.items() if value in text]
    leaks += ["a JWT in %s" % where for where, text in places.items() if JWT.search(text)]
    assert leaks == []
    # ansible-runner records the environment it was given (the credential's variables among them) in ``command``:
    # the private data directory's own copy, owner-only, gone with the job's container.
    assert stat.S_IMODE(os.stat(os.path.join(job.artifact_dir, "command")).st_mode) == 0o600


def removal_tasks(runner):
    return task_results(runner, "Remove - direct assignments the rule allows")


def removed_by_batch(runner):
    """(host, batch, removed) of every batch the remove phase ran, from its tasks' batch records."""
    return [(host, record["batch"], record["removed"]) for host, res in removal_tasks(runner) for record in res.get("batch_results") or []]


def test_the_role_in_an_awx_job_migrates_every_user_with_artifacts_and_no_secret(campaign_emulator, tmp_path, execution_environment, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(AWX_USERS, seed=23))
    before = holders_of_direct_e3(emu)
    app = emu.add_app(permissions=permissions(), secret=SECRET, display_name="awx job app")
    volume = tmp_path / "volume"
    job = AwxJob(tmp_path, "1", {"contoso": tenant_host(emu)}, role_vars(volume), {}, PLAYBOOKS)
    injected = job.inject(credential_type(), secret_inputs(emu, app))
    assert injected["AZURE_CLIENT_SECRET"] == SECRET

    runner = job.run("migrate.yml")
    stdout = assert_successful(runner, job)
    # the canary and one batch of 25 in one task, each verified on a fresh reading before the next
    assert [host for host, dummy in removal_tasks(runner)] == ["contoso"]
    removed = removed_by_batch(runner)
    assert [(host, batch) for host, batch, dummy in removed] == [("contoso", 0), ("contoso", 1)]
    assert sum(count for dummy, dummy_batch, count in removed) == len(before) == AWX_USERS
    assert re.search(r"contoso +: ok=[1-9][0-9]* +changed=[1-9][0-9]* +unreachable=0 +failed=0", stdout)
    assert holders_of_direct_e3(emu) == []
    ours, injected_losses = split_ledger(emu)
    assert ours == [] and injected_losses == []
    for name in ("contoso-plan.json", "contoso-journal.jsonl", "contoso-report.html", "contoso-journal.rollback.ps1"):
        assert (volume / name).is_file(), name
    assert_no_secret(job, {"the client secret": SECRET}, volume)
    figures(kind="scenario", scenario="AWX job (ansible-runner): the whole role", migrated=len(before), skipped={}, losses=0, injected_losses=0, pending=0)


def test_a_job_without_the_volume_refuses_the_next_batch_and_a_rollback_job_restores_from_the_plan(campaign_emulator, tmp_path, execution_environment, figures):
    emu = campaign_emulator
    reset(emu, build_tenant(AWX_USERS, seed=31))
    before = direct_state(emu)
    app = emu.add_app(permissions=permissions(), secret=SECRET, display_name="awx job app")
    inputs = secret_inputs(emu, app)
    volume = tmp_path / "volume"
    hosts = {"contoso": tenant_host(emu)}

    canary_job = AwxJob(tmp_path, "canary", hosts, role_vars(volume, migrate_direct_to_group_remove_batches=[0]), {}, PLAYBOOKS)
    canary_job.inject(credential_type(), inputs)
    runner = canary_job.run("migrate.yml")
    assert_successful(runner, canary_job)
    assert removed_by_batch(runner) == [("contoso", 0, CANARY)]
    plan_path = volume / "contoso-plan.json"
    fingerprint = read_plan(str(plan_path))["content_fingerprint"]
    journal_path = volume / "contoso-journal.jsonl"
    assert journal_path.is_file()

    window = dict(migrate_direct_to_group_phases=["remove"], migrate_direct_to_group_remove_batches=[1], migrate_direct_to_group_plan_fingerprint=fingerprint)
    # The next window's job runs in a container without the volume: no plan at the configured path.
    bare = tmp_path / "container-without-volume"
    emu.reset_stats()
    job = AwxJob(tmp_path, "no-volume", hosts, role_vars(bare, **window), {}, PLAYBOOKS)
    job.inject(credential_type(), inputs)
    assert_failed(job.run("migrate.yml"), job, "No plan at %s/contoso-plan.json: the approved plan (fingerprint %s) is expected there" % (bare, fingerprint))
    # A volume that holds the plan but lost the journal: the batch after the canary is refused, no empty journal started.
    partial = tmp_path / "volume-without-journal"
    partial.mkdir()
    for name in ("contoso-plan.json", "contoso-plan-batches.json"):
        shutil.copy2(str(volume / name), str(partial / name))
    job = AwxJob(tmp_path, "no-journal", hosts, role_vars(partial, **window), {}, PLAYBOOKS)
    job.inject(credential_type(), inputs)
    assert_failed(
        job.run("migrate.yml"),
        job,
        "No journal at %s/contoso-journal.jsonl, but batch 1 of plan %s/contoso-plan.json comes after batch(es) 0" % (partial, partial),
    )
    assert not (partial / "contoso-journal.jsonl").exists()
    assert emu.request_log() == []  # neither refused job called Graph (not even for a token)

    # The journal is lost for good: a rollback job puts the canary back from the plan alone.
    os.remove(str(journal_path))
    rollback_vars = dict(role_vars(volume), rollback_plan_path=str(plan_path), rollback_plan_fingerprint=fingerprint, rollback_batches=[0])
    job = AwxJob(tmp_path, "rollback", hosts, rollback_vars, {}, PLAYBOOKS)
    job.inject(credential_type(), inputs)
    runner = job.run("rollback.yml")
    assert_successful(runner, job)
    restores = task_results(runner, "Restore the direct assignments of the plan's rows")
    assert [(host, res["restored_total"], res["changed"]) for host, res in restores] == [("contoso", CANARY, True)]
    assert direct_state(emu) == before
    ours, dummy = split_ledger(emu)
    assert ours == []
    emu.reset_stats()
    again = AwxJob(tmp_path, "rollback-again", hosts, rollback_vars, {}, PLAYBOOKS)
    again.inject(credential_type(), inputs)
    runner = again.run("rollback.yml")
    assert_successful(runner, again)
    assert [(res["restored_total"], res["changed"]) for dummy, res in task_results(runner, "Restore the direct assignments of the plan's rows")] == [(0, False)]
    assert [entry for entry in emu.request_log() if entry["write"] and entry["path"].startswith("/v1.0/")] == []
    assert_no_secret(job, {"the client secret": SECRET}, volume)
    figures(kind="scenario", scenario="AWX jobs: refusals, restore from plan", migrated=0, skipped={}, losses=0, injected_losses=0, pending=0)


def test_the_credential_type_injects_exactly_what_the_modules_read(campaign_emulator, tmp_path, execution_environment):
    emu = campaign_emulator
    reset(emu, build_tenant(5, seed=37))
    definition = credential_type()
    fields = dict((field["id"], field) for field in definition["inputs"]["fields"])
    assert definition["kind"] == "cloud" and set(definition["inputs"]["required"]) == {"tenant_id", "client_id"}
    assert all(fields[name].get("secret") for name in ("client_secret", "client_certificate", "client_certificate_password"))
    expected_names = {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"}
    hosts = {"contoso": tenant_host(emu)}

    secret_app = emu.add_app(permissions=permissions(), secret=SECRET, display_name="awx secret app")
    job = AwxJob(tmp_path, "secret", hosts, {}, {}, PLAYBOOKS)
    injected = job.inject(definition, secret_inputs(emu, secret_app))
    assert set(injected) == expected_names
    assert (injected["AZURE_TENANT_ID"], injected["AZURE_CLIENT_ID"], injected["AZURE_CLIENT_SECRET"]) == (emu.tenant_id, secret_app["clientId"], SECRET)
    assert injected["AZURE_CLIENT_CERTIFICATE_PASSWORD"] == "" and os.path.getsize(injected["AZURE_CLIENT_CERTIFICATE_PATH"]) == 0
    runner = job.run("skus.yml")
    assert_successful(runner, job)
    assert [res["skus"][0]["sku_part_number"] for dummy, res in task_results(runner, "SKUs")] == ["ENTERPRISEPACK"]
    assert_no_secret(job, {"the client secret": SECRET})

    pem_path, certificate_pem = encrypted_certificate(tmp_path)
    with open(pem_path, encoding="ascii") as stream:
        pem = stream.read()
    certificate_app = emu.add_app(permissions=permissions(), certificate_pem=certificate_pem, display_name="awx certificate app")
    job = AwxJob(tmp_path, "certificate", hosts, {}, {}, PLAYBOOKS)
    inputs = {
        "tenant_id": emu.tenant_id,
        "client_id": certificate_app["clientId"],
        "client_certificate": pem,
        "client_certificate_password": CERTIFICATE_PASSWORD,
    }
    injected = job.inject(definition, inputs)
    assert set(injected) == expected_names and injected["AZURE_CLIENT_SECRET"] == ""
    certificate_file = injected["AZURE_CLIENT_CERTIFICATE_PATH"]
    assert os.path.dirname(certificate_file) == os.path.join(job.private_data_dir, "env")
    with open(certificate_file, encoding="ascii") as stream:
        assert stream.read() == pem
    assert stat.S_IMODE(os.stat(certificate_file).st_mode) == 0o600
    assert injected["AZURE_CLIENT_CERTIFICATE_PASSWORD"] == CERTIFICATE_PASSWORD
    emu.reset_stats()
    runner = job.run("skus.yml")
    assert_successful(runner, job)
    assert [res["skus"][0]["sku_part_number"] for dummy, res in task_results(runner, "SKUs")] == ["ENTERPRISEPACK"]
    token_requests = [entry for entry in emu.request_log() if entry["path"].endswith("/oauth2/v2.0/token")]
    assert token_requests and all(entry["status"] == 200 for entry in token_requests)
    private_key = pem[pem.index("-----BEGIN ENCRYPTED PRIVATE KEY-----") :]
    assert_no_secret(job, {"the certificate password": CERTIFICATE_PASSWORD, "the private key": private_key.splitlines()[1]})


def test_job_slicing_runs_each_tenant_in_one_slice_with_its_own_files(tmp_path, execution_environment, figures):
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    names = ["tenant-a", "tenant-b", "tenant-c"]
    client_id = "5b0e7d4e-59a3-4c2a-9d7e-0a6f3c1b2d44"  # one multi-tenant app registration, consented in every tenant
    emulators = {}
    try:
        for index, name in enumerate(names):
            emulators[name] = Emulator(tenant=build_tenant(12, seed=41 + index), port=0, throttling=False).start()
            emulators[name].add_app(permissions=permissions(), client_id=client_id, secret=SECRET, display_name="multi-tenant app")
        before = dict((name, holders_of_direct_e3(emu)) for name, emu in emulators.items())
        hosts = dict((name, tenant_host(emu, entra_tenant_id=emu.tenant_id)) for name, emu in emulators.items())
        volume = tmp_path / "volume"
        slices = [slice_hosts(hosts, number, 2) for number in (1, 2)]
        assert [sorted(hosts_of_slice) for hosts_of_slice in slices] == [["tenant-a", "tenant-c"], ["tenant-b"]]
        jobs = [AwxJob(tmp_path, "slice-%d" % number, slice_of, role_vars(volume), {}, PLAYBOOKS) for number, slice_of in enumerate(slices, start=1)]
        for job in jobs:
            # The job template's credential: the app, with the first tenant as its default; each host's entra_tenant_id wins.
            job.inject(credential_type(), {"tenant_id": emulators["tenant-a"].tenant_id, "client_id": client_id, "client_secret": SECRET})
        started = [job.run_async("migrate.yml") for job in jobs]
        for thread, dummy in started:
            thread.join(timeout=600)
        for job, (dummy, runner) in zip(jobs, started):
            assert_successful(runner, job)
            hosts_in_events = set(item["event_data"]["host"] for item in runner.events if (item.get("event_data") or {}).get("host"))
            assert hosts_in_events == set(job.hosts)
            assert_no_secret(job, {"the client secret": SECRET})
        for name, emu in emulators.items():
            assert holders_of_direct_e3(emu) == [], name
            ours, dummy = split_ledger(emu)
            assert ours == [], name
            plan = read_plan(str(volume / ("%s-plan.json" % name)))
            assert plan["tenant_id"].lower() == emu.tenant_id.lower()
            planned = sorted(row["user_id"] for row in plan["rows"] if row["batch"] is not None)
            assert planned == before[name]
            with open(str(volume / ("%s-journal.jsonl" % name)), encoding="utf-8") as stream:
                journaled = sorted(set(entry["user_id"] for entry in map(json.loads, stream) if entry["type"] == "intent"))
            assert journaled == before[name]
            assert (volume / ("%s-report.html" % name)).is_file()
        figures(
            kind="scenario",
            scenario="AWX job slicing: 3 tenants, 2 slice jobs",
            migrated=sum(map(len, before.values())),
            skipped={},
            losses=0,
            injected_losses=0,
            pending=0,
        )
    finally:
        for emu in emulators.values():
            emu.stop()
