# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The single-fault explorer: one fault at Graph call i of a small migration, for every i, then resume.

A 30-user plan is removed by direct_license once without faults; its Graph calls (batch items
included, token requests excluded) are the index space. For a call index i, one of:

* ``kill``: the module runs as its own process; call i is held and the process SIGKILLed while it
  waits (Graph then runs the call: the dead client never learns);
* ``apply_504``: Graph runs call i and answers 504;
* ``apply_drop``: Graph runs call i and drops the connection;

then the same command is run again (the resume). Every run must end with no loss in the ledger,
no journal intent without a result, the final direct assignments of the fault-free run, and a
journal from which a restore gives back exactly the direct assignments before the migration.

CI runs a deterministic sample (``--single-fault-sample``, default 3 indices per fault kind);
``scripts/reliability`` runs every index (``-m exhaustive``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import random

import pytest

from ansible_collections.entraops.licensing.plugins.modules import direct_license
from ansible_collections.entraops.licensing.tests.reliability.campaign import (
    build_tenant,
    direct_state,
    graph_calls,
    group_phase,
    kill_at_call,
    plan_phase,
    rerun_removal,
    reset,
    run,
    split_ledger,
    unresolved_intents,
    wait_until_quiet,
)

EXPLORER_USERS = 30
KINDS = ("kill", "apply_504", "apply_drop")
SHARDS = 4
SAMPLE_SEED = 20261127


class Explorer:
    """The prepared tenant (groups licensed, plan written) and the fault-free run's calls and outcome."""

    def __init__(self, emu, folder):
        self.emu = emu
        self.folder = folder
        reset(emu, build_tenant(EXPLORER_USERS, seed=41))
        group_phase(emu)
        self.plan_path, dummy = plan_phase(emu, folder, canary_size=5, batch_size=10)
        emu.process_all()
        self.prepared = emu.export_state()
        self.direct_before = direct_state(emu)
        reset(emu, self.prepared)
        result, failed = run(emu, direct_license, plan_path=self.plan_path, journal_path=os.path.join(str(folder), "fault-free.jsonl"))
        assert not failed and result["removed_total"] == EXPLORER_USERS, result.get("msg")
        self.calls = [(entry["method"], entry["path"], entry["write"]) for entry in graph_calls(emu)]
        self.expected = direct_state(emu)
        assert split_ledger(emu) == ([], [])

    def write_indices(self):
        return [index for index, (dummy, dummy_path, write) in enumerate(self.calls) if write]

    def run_one(self, kind, index):
        """Problems found (empty: the run held every invariant)."""
        emu = self.emu
        reset(emu, self.prepared)
        journal_path = os.path.join(str(self.folder), "%s-%d.jsonl" % (kind, index))
        options = dict(plan_path=self.plan_path, journal_path=journal_path, max_failures=1000)
        if kind == "kill":
            outcome, dummy, stderr = kill_at_call(emu, self.folder, index, **options)
            if b"Traceback" in stderr:
                return ["traceback in the killed run: %s" % stderr.decode("utf-8", "replace")[-300:]]
        else:
            emu.add_fault(skip=index, count=1, apply_then=True, **({"status": 504} if kind == "apply_504" else {"drop": True}))
            result, failed = run(emu, direct_license, **options)
            emu.clear_faults()
            wait_until_quiet(emu, quiet_seconds=0.05)
            if failed and ("Traceback" in str(result) or "exception" in result):
                return ["unexpected error: %s" % result.get("msg")]
        problems = []
        rerun_removal(emu, self.plan_path, journal_path)
        ours, dummy = split_ledger(emu)
        if ours:
            problems.append("%d loss(es), first %s" % (len(ours), ours[0]))
        if direct_state(emu) != self.expected:
            problems.append("final direct assignments differ from the fault-free run")
        pending = unresolved_intents(journal_path)
        if pending:
            problems.append("%d intent(s) without a result" % len(pending))
        restore, failed = run(emu, direct_license, state="present", restore_from=journal_path)
        if failed or direct_state(emu) != self.direct_before:
            problems.append("the journal restore did not give back the direct assignments (%s)" % restore.get("msg"))
        return problems


@pytest.fixture(scope="module")
def explorer(campaign_emulator, tmp_path_factory):
    return Explorer(campaign_emulator, tmp_path_factory.mktemp("explorer"))


def sampled_indices(explorer, kind, size):
    rng = random.Random("%s-%s" % (SAMPLE_SEED, kind))
    # A write applied then lost is the interesting case for 504/drop; a kill matters at any call.
    population = list(range(len(explorer.calls))) if kind == "kill" else explorer.write_indices()
    return sorted(rng.sample(population, min(size, len(population))))


def explore(explorer, kind, indices, figures):
    failures = {}
    for index in indices:
        problems = explorer.run_one(kind, index)
        if problems:
            failures[index] = problems
    counts = dict(
        (name, sum(1 for problems in failures.values() for problem in problems if word in problem))
        for name, word in (("losses", "loss"), ("mismatches", "differ"), ("pending", "without a result"))
    )
    figures(kind="single_fault", fault=kind, runs=len(indices), indices=len(indices), calls=len(explorer.calls), **counts)
    assert failures == {}, "call indices where a %s broke an invariant: %s" % (kind, dict((index, explorer.calls[index]) for index in failures))


@pytest.mark.parametrize("kind", KINDS)
def test_single_fault_sample(explorer, kind, figures, request):
    size = request.config.getoption("--single-fault-sample")
    size = 3 if size is None else size
    indices = range(len(explorer.calls)) if size == 0 else sampled_indices(explorer, kind, size)
    explore(explorer, kind, list(indices), figures)


@pytest.mark.exhaustive
@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("kind", KINDS)
def test_single_fault_every_index(explorer, kind, shard, figures):
    explore(explorer, kind, [index for index in range(len(explorer.calls)) if index % SHARDS == shard], figures)


def test_fault_free_run_is_the_reference(explorer):
    assert len(explorer.calls) >= 3 * EXPLORER_USERS  # fresh read, write and re-read of every user
    assert len(explorer.write_indices()) == EXPLORER_USERS
    assert all(licenses == [] for user_id, licenses in explorer.expected.items() if explorer.direct_before[user_id])
