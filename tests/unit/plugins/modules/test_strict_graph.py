# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Key module flows against the emulator with every strict switch of issue 21 on, whatever the environment.

Short and empty pages, shuffled $batch answers, reads lagging writes, slow group processing and unknown
processing states (emulator/docs/tenant-format.md, section 4): the plan, the removals and the waits give the
results they give against the friendly emulator, and nobody loses a service (loss ledger empty).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.entraops.licensing.plugins.modules import direct_license, group_license, license_assignment_info, license_processing_wait

from .migration_tenant import E3, GROUPS, connection, direct_sku_ids, reset_migration_emulator
from .test_direct_license import KEEP_ROLES, SAFE_ROLES, assert_migrated
from .utils import run_module

EVERY_SWITCH = {
    "batch_shuffle": True,
    "short_pages": True,
    "empty_pages": True,
    "read_lag_ms": 200.0,
    "processing_delay_s": 0.3,
    "unknown_processing_states": True,
    "strict_seed": 5,
}


@pytest.fixture(scope="module")
def emulator_module(tenant_and_roles):
    """The migration tenant's emulator (conftest.py) with every strict switch on."""
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    with Emulator(tenant=copy.deepcopy(tenant_and_roles[0]), port=0, throttling=False, **EVERY_SWITCH) as emu:
        yield emu


@pytest.fixture
def emu(emulator_module, tenant_and_roles):
    """The tenant freshly loaded (conftest.py's emu), then every switch on again (the reset sets the suite's knobs)."""
    reset_migration_emulator(emulator_module, tenant_and_roles[0])
    emulator_module.configure(**EVERY_SWITCH)
    yield emulator_module
    emulator_module.clear_faults()


def test_every_switch_is_on(emu):
    config = emu.config()
    assert dict((name, config[name]) for name in EVERY_SWITCH) == EVERY_SWITCH


def test_plan_then_canary_and_batches(emu, roles, tmp_path):
    plan_path = str(tmp_path / "plan.json")
    info, failed = run_module(license_assignment_info.main, dict(connection(emu), skus=["ENTERPRISEPACK"], plan_path=plan_path, canary_size=2, batch_size=5))
    assert not failed, info.get("msg")
    assert info["batches"] == 4  # as against the friendly emulator: no holder lost or doubled across short and empty pages
    journal_path = str(tmp_path / "journal.jsonl")
    removed = 0
    for batch in range(4):
        result, failed = run_module(direct_license.main, dict(connection(emu), plan_path=plan_path, batches=[batch], journal_path=journal_path))
        assert not failed, result.get("msg")
        assert result["failures"] == []
        removed += result["removed_total"]
    assert removed == len(SAFE_ROLES)
    assert_migrated(emu, roles)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_unsafe_users_keep_their_direct_copy_with_reasons(emu, roles, tmp_path):
    users = [roles[role] for role in SAFE_ROLES + KEEP_ROLES]
    result, failed = run_module(direct_license.main, dict(connection(emu), users=users, skus=["ENTERPRISEPACK"], journal_path=str(tmp_path / "j.jsonl")))
    assert not failed, result.get("msg")
    assert result["removed_total"] == len(SAFE_ROLES)
    assert result["skipped_by_verdict"] == {"plans_would_be_lost": 1, "not_direct_member": 1, "inherited_in_error": 2, "direct_only": 1}
    assert_migrated(emu, roles)
    emu.process_all()
    assert emu.loss_ledger() == []


def test_a_group_in_an_unknown_processing_state_is_never_done_and_its_members_keep_their_copy(emu, roles, tmp_path):
    emu.configure(processing_rate=0)  # the group stays unfinished: only an unknown state is ever shown
    # 'LIC E3 no SWAY' enables SWAY from now on (its members gain a plan, nobody loses one)
    changed, failed = run_module(group_license.main, dict(connection(emu), group=GROUPS["e3_no_sway"], licenses=[{"sku": "ENTERPRISEPACK"}]))
    assert not failed, changed.get("msg")
    assert changed["changed"] and changed["processing_state"] == "unknownFutureValue"
    result, failed = run_module(license_processing_wait.main, dict(connection(emu), groups=[GROUPS["e3_no_sway"]], wait_timeout=1, poll_interval=0.2))
    assert failed and result["timed_out"] is True
    assert result["groups"][0]["processing_state"] == "unknownFutureValue" and not result["groups"][0]["done"]
    # the safety rule: a group that is not ProcessingComplete covers nobody
    removal, failed = run_module(
        direct_license.main, dict(connection(emu), users=[roles["sway_off"]], skus=["ENTERPRISEPACK"], journal_path=str(tmp_path / "j.jsonl"))
    )
    assert not failed and removal["removed_total"] == 0 and removal["skipped_by_verdict"]["group_processing"] == 1
    assert direct_sku_ids(emu, roles["sway_off"]) == [E3]
    emu.configure(processing_rate=1000.0)
    emu.process_all()
    result, failed = run_module(license_processing_wait.main, dict(connection(emu), groups=[GROUPS["e3_no_sway"]], wait_timeout=30, poll_interval=0.2))
    assert not failed, result.get("msg")
    assert result["groups"][0]["processing_state"] == "ProcessingComplete" and result["groups"][0]["done"]
    assert emu.loss_ledger() == []
