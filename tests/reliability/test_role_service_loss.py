# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The role stops on the first service loss, whatever the failure budget (direct_license failures[].kind == service_loss).

A user of batch 1 is taken out of the licensing group just before their removal is sent (after the
fresh read allowed it): the removal lands, the re-read shows the user without E3, the direct
assignment is put back at once, and the role stops before batch 2 although the budget allows 100
failures.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os

import pytest

from ansible_collections.entraops.licensing.tests.reliability.campaign import build_tenant, direct_state, reset
from ansible_collections.entraops.licensing.tests.reliability.test_role import GROUP, HOST, ROLE_USERS, RoleRun

pytestmark = pytest.mark.role


def test_role_stops_on_the_first_service_loss_within_its_failure_budget(campaign_emulator, tmp_path):
    emu = campaign_emulator
    reset(emu, build_tenant(ROLE_USERS, seed=31))
    before = direct_state(emu)
    role = RoleRun(emu, tmp_path)
    status, stdout, stderr = role.run(
        "migrate",
        "-e",
        json.dumps({"migrate_direct_to_group_phases": ["preflight", "group", "assign", "wait", "verify"], "migrate_direct_to_group_remove_batches": []}),
    )
    assert status == 0, stdout[-3000:] + stderr[-2000:]
    with open(os.path.join(role.out_dir, "%s-plan.json" % HOST), encoding="utf-8") as stream:
        rows = json.load(stream)["rows"]
    victim = next(row["user_id"] for row in rows if row["batch"] == 1)
    batch_2 = [row["user_id"] for row in rows if row["batch"] == 2]
    group_id = next(group["id"] for group in emu.export_state()["groups"] if group["displayName"] == GROUP)
    emu.add_fault(method="POST", route="/users/%s/assignLicense$" % victim, op={"op": "remove_member", "group": group_id, "user": victim})

    phases = {
        "migrate_direct_to_group_phases": ["remove", "report"],
        "migrate_direct_to_group_remove_batches": "all",
        "migrate_direct_to_group_max_failures": 100,
    }
    status, stdout, stderr = role.run("migrate", "-e", json.dumps(phases))
    assert status != 0, "the role went on after a service loss"
    assert "a removal took a service away and was put back; stopping" in stdout, stdout[-3000:]
    after = direct_state(emu)
    assert after[victim] == before[victim]  # put back with the same disabled plans
    assert all(after[user_id] == before[user_id] for user_id in batch_2)  # batch 2 never ran
    # One phase file for the run, written although the run stopped: a result per batch it ran, batch 1 last.
    [run_file] = glob.glob(os.path.join(role.out_dir, "%s-phase-remove-*.json" % HOST))
    with open(run_file, encoding="utf-8") as stream:
        batches = json.load(stream)
    assert [result["batch"] for result in batches] == [0, 1]
    assert [failure["kind"] for failure in batches[1]["failures"]] == ["service_loss"]
    assert batches[1]["status"] == "failed" and batches[0]["status"] == "done"
