# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait on the controller for a background job of a local task and return its result (see plugins/modules/async_result.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# Keys of a poll-0 start that are not the job's result; a result given without ansible_job_id passes through.
_START_KEYS = frozenset(("started", "finished", "ansible_job_id", "results_file", "_ansible_suppress_tmpdir_delete"))
# A foreground result passing through was shown, counted and diffed by the task that ran it.
_SHOWN_KEYS = ("diff", "changed", "warnings", "deprecations")


def read_job_file(path):
    """The job's status document, or None while it is missing or being replaced (async_wrapper renames it into place)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"failed": True, "finished": True, "msg": "the background job's results file %s holds no JSON: %s" % (path, text[:200])}


def job_finished(document):
    """As async_status decides: the job is running while its document still carries the ``started`` marker."""
    return document is not None and ("started" not in document or bool(document.get("finished")))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("job", "timeout", "poll_interval"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(
            argument_spec={
                "job": {"type": "dict", "required": True},
                "timeout": {"type": "float", "default": 0.0},
                "poll_interval": {"type": "float", "default": 0.5},
            }
        )
        job, timeout, interval = args["job"], args["timeout"], args["poll_interval"]
        if timeout < 0 or interval <= 0:
            raise AnsibleActionFail(
                "timeout must be 0 (no limit) or more and poll_interval more than 0; got timeout=%s, poll_interval=%s" % (timeout, interval)
            )
        if not job.get("ansible_job_id"):
            # The task ran in the foreground (async 0): its result is already complete.
            result.update(dict((key, value) for key, value in job.items() if key not in _SHOWN_KEYS and not key.startswith("_ansible")))
            result["changed"] = False
            result["finished"] = True
            return result
        if job.get("failed"):
            result.update(job)
            result.setdefault("msg", "the background job did not start")
            return result
        path = job.get("results_file")
        if not path or not os.path.isabs(path):
            raise AnsibleActionFail("job %s has no absolute results_file: start it with poll 0 on a local connection" % job["ansible_job_id"])
        started = time.monotonic()
        while True:
            document = read_job_file(path)
            if job_finished(document):
                break
            if document is None and not os.path.exists(os.path.dirname(path)):
                raise AnsibleActionFail(
                    "the results file of job %s is not on this controller (%s): the job must run with a local connection" % (job["ansible_job_id"], path)
                )
            waited = time.monotonic() - started
            if timeout and waited >= timeout:
                result.update(failed=True, finished=False, ansible_job_id=job["ansible_job_id"], results_file=path)
                result["msg"] = "background job %s did not finish within %s s (it keeps running until its async limit)" % (job["ansible_job_id"], timeout)
                return result
            time.sleep(interval if not timeout else min(interval, max(0.0, timeout - waited)))
        try:
            os.remove(path)
        except OSError:
            pass
        for key in ("warnings", "deprecations"):
            for entry in document.pop(key, None) or []:
                display.warning(str(entry.get("msg", entry) if isinstance(entry, dict) else entry))
        document.pop("started", None)
        result.update(document)
        result["finished"] = True
        result["ansible_job_id"] = job["ansible_job_id"]
        return result
