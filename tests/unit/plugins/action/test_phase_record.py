# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""phase_record: writes a JSON record on the controller, atomically, as to_nice_json would, without a module process."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from unittest.mock import MagicMock

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.entraops.licensing.plugins.action import phase_record


def run_action(args, check_mode=False, diff=False, transport="local"):
    task = Task()
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = diff
    connection = MagicMock()
    connection._shell.tmpdir = None
    connection.transport = transport
    action = phase_record.ActionModule(task, connection, MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


RECORD = {"phase": "verify", "status": "planned", "batch_sizes": {"0": 10, "1": 500}, "blockers": [], "plan_fingerprint": None}


def test_writes_the_record_as_to_nice_json_owner_only_and_reports_a_change_only_when_it_differs(tmp_path):
    path = tmp_path / "contoso-phase-verify.json"
    result = run_action({"path": str(path), "content": RECORD})
    assert result["changed"] is True and result["path"] == str(path)
    assert path.read_text(encoding="utf-8") == to_nice_json(RECORD) + "\n"
    assert json.loads(path.read_text(encoding="utf-8")) == RECORD
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert run_action({"path": str(path), "content": RECORD})["changed"] is False
    assert sorted(os.listdir(tmp_path)) == ["contoso-phase-verify.json"]  # no temporary file left beside it


def test_check_mode_writes_nothing_and_diff_shows_the_record(tmp_path):
    path = tmp_path / "r.json"
    result = run_action({"path": str(path), "content": [RECORD]}, check_mode=True, diff=True)
    assert result["changed"] is True and not path.exists()
    assert result["diff"]["before"] == "" and json.loads(result["diff"]["after"]) == [RECORD]


def test_relative_paths_are_the_working_directorys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_action({"path": "out.json", "content": {"a": 1}, "mode": "0640"})
    assert result["path"] == str(tmp_path / "out.json")
    assert stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode) == 0o640


@pytest.mark.parametrize(
    "args, transport, message",
    [
        ({"path": "/nonexistent-folder/r.json", "content": {}}, "local", "the folder of /nonexistent-folder/r.json does not exist"),
        ({"path": "{tmp}/r.json", "content": {}, "mode": "rw"}, "local", "mode: got 'rw', expected an octal file mode"),
        ({"path": "{tmp}/r.json", "content": {}, "mode": "4755"}, "local", "mode: got '4755', expected permission bits only"),
        ({"path": "{tmp}/r.json", "content": {}}, "ssh", "run it with a local connection (connection ssh"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, args, transport, message):
    args = dict(args, path=args["path"].format(tmp=tmp_path))
    with pytest.raises(AnsibleActionFail) as failure:
        run_action(args, transport=transport)
    assert message in str(failure.value)
    assert os.listdir(tmp_path) == []
