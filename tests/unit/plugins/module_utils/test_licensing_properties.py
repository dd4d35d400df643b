# -*- coding: utf-8 -*-

# Copyright (c) 2025, entraops.licensing contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Property-based tests of the safety rule against an independent oracle written from DESIGN 1."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from hypothesis import given, settings, strategies as st

from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    RECORD_FIELDS,
    VERDICTS,
    SkuCatalog,
    assign_batches,
    classify,
    effective_enabled_plans,
    group_license_changes,
    lost_plans,
)

# A small ENTERPRISEPACK (real GUIDs) so that hypothesis explores plan overlaps densely:
# four user plans and one company plan.
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
USER_PLANS = {
    "efb87545-963c-4e0d-99df-69c6916d9eb0": "EXCHANGE_S_ENTERPRISE",
    "5dbe027f-2339-4123-9542-606e4d348a72": "SHAREPOINTENTERPRISE",
    "57ff2da0-773e-42df-b2af-ffb7a2317929": "TEAMS1",
    "7547a3fe-08ee-4ccb-b430-5077c5041653": "YAMMER_ENTERPRISE",
}
COMPANY_PLAN = "6f23d6a9-adbf-481c-8538-b4c095654487"  # M365_LIGHTHOUSE_CUSTOMER_PLAN1
ALL_PLANS = sorted(USER_PLANS) + [COMPANY_PLAN]
GROUPS = [
    "a0000000-0000-4000-8000-00000000000a",
    "b0000000-0000-4000-8000-00000000000b",
    "c0000000-0000-4000-8000-00000000000c",
    "d0000000-0000-4000-8000-00000000000d",
]
USER_ID = "2a1c6d7e-9f41-4d3b-8a55-0c2e1b7f9d10"

CATALOG = SkuCatalog.from_subscribed_skus(
    [
        {
            "skuId": E3,
            "skuPartNumber": "ENTERPRISEPACK",
            "consumedUnits": 1,
            "prepaidUnits": {"enabled": 5},
            "servicePlans": [{"servicePlanId": plan_id, "servicePlanName": name, "appliesTo": "User"} for plan_id, name in USER_PLANS.items()]
            + [{"servicePlanId": COMPANY_PLAN, "servicePlanName": "M365_LIGHTHOUSE_CUSTOMER_PLAN1", "appliesTo": "Company"}],
        }
    ]
)

plan_subsets = st.lists(st.sampled_from(ALL_PLANS), unique=True, max_size=len(ALL_PLANS))
group_subsets = st.lists(st.sampled_from(GROUPS), unique=True, max_size=len(GROUPS))
states = st.sampled_from(["Active", "Active", "Active", "ActiveWithError", "Disabled", "Error"])
errors = st.sampled_from([None, "None", "none", "None", "CountViolation", "MutuallyExclusiveViolation", "Other", ""])
processing_states = st.sampled_from([None, "ProcessingComplete", "ProcessingComplete", "QueuedForProcessing", "ProcessingInProgress", "ProcessingFailed"])


@st.composite
def scenarios(draw):
    direct_disabled = draw(st.one_of(st.none(), plan_subsets))
    inherited = []
    for group_id in draw(group_subsets):
        inherited.append({"skuId": E3, "assignedByGroup": group_id, "disabledPlans": draw(plan_subsets), "state": draw(states), "error": draw(errors)})
    entries = list(inherited)
    if direct_disabled is not None:
        entries.append({"skuId": E3, "assignedByGroup": None, "disabledPlans": direct_disabled, "state": "Active", "error": "None"})
    entries = draw(st.permutations(entries))
    groups = []
    for group_id in draw(group_subsets):
        carries = draw(st.booleans())
        groups.append(
            {
                "id": group_id,
                "displayName": "G " + group_id[0],
                "assignedLicenses": [{"skuId": E3, "disabledPlans": draw(plan_subsets)}] if carries else [],
                "licenseProcessingState": draw(st.one_of(st.none(), processing_states.map(lambda state: {"state": state}))),
                "securityEnabled": draw(st.sampled_from([True, True, False, None])),
            }
        )
    direct_member_of = draw(group_subsets)
    transitive = sorted(set(direct_member_of) | set(draw(group_subsets)))
    trusted = draw(st.one_of(st.none(), group_subsets))
    allow = draw(st.booleans())
    return {"entries": entries, "groups": groups, "direct_member_of": direct_member_of, "transitive": transitive, "trusted": trusted, "allow": allow}


def run(scenario, **overrides):
    values = dict(scenario, **overrides)
    subject = {"id": USER_ID, "userPrincipalName": "p@contoso.example", "licenseAssignmentStates": values["entries"]}
    return classify(
        subject,
        E3,
        CATALOG,
        values["groups"],
        values["direct_member_of"],
        values["transitive"],
        trusted_groups=values["trusted"],
        allow_service_loss=values["allow"],
    )


