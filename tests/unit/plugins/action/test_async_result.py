# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""async_result: waits for the job's results file on the controller and returns the job's own result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

import pytest

from unittest.mock import MagicMock

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.entraops.licensing.plugins.action import async_result


def run_action(args):
    task = Task()
    task.args = args
    task.async_val = 0
    task.check_mode = False
    connection = MagicMock()
    connection._shell.tmpdir = None
    action = async_result.ActionModule(task, connection, MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


def write_job(path, document):
    path.write_text(json.dumps(document))


def test_returns_the_finished_job_result_and_removes_its_file(tmp_path):
    results = tmp_path / "j1.1"
    write_job(
        results,
        {"changed": True, "removed_total": 500, "failures": [], "invocation": {"module_args": {"client_secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}},
    )
    result = run_action({"job": {"ansible_job_id": "j1.1", "results_file": str(results), "started": True, "finished": False}})
    assert result["finished"] is True and result["changed"] is True and result["removed_total"] == 500
    assert result["ansible_job_id"] == "j1.1" and not result.get("failed")
    assert not results.exists()


def test_waits_while_the_job_runs(tmp_path):
    results = tmp_path / "j2.1"
    write_job(results, {"started": True, "finished": False, "ansible_job_id": "j2.1"})
    timer = threading.Timer(0.4, write_job, (results, {"changed": False, "msg": "done"}))
    timer.start()
    result = run_action({"job": {"ansible_job_id": "j2.1", "results_file": str(results)}, "poll_interval": 0.05})
    timer.join()
    assert result["finished"] is True and result["msg"] == "done"


def test_a_failed_job_fails_the_task_with_its_message(tmp_path):
    results = tmp_path / "j3.1"
    write_job(results, {"failed": True, "msg": "Graph returned 429 ... max_retry_time", "removed_total": 10, "failures": [{"kind": "throttled"}]})
    result = run_action({"job": {"ansible_job_id": "j3.1", "results_file": str(results)}})
    assert result["failed"] is True and "429" in result["msg"] and result["removed_total"] == 10


def test_times_out_without_removing_the_file(tmp_path):
    results = tmp_path / "j4.1"
    write_job(results, {"started": True, "finished": False, "ansible_job_id": "j4.1"})
    result = run_action({"job": {"ansible_job_id": "j4.1", "results_file": str(results)}, "timeout": 0.2, "poll_interval": 0.05})
    assert result["failed"] is True and "did not finish within 0.2 s" in result["msg"] and results.exists()


def test_a_foreground_result_passes_through_unchanged_and_not_counted_twice():
    job = {"changed": True, "removed_total": 3, "diff": {"before": "a", "after": "b"}, "_ansible_no_log": False}
    result = run_action({"job": job})
    assert result["removed_total"] == 3 and result["changed"] is False and "diff" not in result and result["finished"] is True


def test_a_results_file_elsewhere_than_this_controller_is_refused(tmp_path):
    with pytest.raises(AnsibleActionFail, match="local connection"):
        run_action({"job": {"ansible_job_id": "j5.1", "results_file": str(tmp_path / "nowhere" / "j5.1")}})


def test_not_json_is_a_failure(tmp_path):
    results = tmp_path / "j6.1"
    results.write_text("Traceback (most recent call last): ...")
    result = run_action({"job": {"ansible_job_id": "j6.1", "results_file": str(results)}})
    assert result["failed"] is True and "holds no JSON" in result["msg"]
