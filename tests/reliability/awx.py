# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Jobs run as AWX runs them: an ansible-runner private data directory laid out by AWX, run with ansible_runner.run.

AWX (and Ansible Automation Platform) hands every job to ansible-runner in a throw-away execution environment, with a
private data directory it writes itself:

- ``inventory/hosts``: an executable script printing the inventory as JSON (``_meta.hostvars``); for a slice of a sliced
  job template, only that slice's hosts (AWX's ``get_script_data(slice_number, slice_count)``: the sorted hosts, every
  ``slice_count``-th from ``slice_number - 1``);
- ``env/extravars``: the job's extra variables; ``env/envvars``: the environment, with every credential's ``env``
  injectors rendered (and its ``file`` injectors written to files in ``env/``);
- ``project/``: the project's checkout, holding the playbook.

``render_credential`` renders a credential type's injectors the way AWX's ``CredentialType.inject_credential`` does
(Jinja2's ImmutableSandboxedEnvironment; a file injector per label, written 0600 in ``env/``, its path in
``tower.filename`` or ``tower.filename.<name>``; an input left empty is undefined, so it renders as an empty string).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import tempfile
import types

import yaml

CREDENTIAL_TYPE_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "extensions", "awx", "entra_app_credential_type.yml")
INVENTORY_SCRIPT = "#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n"


def credential_type():
    with open(CREDENTIAL_TYPE_PATH, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def render_credential(definition, inputs, private_data_dir):
    """The environment variables AWX injects for a credential of type ``definition`` with ``inputs``; files written in env/."""
    from jinja2 import sandbox  # pylint: disable=import-outside-toplevel

    namespace = {}
    for name, value in inputs.items():
        if isinstance(value, bool) or len(value):
            namespace[name] = value
    for field in definition["inputs"].get("fields", []):
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    tower = types.SimpleNamespace()
    namespace["tower"] = tower
    environment = sandbox.ImmutableSandboxedEnvironment()
    for label, template in definition["injectors"].get("file", {}).items():
        data = environment.from_string(template).render(**namespace)
        handle, path = tempfile.mkstemp(dir=os.path.join(private_data_dir, "env"))
        with os.fdopen(handle, "w") as stream:
            stream.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = types.SimpleNamespace()
            setattr(tower.filename, label.split(".")[1], path)
    return dict((name, environment.from_string(template).render(**namespace)) for name, template in definition["injectors"].get("env", {}).items())


def slice_hosts(hosts, slice_number, slice_count):
    """The hosts of slice ``slice_number`` (1-based) of ``slice_count``, as AWX gives a slice job its hosts."""
    names = sorted(hosts)
    return dict((name, hosts[name]) for name in names[slice_number - 1 :: slice_count])


class AwxJob:
    """One job's private data directory: ``AwxJob(folder, 'job-1', hosts, extravars, envvars, playbooks)``, then run()."""

    def __init__(self, folder, name, hosts, extravars, envvars, playbooks, group="tenants"):
        self.private_data_dir = os.path.join(str(folder), name)
        self.ident = name
        for part in ("inventory", "env", "project"):
            os.makedirs(os.path.join(self.private_data_dir, part), mode=0o700)
        self.hosts = dict(hosts)
        inventory = {"all": {"children": [group]}, group: {"hosts": sorted(hosts)}, "_meta": {"hostvars": self.hosts}}
        self._write("inventory/hosts", INVENTORY_SCRIPT % json.dumps(inventory), mode=0o700)
        self._write("env/extravars", json.dumps(extravars))
        self.envvars = dict(envvars)
        for name, content in playbooks.items():
            self._write(os.path.join("project", name), content)

    def inject(self, definition, inputs):
        """Render a credential's injectors into this job (env/envvars and the files in env/); returns the variables."""
        injected = render_credential(definition, inputs, self.private_data_dir)
        self.envvars.update(injected)
        return injected

    def _write(self, relative, content, mode=0o600):
        path = os.path.join(self.private_data_dir, relative)
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.chmod(path, mode)
        return path

    def run(self, playbook, verbosity=0, **options):
        """ansible_runner.run on this private data directory (the call AWX's worker makes); returns the Runner."""
        import ansible_runner  # pylint: disable=import-outside-toplevel

        self._write("env/envvars", json.dumps(self.envvars))
        return ansible_runner.run(private_data_dir=self.private_data_dir, ident=self.ident, playbook=playbook, verbosity=verbosity, quiet=True, **options)

    def run_async(self, playbook, verbosity=0, **options):
        """(thread, Runner) of ansible_runner.run_async: slice jobs run side by side, as AWX runs a sliced job's workflow."""
        import ansible_runner  # pylint: disable=import-outside-toplevel

        self._write("env/envvars", json.dumps(self.envvars))
        return ansible_runner.run_async(private_data_dir=self.private_data_dir, ident=self.ident, playbook=playbook, verbosity=verbosity, quiet=True, **options)

    @property
    def artifact_dir(self):
        return os.path.join(self.private_data_dir, "artifacts", self.ident)


def artifact_texts(job, exclude=("command",)):
    """{relative path: text} of every file in the job's artifact directory (stdout, status, rc, job_events/...)."""
    texts = {}
    for root, dummy, names in os.walk(job.artifact_dir):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, job.artifact_dir)
            if relative in exclude:
                continue
            with open(path, "rb") as stream:
                texts[relative] = stream.read().decode("utf-8", "replace")
    return texts


def events_of(runner, event):
    return [item for item in runner.events if item.get("event") == event]


def task_results(runner, task_prefix):
    """``(host, res)`` of each ok/failed event of tasks whose name starts with ``task_prefix``."""
    found = []
    for item in runner.events:
        data = item.get("event_data") or {}
        if item.get("event") in ("runner_on_ok", "runner_on_failed") and str(data.get("task", "")).startswith(task_prefix):
            found.append((data.get("host"), data.get("res") or {}))
    return found