def oracle(scenario):
    """DESIGN 1 written out again, plainly, without the module's helpers.

    Returns (direct enabled plans or None, {group id: enabled plans} of healthy inheritance).
    """
    user_plans = set(USER_PLANS)
    direct = [e for e in scenario["entries"] if e["assignedByGroup"] is None]
    direct_enabled = user_plans - set(direct[0]["disabledPlans"]) if direct else None
    groups = dict((g["id"], g) for g in scenario["groups"])
    healthy = {}
    for entry in scenario["entries"]:
        group_id = entry["assignedByGroup"]
        if group_id is None:
            continue
        if entry["state"] != "Active" or entry["error"] not in (None, "None", "none"):
            continue
        if group_id not in scenario["direct_member_of"]:
            continue
        if scenario["trusted"] is not None and group_id not in scenario["trusted"]:
            continue
        group = groups.get(group_id)
        if group is None:
            continue
        carried = [lic for lic in group["assignedLicenses"] if lic["skuId"] == E3]
        if not carried:
            continue
        state = (group["licenseProcessingState"] or {}).get("state")
        if state not in (None, "ProcessingComplete"):
            continue
        healthy[group_id] = user_plans - set(entry["disabledPlans"]) - set(carried[0]["disabledPlans"])
    return direct_enabled, healthy


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_safe_to_remove_only_when_healthy_inheritance_covers_every_direct_plan(scenario):
    record = run(scenario)
    direct_enabled, healthy = oracle(scenario)
    if direct_enabled is None and not any(e["assignedByGroup"] for e in scenario["entries"]):
        assert record is None
        return
    assert record["verdict"] in VERDICTS
    assert tuple(sorted(record)) == tuple(sorted(RECORD_FIELDS))
    json.dumps(record)
    assert record["healthy_inherited_from"] == sorted(healthy)
    covered = set().union(*healthy.values()) if healthy else set()
    if direct_enabled is None:
        assert record["verdict"] == "inherited_only"
        return
    assert record["plans_lost"] == sorted(USER_PLANS[plan] for plan in direct_enabled - covered)
    if record["verdict"] == "safe_to_remove":
        assert healthy, "safe_to_remove without healthy inheritance"
        if not scenario["allow"]:
            assert direct_enabled <= covered, "safe_to_remove would lose a direct-only plan"
    # the converse: the rule holding must always be recognised
    if healthy and direct_enabled <= covered:
        assert record["verdict"] == "safe_to_remove"


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_allow_service_loss_never_relaxes_healthy_inheritance(scenario):
    strict = run(scenario, allow=False)
    relaxed = run(scenario, allow=True)
    if strict is None:
        assert relaxed is None
        return
    assert strict["healthy_inherited_from"] == relaxed["healthy_inherited_from"]
    assert strict["plans_lost"] == relaxed["plans_lost"]
    if strict["verdict"] == "safe_to_remove":
        assert relaxed["verdict"] == "safe_to_remove"
    if relaxed["verdict"] == "safe_to_remove":
        assert relaxed["healthy_inherited_from"]
    if not relaxed["healthy_inherited_from"]:
        assert relaxed["verdict"] == strict["verdict"]


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_removal_allowed_by_the_rule_leaves_the_ledger_empty(scenario):
    """What effective_enabled_plans sees after removing a safe direct copy is never less."""
    record = run(scenario, allow=False)
    if record is None or record["verdict"] != "safe_to_remove":
        return
    subject = {"id": USER_ID, "licenseAssignmentStates": scenario["entries"]}
    after = {"id": USER_ID, "licenseAssignmentStates": [e for e in scenario["entries"] if e["assignedByGroup"] is not None]}
    assert lost_plans(effective_enabled_plans(subject, CATALOG), effective_enabled_plans(after, CATALOG)) == {}


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_order_of_inputs_does_not_matter(scenario, rng):
    record = run(scenario)
    shuffled = dict(scenario)
    for key in ("entries", "groups", "direct_member_of", "transitive"):
        shuffled[key] = list(scenario[key])
        rng.shuffle(shuffled[key])
    assert run(shuffled) == record


record_strategy = st.builds(
    lambda upn, part, verdict, number: {
        "user_principal_name": upn,
        "sku_part_number": part,
        "verdict": verdict,
        "user_id": "00000000-0000-4000-8000-%012d" % number,
        "sku_id": E3,
    },
    st.text(alphabet="abcABC@.", min_size=1, max_size=6),
    st.sampled_from(["EMS", "ENTERPRISEPACK"]),
    st.sampled_from(["safe_to_remove", "safe_to_remove", "direct_only"]),
    st.integers(0, 10**6),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(record_strategy, max_size=40), st.integers(0, 12), st.integers(1, 9), st.randoms(use_true_random=False))
def test_batches_are_deterministic_and_sized(records, canary_size, batch_size, rng):
    rows = assign_batches(records, canary_size=canary_size, batch_size=batch_size)
    shuffled = list(records)
    rng.shuffle(shuffled)
    assert assign_batches(shuffled, canary_size=canary_size, batch_size=batch_size) == rows
    assert len(rows) == sum(1 for record in records if record["verdict"] == "safe_to_remove")
    batches = [row["batch"] for row in rows]
    assert batches == sorted(batches)
    assert batches.count(0) == min(canary_size, len(rows))
    for number in set(batches) - {0}:
        assert 1 <= batches.count(number) <= batch_size
    assert sorted(set(batches) - {0}) == list(range(1, len(set(batches) - {0}) + 1))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), plan_subsets), plan_subsets, st.permutations(range(5)))
def test_group_changes_are_idempotent_and_report_losses(current_disabled, desired_disabled, order):
    current = {E3: current_disabled} if current_disabled is not None else {}
    desired = {E3: frozenset(desired_disabled)}
    changes = group_license_changes(CATALOG, current, desired)
    # applying the change and asking again is a no-op, whatever the list order
    applied = dict((lic["skuId"], [lic["disabledPlans"][i] for i in order if i < len(lic["disabledPlans"])]) for lic in changes["add_licenses"])
    again = group_license_changes(CATALOG, dict(current, **applied), desired)
    assert again["changed"] is False
    before = set(USER_PLANS) - set(current_disabled) if current_disabled is not None else set()
    after = set(USER_PLANS) - set(desired_disabled)
    expected_loss = sorted(USER_PLANS[plan] for plan in before - after)
    assert changes["service_loss"] == ({"ENTERPRISEPACK": expected_loss} if expected_loss else {})
    assert changes["changed"] == (current_disabled is None or before != after)
