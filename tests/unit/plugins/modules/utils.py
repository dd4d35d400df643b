# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a module's main() in-process and catch its result (works on ansible-core 2.16 to 2.21)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import time

from unittest.mock import patch

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

# ENTRAOPS_STRICT_EMULATOR=1 runs the suite against the emulator with every strict switch of issue 21 on
# (graph_emulator/strict.py): short and empty pages, read lag, slow processing, unknown processing states.
# Without it the emulator's own defaults apply (shuffled $batch answers, the rest off).
STRICT_SWITCHES = {
    "short_pages": True,
    "empty_pages": True,
    "read_lag_ms": 150.0,
    "processing_delay_s": 1.0,  # Entra processes in minutes, replicas converge in seconds: processing far slower than the lag
    "unknown_processing_states": True,
}
STRICT_KNOBS = dict(
    {"batch_shuffle": True, "short_pages": False, "empty_pages": False, "read_lag_ms": 0.0, "processing_delay_s": 0.0, "unknown_processing_states": False},
    **(STRICT_SWITCHES if os.environ.get("ENTRAOPS_STRICT_EMULATOR") == "1" else {}),
)


try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
except ImportError:
    patch_module_args = None


def emulator_connection(emu, **extra):
    """Module connection options for the emulator's default app (plus any ``extra`` options)."""
    return dict(
        tenant_id=emu.tenant_id,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        graph_url=emu.base_url,
        authority_url=emu.authority_url,
        ca_bundle=emu.ca_path,
        **extra,
    )


def graph_writes(emu):
    """Graph writes in the emulator's request log (the token endpoint's POST is not a directory write)."""
    return [entry for entry in emu.request_log() if entry["write"] and entry["path"].startswith("/v1.0/")]


def wait_until_quiet(emu, quiet_seconds=0.3, limit_seconds=10):
    """Return once the request log has not grown for ``quiet_seconds`` (bounded by ``limit_seconds``)."""
    deadline = time.monotonic() + limit_seconds
    size, since = len(emu.request_log()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        current = len(emu.request_log())
        if current != size:
            size, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return
    raise AssertionError("the emulator kept receiving requests for %ss" % limit_seconds)


class AnsibleExitJson(Exception):
    """Raised instead of exit_json; ``result`` holds the module's return values."""

    def __init__(self, result):
        super(AnsibleExitJson, self).__init__(result)
        self.result = result


class AnsibleFailJson(Exception):
    """Raised instead of fail_json; ``result`` holds msg and the other failure values."""

    def __init__(self, result):
        super(AnsibleFailJson, self).__init__(result)
        self.result = result


@contextlib.contextmanager
def set_module_args(args):
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
    else:
        with patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))):
            yield


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, msg, **kwargs):  # pylint: disable=unused-argument
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


def _with_warnings(result, warnings):
    """Ansible adds ``warnings`` to a result only when there are some."""
    if warnings:
        result["warnings"] = list(warnings)
    return result


def run_module(main, args):
    """(result, failed) of one in-process module run with ``args`` (check mode via ``_ansible_check_mode``).

    The module's warnings are in the result's ``warnings``, as Ansible returns them. They are caught
    at ``AnsibleModule.warn``: ansible-core's own list is not used once a controller module has been
    imported in the process (an action plugin's test), warnings then go to the display.
    """
    warnings = []

    def _warn(self, warning, *args, **kwargs):  # pylint: disable=unused-argument
        warnings.append(warning)

    with set_module_args(args):
        with patch.object(basic.AnsibleModule, "exit_json", _exit_json), patch.object(basic.AnsibleModule, "fail_json", _fail_json):
            with patch.object(basic.AnsibleModule, "warn", _warn):
                try:
                    main()
                except AnsibleExitJson as done:
                    return _with_warnings(done.result, warnings), False
                except AnsibleFailJson as failed:
                    return _with_warnings(failed.result, warnings), True
    raise AssertionError("the module returned without calling exit_json or fail_json")


def emulator_connection(emu, **overrides):
    """Connection options for the Graph emulator's default application (secret auth).

    ``write_rate`` 0: these emulators enforce no budget unless a test turns throttling on, and then it
    gives the rate it means to test (tests/unit/plugins/module_utils/test_graph_throttling.py,
    tests/reliability); pacing at Graph's budget here would only make the suite slower.
    """
    options = dict(
        tenant_id=emu.tenant_id,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        graph_url=emu.base_url,
        authority_url=emu.authority_url,
        ca_bundle=emu.ca_path,
        write_rate=0,
    )
    options.update(overrides)
    return options
