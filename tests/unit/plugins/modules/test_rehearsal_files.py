# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The CI rehearsal (scripts/test step rehearse) runs the role with the demo's own variables and expects the demo's summary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def _load(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return yaml.safe_load(handle)


def test_rehearsal_variables_are_the_demos():
    demo_vars = _load("playbooks", "demo.yml")[0]["vars"]
    rehearsal_vars = _load("tests", "rehearsal", "demo-vars.yml")
    role_vars = dict(
        (key, value) for key, value in demo_vars.items() if key.startswith("migrate_direct_to_group_") and key != "migrate_direct_to_group_output_dir"
    )
    # The demo picks its groups by tenant shape (demo_profile, seed by default) and names the seed's licenses once.
    assert demo_vars["demo_profile"] == "seed"
    assert role_vars["migrate_direct_to_group_groups"] == "{{ demo_profiles[demo_profile].groups }}"
    seed_groups = demo_vars["demo_profiles"]["seed"]["groups"]
    assert [group["licenses"] for group in seed_groups] == ["{{ demo_licenses }}"] * len(seed_groups)
    role_vars["migrate_direct_to_group_groups"] = [dict(group, licenses=demo_vars["demo_licenses"]) for group in seed_groups]
    assert rehearsal_vars == role_vars


def test_expected_summary_is_the_demos_assertions():
    summary = _load("tests", "rehearsal", "demo-summary.json")
    assert summary["ledger_entries"] == 0 and summary["failures"] == 0 and summary["pending"] == 0
    # playbooks/demo.yml asserts these two reasons only; every user either migrated or skipped
    assert set(summary["skipped_by_verdict"]) <= {"plans_would_be_lost", "not_direct_member"}
    assert summary["migrated"] + sum(summary["skipped_by_verdict"].values()) == summary["users"]
    assert json.dumps(summary)
