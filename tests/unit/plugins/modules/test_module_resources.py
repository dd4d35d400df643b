# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A module run leaves no connection open behind it, whether it succeeds or fails.

Ansible runs each module in a process of its own, but callers that run many modules in one process
(these tests, a long-lived worker) would otherwise run out of file descriptors: a Graph session keeps
its pooled connections, and the token provider holds the session in a cycle that only the garbage
collector breaks. Counted on this process's descriptor table, where the emulator's server side of every
kept-alive connection also lives.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.entraops.licensing.plugins.modules import direct_license, license_assignment_info, sku_info

from .migration_tenant import connection
from .utils import run_module, wait_until_quiet

RUNS = 20
# Descriptors that may come and go around the runs (a log file, a server connection not yet reaped).
SLACK = 4


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def plan_run(emu, tmp_path, index):
    return run_module(license_assignment_info.main, dict(connection(emu), skus=["ENTERPRISEPACK"], plan_path=str(tmp_path / ("plan-%d.json" % index))))


def sku_run(emu, tmp_path, index):
    return run_module(sku_info.main, dict(connection(emu), skus=["ENTERPRISEPACK"]))


def failing_removal(emu, tmp_path, index):
    """Fails after reading from Graph: the tenant has no such SKU."""
    return run_module(
        direct_license.main,
        dict(connection(emu), state="absent", users=["user%d@contoso.example" % index], skus=["NO_SUCH_SKU"], journal_path=str(tmp_path / "journal.jsonl")),
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd (Linux)")
@pytest.mark.parametrize("run, fails", [(plan_run, False), (sku_run, False), (failing_removal, True)], ids=["plan", "sku_info", "failing removal"])
def test_module_runs_leave_no_descriptor_open(emu, tmp_path, run, fails):
    result, failed = run(emu, tmp_path, 0)
    assert failed is fails, result
    wait_until_quiet(emu)
    before = open_descriptors()
    for index in range(1, RUNS + 1):
        result, failed = run(emu, tmp_path, index)
        assert failed is fails, result
    wait_until_quiet(emu)
    after = open_descriptors()
    assert after - before <= SLACK, "%d module runs left %d descriptors open (%d before, %d after)" % (RUNS, after - before, before, after)
