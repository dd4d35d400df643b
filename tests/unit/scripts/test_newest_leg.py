# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A newcomer's machine without Python 3.12 (Debian 12): scripts/setup and scripts/test leave the newest ansible-core leg
out, say so on the last line, and run every other leg; with CI=true they keep requiring it.

The functions are taken from the scripts themselves and run in bash with PATH and PYENV_ROOT pointing at empty
directories (no interpreter to find), and the venvs' makers replaced by stubs that only say what they would make.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BASH = "/bin/bash"
# The scripts are the repository's, not the collection's (galaxy.yml build_ignore): nothing to test in a built collection.
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "scripts", "setup")), reason="scripts/ is not part of a built collection")


def script_parts(name, functions, variables=()):
    """The text of ``functions`` (``name() { ... }`` up to the closing brace at column 0, or one-liners) and ``variables`` lines."""
    with open(os.path.join(ROOT, "scripts", name), encoding="utf-8") as stream:
        text = stream.read()
    parts = []
    for variable in variables:
        match = re.search(r"^%s=.*$" % re.escape(variable), text, re.MULTILINE)
        assert match, "%s has no %s=" % (name, variable)
        parts.append(match.group(0))
    for function in functions:
        match = re.search(r"^%s\(\) \{ .*\}$|^%s\(\) \{\n.*?^\}$" % (re.escape(function), re.escape(function)), text, re.MULTILINE | re.DOTALL)
        assert match, "%s has no function %s" % (name, function)
        parts.append(match.group(0))
    return "\n".join(parts) + "\n"


def run_bash(program, env):
    completed = subprocess.run([BASH, "-c", program], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    return completed.returncode, completed.stdout.decode("utf-8"), completed.stderr.decode("utf-8")


@pytest.fixture
def bare_machine(tmp_path):
    """An environment in which no Python 3.12 can be found: PATH and PYENV_ROOT are empty directories."""
    empty_path, pyenv_root = tmp_path / "bin", tmp_path / "pyenv"
    empty_path.mkdir()
    pyenv_root.mkdir()
    return {"PATH": str(empty_path), "PYENV_ROOT": str(pyenv_root), "HOME": str(tmp_path)}


def setup_parts():
    return script_parts("setup", ["say", "die", "find_python", "python_for_newest_leg", "prepare_legs"], ["NEWEST_LEG_NEEDS"])


STUBS = 'ensure_venv() { echo "made $1 with $2"; }\ninstall_pip_shim() { :; }\nPYTHON311=/opt/python3.11\n'


def test_setup_without_python_312_outside_ci_makes_the_other_legs_and_warns(bare_machine):
    status, out, err = run_bash(setup_parts() + STUBS + "prepare_legs\necho done\n", bare_machine)
    assert status == 0, err
    assert out.splitlines() == ["made .venv-oldest with /opt/python3.11", "made .venv-importer with /opt/python3.11", "done"]
    assert "setup: WARNING: Python 3.12 not found" in err and "%s/versions/3.12.*" % bare_machine["PYENV_ROOT"] in err
    assert "the newest ansible-core leg (ansible-core 2.21) needs Python 3.12" in err


def test_setup_without_python_312_in_ci_stops_before_any_venv(bare_machine):
    status, out, err = run_bash(setup_parts() + STUBS + "prepare_legs\necho done\n", dict(bare_machine, CI="true"))
    assert status == 1 and out == ""
    assert "setup: ERROR: Python 3.12 not found" in err and "CI (CI=true) runs every leg" in err


def test_setup_finds_a_pyenv_312_and_makes_the_newest_venv(bare_machine):
    interpreter = os.path.join(bare_machine["PYENV_ROOT"], "versions", "3.12.9", "bin", "python")
    os.makedirs(os.path.dirname(interpreter))
    with open(interpreter, "w", encoding="utf-8") as stream:
        stream.write("#!/bin/sh\nexit 0\n")  # answers the version check as a 3.12 would
    os.chmod(interpreter, 0o755)
    for env in (bare_machine, dict(bare_machine, CI="true")):
        status, out, err = run_bash(setup_parts() + STUBS + "prepare_legs\n", env)
        assert status == 0, err
        assert out.splitlines()[0] == "made .venv-newest with %s" % interpreter and "WARNING" not in err


def scripts_test_parts():
    return script_parts(
        "test", ["elapsed_since", "newest_leg_ready", "decide_newest_leg", "summary"], ["ANSIBLE_TEST_LEGS", "NEWEST_LEG", "NEWEST_LEG_NOT_RUN"]
    )


def run_summary(tmp_path, env, failed_step=False):
    """decide_newest_leg, then the summary of a run whose steps passed (or one failed); ROOT is tmp_path."""
    work = tmp_path / "work"
    logs = tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    with open(str(work / "results.0-main"), "w", encoding="utf-8") as stream:
        stream.write("setup\t1.0\t0\npytest-units\t2.0\t%d\n" % (1 if failed_step else 0))
    program = (
        'ROOT="%s"\nWORK_DIR="%s"\nLOG_DIR="%s"\nCI_START=$(date +%%s.%%N)\n' % (tmp_path, work, logs)
        + scripts_test_parts()
        + 'decide_newest_leg || { echo "decided: refused"; exit 3; }\necho "legs: ${ANSIBLE_TEST_LEGS[*]}"\nsummary\n'
    )
    return run_bash(program, dict(env, PATH="/usr/bin:/bin"))


def test_scripts_test_without_the_newest_venv_runs_the_other_legs_and_ends_with_the_line(tmp_path, bare_machine):
    status, out, err = run_summary(tmp_path, bare_machine)
    assert status == 0, out + err
    lines = out.splitlines()
    assert "legs: .venv 3.11 .venv-oldest 3.11" in lines
    assert lines[-2].startswith("PASSED: 2 steps in ") and lines[-2].endswith("s, without the newest ansible-core leg")
    assert lines[-1].startswith("NOT RUN: the newest ansible-core leg (ansible-core 2.21: sanity, units, integration); it needs Python 3.12")
    again = tmp_path / "again"
    again.mkdir()
    status, out, err = run_summary(again, bare_machine, failed_step=True)
    assert status == 1 and out.splitlines()[-1].startswith("NOT RUN: the newest ansible-core leg")
    assert "CI FAILED: 1 of 2 steps failed (pytest-units)" in out


def test_scripts_test_in_ci_requires_the_newest_leg(tmp_path, bare_machine):
    status, out, err = run_summary(tmp_path, dict(bare_machine, CI="true"))
    assert status == 3 and "decided: refused" in out and ".venv-newest (Python 3.12) is missing or broken; CI runs every leg" in out


def test_scripts_test_runs_the_newest_leg_when_its_venv_is_there(tmp_path, bare_machine):
    bin_dir = tmp_path / ".venv-newest" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "ansible-test"):
        with open(str(bin_dir / name), "w", encoding="utf-8") as stream:
            stream.write("#!/bin/sh\nexit 0\n")
        os.chmod(str(bin_dir / name), 0o755)
    status, out, err = run_summary(tmp_path, bare_machine)
    assert status == 0, out + err
    assert "legs: .venv 3.11 .venv-newest 3.12 .venv-oldest 3.11" in out
    assert out.splitlines()[-1].startswith("CI PASSED: 2 steps in ") and "NOT RUN" not in out
