# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""license_assignment_info against the Graph emulator: verdicts, report, plan, query, scopes, no writes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import csv
import json

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.plan import read_plan
from ansible_collections.entraops.licensing.plugins.modules import license_assignment_info

from .migration_tenant import E3, GROUPS, SAFE_USERS, build_tenant, connection
from .utils import run_module
from ansible_collections.entraops.licensing.tests.unit.plugins.modules.utils import STRICT_KNOBS


@pytest.fixture(scope="module")
def setup():
    from graph_emulator import Emulator  # pylint: disable=import-outside-toplevel

    tenant, roles = build_tenant()
    with Emulator(tenant=copy.deepcopy(tenant), port=0, throttling=False, **STRICT_KNOBS) as emu:
        yield emu, roles


@pytest.fixture
def emu(setup):
    setup[0].clear_faults()
    setup[0].reset_stats()
    return setup[0]


@pytest.fixture
def roles(setup):
    return setup[1]


def run(emu, **options):
    return run_module(license_assignment_info.main, dict(connection(emu), **options))


def by_user(records):
    return dict((record["user_id"], record) for record in records)


def test_verdicts_for_every_situation(emu, roles, tmp_path):
    report_path = tmp_path / "report.csv"
    result, failed = run(emu, skus=["enterprisepack"], report_path=str(report_path))
    assert not failed, result.get("msg")
    assert result["changed"] is False
    records = by_user(result["records"])
    assert result["records_total"] == SAFE_USERS + 7
    assert records[roles["lossy"]]["verdict"] == "plans_would_be_lost"
    assert records[roles["lossy"]]["plans_lost"] == ["SWAY"]
    assert records[roles["two_groups"]]["verdict"] == "safe_to_remove"
    assert records[roles["two_groups"]]["healthy_inherited_from"] == sorted([GROUPS["e3_no_sway"], GROUPS["e3_no_yammer"]])
    assert records[roles["count_violation"]]["verdict"] == "inherited_in_error"
    assert records[roles["count_violation"]]["errors"] == ["CountViolation"]
    assert records[roles["exclusive"]]["errors"] == ["MutuallyExclusiveViolation"]
    assert records[roles["nested"]]["verdict"] == "not_direct_member"
    assert records[roles["direct_only"]]["verdict"] == "direct_only"
    assert records[roles["sway_off"]]["verdict"] == "safe_to_remove"
    assert result["summary"]["safe_to_remove"] == SAFE_USERS + 2
    assert result["summary"]["inherited_in_error"] == 2
    with open(str(report_path), encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == result["records_total"]
    sway_off = next(row for row in rows if row["user_id"] == roles["sway_off"])
    assert sway_off["direct_disabled_plans"] == "SWAY"  # plan names, not GUIDs
    # read-only: nothing but reads (and the token) reached the emulator
    assert [entry for entry in emu.request_log() if entry["write"] and entry["path"].startswith("/v1.0/")] == []
    # memberships come from group member lists, not one memberOf read per user
    assert not any("/memberOf" in entry["path"] for entry in emu.request_log())


def test_plan_batches_and_query(emu, roles, tmp_path):
    plan_path = tmp_path / "plan.json"
    result, failed = run(
        emu,
        skus=[E3],
        plan_path=str(plan_path),
        canary_size=3,
        batch_size=4,
        sample_size=2,
        query="[?verdict=='plans_would_be_lost'].{user: user_id, lost: plans_lost}",
    )
    assert not failed, result.get("msg")
    assert len(result["records"]) == 2
    assert result["query_result"] == [{"user": roles["lossy"], "lost": ["SWAY"]}]
    plan = read_plan(str(plan_path))
    rows = plan["rows"]
    assert len(rows) == SAFE_USERS + 2 and all(row["verdict"] == "safe_to_remove" for row in rows)
    assert [row["batch"] for row in rows] == [0, 0, 0] + [1 + index // 4 for index in range(len(rows) - 3)]
    assert result["batches"] == plan["batches"] == 4
    assert result["batch_sizes"] == {"0": 3, "1": 4, "2": 4, "3": 3}
    again, dummy = run(emu, skus=[E3], plan_path=str(tmp_path / "again.json"), canary_size=3, batch_size=4)
    assert [(row["user_id"], row["batch"]) for row in read_plan(again["plan_path"])["rows"]] == [(row["user_id"], row["batch"]) for row in rows]


def test_group_scope_includes_nested_members_and_trusted_groups(emu, roles, tmp_path):
    result, failed = run(emu, groups=["LIC E3 all"], trusted_groups=[GROUPS["e3_all"]], report_path=str(tmp_path / "r.json"))
    assert not failed, result.get("msg")
    records = by_user(result["records"])
    assert records[roles["nested"]]["verdict"] == "not_direct_member"
    assert result["records_total"] == SAFE_USERS + 1
    with open(str(tmp_path / "r.json"), encoding="utf-8") as stream:
        report = json.load(stream)
    assert report["summary"]["safe_to_remove"] == SAFE_USERS
    untrusted, dummy = run(emu, users=[roles["two_groups"]], trusted_groups=["LIC E3 all"])
    assert untrusted["records"][0]["verdict"] == "inherited_from_untrusted_group"


def test_user_scope_reports_unknown_users(emu, roles):
    result, failed = run(emu, users=["nobody@contoso.onmicrosoft.com", roles["safe_0"]], skus=["ENTERPRISEPACK"])
    assert not failed, result.get("msg")
    verdicts = sorted(record["verdict"] for record in result["records"])
    assert verdicts == ["safe_to_remove", "user_not_found"]
    assert result["summary"]["user_not_found"] == 1


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(skus=["NOPE"]), "'NOPE'"),
        (dict(groups=["No such group"]), "'No such group'"),
        (dict(skus=[E3], query="[?"), "JMESPath"),
        (dict(skus=[E3], batch_size=0), "batch_size"),
    ],
)
def test_bad_input_names_the_value(emu, options, expected):
    result, failed = run(emu, **options)
    assert failed and expected in result["msg"]


def test_users_without_usage_location_are_counted_once_and_named(emu, roles):
    original = emu.export_state()
    changed = copy.deepcopy(original)
    without = [roles["safe_1"], roles["two_groups"]]  # two_groups holds E3 from two groups: still one user
    for user in changed["users"]:
        if user["id"] in without:
            user["usageLocation"] = None
    emu.load_state(changed)
    try:
        result, failed = run(emu, skus=[E3], sample_size=1000)
    finally:
        emu.load_state(original)
    assert not failed, result.get("msg")
    assert result["users_without_usage_location"] == 2
    upns = dict((record["user_id"], record["user_principal_name"]) for record in result["records"])
    assert sorted(result["users_without_usage_location_sample"]) == sorted(upns[user_id] for user_id in without)
    records = by_user(result["records"])
    assert records[roles["safe_1"]]["usage_location"] is None
    assert len(records[roles["safe_2"]]["usage_location"]) == 2  # a two-letter country code


@pytest.mark.parametrize("options", [dict(skus=[E3]), dict(users=["nobody@contoso.onmicrosoft.com"])])
def test_failed_member_read_fails_the_task_even_with_nothing_classified(emu, options):
    # the licensed groups' members are read in the background while users are paged
    emu.add_fault(method="GET", route=r"/groups/[^/]+/members$", status=403, count=None)
    try:
        result, failed = run(emu, **options)
    finally:
        emu.clear_faults()
    assert failed
    assert "Cannot read the license assignments" in result["msg"]
