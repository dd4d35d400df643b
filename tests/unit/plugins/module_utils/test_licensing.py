# -*- coding: utf-8 -*-

# Copyright (c) 2025, entraops.licensing contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit tests for the pure licensing model: catalog, the safety rule, batches, group changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.guid import normalize_guid
from ansible_collections.entraops.licensing.plugins.module_utils.licensing import (
    RECORD_FIELDS,
    VERDICT_MEANINGS,
    VERDICTS,
    GroupFacts,
    LicensingInputError,
    SkuCatalog,
    _record,
    SkuNotSubscribedError,
    assign_batches,
    classify,
    classify_user,
    direct_entry,
    effective_enabled_plans,
    format_shortfall,
    group_license_changes,
    index_groups,
    inherited_entries,
    is_healthy_entry,
    lost_plans,
    resolve_license_specs,
    summarize,
    unit_shortfall,
    user_not_found_record,
)

FIXTURE_PATH = os.path.join(os.path.dirname(__file__), "fixtures", "subscribed_skus.json")

with open(FIXTURE_PATH) as fixture_file:
    SUBSCRIBED_SKUS = json.load(fixture_file)["value"]

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # ENTERPRISEPACK
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"  # EMS E3
E5 = "c7df2760-2c81-4ef7-b578-5b5392b571df"  # ENTERPRISEPREMIUM
NOT_SUBSCRIBED = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"  # SPE_E5, real but not in the fixture tenant

EXCHANGE = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # EXCHANGE_S_ENTERPRISE
SHAREPOINT = "5dbe027f-2339-4123-9542-606e4d348a72"  # SHAREPOINTENTERPRISE
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"  # TEAMS1
YAMMER = "7547a3fe-08ee-4ccb-b430-5077c5041653"  # YAMMER_ENTERPRISE
LIGHTHOUSE = "6f23d6a9-adbf-481c-8538-b4c095654487"  # M365_LIGHTHOUSE_CUSTOMER_PLAN1 (Company in the fixture)
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"  # EMS plan

USER_ID = "2a1c6d7e-9f41-4d3b-8a55-0c2e1b7f9d10"
GROUP_A = "a0000000-0000-4000-8000-00000000000a"
GROUP_B = "b0000000-0000-4000-8000-00000000000b"
GROUP_C = "c0000000-0000-4000-8000-00000000000c"


@pytest.fixture(scope="module")
def catalog():
    return SkuCatalog.from_subscribed_skus(SUBSCRIBED_SKUS)


def fixture_plan_ids(part_number, applies_to=None):
    """Plan ids straight from the fixture JSON (independent of the code under test)."""
    sku = [s for s in SUBSCRIBED_SKUS if s["skuPartNumber"] == part_number][0]
    return frozenset(p["servicePlanId"] for p in sku["servicePlans"] if applies_to is None or p["appliesTo"] == applies_to)


def entry(sku_id=E3, group=None, disabled=(), state="Active", error="None"):
    return {
        "skuId": sku_id,
        "assignedByGroup": group,
        "disabledPlans": list(disabled),
        "state": state,
        "error": error,
        "lastUpdatedDateTime": "2025-01-01T00:00:00Z",
    }


def user(*entries, **extra):
    result = {"id": USER_ID, "userPrincipalName": "Ada.Lovelace@contoso.example", "licenseAssignmentStates": list(entries)}
    result.update(extra)
    return result


def group(group_id, licenses=None, state="ProcessingComplete", name=None, security_enabled=True):
    """A Graph group dict; ``licenses`` maps sku id -> disabled plans (default: E3, nothing disabled)."""
    licenses = {E3: ()} if licenses is None else licenses
    return {
        "id": group_id,
        "displayName": name or "Licensing " + group_id[0].upper(),
        "assignedLicenses": [{"skuId": sku_id, "disabledPlans": list(disabled)} for sku_id, disabled in licenses.items()],
        "licenseProcessingState": None if state is None else {"state": state},
        "securityEnabled": security_enabled,
    }


# --------------------------------------------------------------------------------------------
# GUIDs and catalog
# --------------------------------------------------------------------------------------------


class TestNormalizeGuid:
    def test_lower_cases_and_strips_braces(self):
        assert normalize_guid(" {6FD2C87F-B296-42F0-B197-1E91E994B900} ", "SKU id", error=LicensingInputError) == E3

    @pytest.mark.parametrize("value", ["xyz", "6fd2c87f-b296-42f0-b197-1e91e994b90", "6fd2c87fb29642f0b1971e91e994b900", "", None, 42])
    def test_refuses_non_guids_naming_value_and_kind(self, value):
        with pytest.raises(LicensingInputError) as excinfo:
            normalize_guid(value, "group id", error=LicensingInputError)
        message = str(excinfo.value)
        assert repr(value) in message
        assert "is not a valid group id: expected a GUID like 6fd2c87f-b296-42f0-b197-1e91e994b900" in message


class TestCatalog:
    def test_resolve_sku_by_guid_any_case_and_part_number_any_case(self, catalog):
        assert catalog.resolve_sku(E3.upper()) == E3
        assert catalog.resolve_sku("enterprisepack") == E3
        assert catalog.resolve_sku(" EMS ") == EMS

    def test_unknown_part_number_names_it_and_lists_subscribed(self, catalog):
        with pytest.raises(SkuNotSubscribedError) as excinfo:
            catalog.resolve_sku("ENTERPRISEPACK_TYPO")
        message = str(excinfo.value)
        assert "'ENTERPRISEPACK_TYPO'" in message
        assert "AAD_PREMIUM, EMS, EMSPREMIUM, ENTERPRISEPACK, ENTERPRISEPREMIUM, STANDARDPACK" in message
        assert excinfo.value.sku == "ENTERPRISEPACK_TYPO"

    def test_well_formed_but_unsubscribed_guid_is_sku_not_subscribed(self, catalog):
        with pytest.raises(SkuNotSubscribedError) as excinfo:
            catalog.resolve_sku(NOT_SUBSCRIBED)
        assert NOT_SUBSCRIBED in str(excinfo.value)
        assert isinstance(excinfo.value, LicensingInputError)

    @pytest.mark.parametrize("value", [None, 5, "", ["EMS"]])
    def test_non_string_sku_is_an_input_error(self, catalog, value):
        with pytest.raises(LicensingInputError) as excinfo:
            catalog.resolve_sku(value)
        assert not isinstance(excinfo.value, SkuNotSubscribedError)
        assert "expected a SKU id (GUID) or skuPartNumber" in str(excinfo.value)

    def test_user_plan_ids_exclude_company_plans(self, catalog):
        assert catalog.user_plan_ids(E3) == fixture_plan_ids("ENTERPRISEPACK", "User")
        assert LIGHTHOUSE not in catalog.user_plan_ids(E3)
        assert len(catalog.user_plan_ids(E3)) == 35
        assert "ADALLOM_S_O365" not in catalog.plan_names(E5, catalog.user_plan_ids(E5))

    def test_resolve_plans_by_name_and_guid(self, catalog):
        assert catalog.resolve_plans(E3, ["exchange_s_enterprise", SHAREPOINT.upper(), "TEAMS1"]) == frozenset([EXCHANGE, SHAREPOINT, TEAMS])
        assert catalog.resolve_plans(E3, []) == frozenset()

    def test_resolve_plans_unknown_name_names_value_sku_and_valid_names(self, catalog):
        with pytest.raises(LicensingInputError) as excinfo:
            catalog.resolve_plans(EMS, ["INTUNE_B"])
        message = str(excinfo.value)
        assert "'INTUNE_B' is not a service plan of SKU EMS" in message
        assert "AAD_PREMIUM, ADALLOM_S_DISCOVERY, EXCHANGE_S_FOUNDATION, INTUNE_A, MFA_PREMIUM, RMS_S_ENTERPRISE, RMS_S_PREMIUM" in message

    def test_resolve_plans_guid_of_another_sku_is_refused(self, catalog):
        with pytest.raises(LicensingInputError, match="is not a service plan of SKU ENTERPRISEPACK"):
            catalog.resolve_plans(E3, [INTUNE_A])

    def test_resolve_plans_refuses_a_bare_string(self, catalog):
        with pytest.raises(LicensingInputError, match="'TEAMS1' is not a valid list of service plans: expected a list"):
            catalog.resolve_plans(E3, "TEAMS1")

    def test_plan_names_sorted_and_unknown_ids_shown_as_guid(self, catalog):
        unknown = "00000000-0000-4000-8000-0000000000ff"
        assert catalog.plan_names(E3, [TEAMS, unknown, EXCHANGE]) == [unknown, "EXCHANGE_S_ENTERPRISE", "TEAMS1"]

    def test_enabled_and_disabled_are_inverse_over_user_plans(self, catalog):
        enabled = catalog.enabled_plans(E3, [EXCHANGE.upper(), LIGHTHOUSE])
        assert EXCHANGE not in enabled and TEAMS in enabled
        assert enabled == catalog.user_plan_ids(E3) - {EXCHANGE}
        assert catalog.disabled_from_enabled(E3, [TEAMS, SHAREPOINT]) == catalog.user_plan_ids(E3) - {TEAMS, SHAREPOINT}

    def test_units(self, catalog):
        assert catalog.units(E3) == {"enabled": 100, "consumed": 40, "available": 60}
        assert catalog.units(EMS) == {"enabled": 50, "consumed": 50, "available": 0}

    def test_units_never_negative(self):
        over = dict(SUBSCRIBED_SKUS[0], consumedUnits=500)
        assert SkuCatalog.from_subscribed_skus([over]).units(over["skuId"])["available"] == 0

    def test_accepts_the_whole_graph_response(self):
        assert SkuCatalog.from_subscribed_skus({"value": SUBSCRIBED_SKUS}).part_number(EMS) == "EMS"

    def test_duplicate_sku_is_refused(self):
        with pytest.raises(LicensingInputError, match="appears twice"):
            SkuCatalog.from_subscribed_skus([SUBSCRIBED_SKUS[0], SUBSCRIBED_SKUS[0]])

    def test_get_unknown_sku_is_sku_not_subscribed(self, catalog):
        with pytest.raises(SkuNotSubscribedError):
            catalog.get(NOT_SUBSCRIBED)
        assert catalog.label(NOT_SUBSCRIBED) == NOT_SUBSCRIBED


# --------------------------------------------------------------------------------------------
# Assignment views
# --------------------------------------------------------------------------------------------


class TestAssignmentViews:
    @pytest.mark.parametrize(
        "state, error, healthy",
        [
            ("Active", "None", True),
            ("Active", None, True),
            ("active", "none", True),
            ("Active", " None ", True),
            ("Active", "", False),
            ("Active", "CountViolation", False),
            ("ActiveWithError", "None", False),
            ("Disabled", None, False),
            ("Error", "MutuallyExclusiveViolation", False),
            (None, None, False),
        ],
    )
    def test_is_healthy_entry(self, state, error, healthy):
        assert is_healthy_entry({"state": state, "error": error}) is healthy

    def test_reference_example_both_ways(self, catalog):
        # reference graph-api 2.2: the same SKU directly and from a group gives two entries.
        subject = user(entry(E3, None, [], "Active", "None"), entry(E3, GROUP_A.upper(), [YAMMER], "Active", "None"), entry(EMS, None, [], "Active", "None"))
        direct = direct_entry(subject, E3)
        assert direct["group_id"] is None and direct["disabled_plans"] == frozenset()
        assert [e["group_id"] for e in inherited_entries(subject, E3)] == [GROUP_A]
        assert inherited_entries(subject, EMS) == []

    def test_missing_license_assignment_states_is_refused(self):
        with pytest.raises(LicensingInputError, match=r"\$select=licenseAssignmentStates"):
            classify({"id": USER_ID, "userPrincipalName": "x@y"}, E3, None, {}, [])

    def test_group_facts_from_graph(self):
        facts = GroupFacts.from_graph(group(GROUP_A.upper(), {E3.upper(): [EXCHANGE.upper()]}, state="ProcessingInProgress"))
        assert facts.group_id == GROUP_A
        assert facts.assigned_licenses == {E3: frozenset([EXCHANGE])}
        assert facts.processing_state == "ProcessingInProgress"
        assert not facts.is_processing_done()
        assert GroupFacts.from_graph(group(GROUP_A, state=None)).is_processing_done()
        # the docs table types it as a plain string; accept that shape too
        assert GroupFacts.from_graph(dict(group(GROUP_A), licenseProcessingState="QueuedForProcessing")).processing_state == "QueuedForProcessing"
        assert set(index_groups([group(GROUP_A), facts])) == {GROUP_A}


# --------------------------------------------------------------------------------------------
# The safety rule: one case per verdict and per precedence decision
# --------------------------------------------------------------------------------------------


def run(catalog, entries, groups=(), direct_member_of=(GROUP_A,), transitive=(), trusted=None, allow=False, sku_id=E3):
    return classify(user(*entries), sku_id, catalog, list(groups), list(direct_member_of), list(transitive), trusted_groups=trusted, allow_service_loss=allow)


DIRECT = entry(E3, None)
FROM_A = entry(E3, GROUP_A)

CASES = [
    # id, entries, groups, direct_member_of, transitive, trusted, allow, verdict, extra expectations
    (
        "safe_both_ways",
        [DIRECT, FROM_A],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "safe_to_remove",
        {"healthy_inherited_from": [GROUP_A], "plans_lost": []},
    ),
    ("safe_error_null", [DIRECT, entry(E3, GROUP_A, error=None)], [group(GROUP_A)], [GROUP_A], [], None, False, "safe_to_remove", {}),
    ("safe_processing_state_null", [DIRECT, FROM_A], [group(GROUP_A, state=None)], [GROUP_A], [], None, False, "safe_to_remove", {}),
    ("direct_only_no_group", [DIRECT], [], [], [], None, False, "direct_only", {"healthy_inherited_from": [], "inherited_from": []}),
    ("direct_only_member_of_completed_group_without_entry", [DIRECT], [group(GROUP_A)], [GROUP_A], [], None, False, "direct_only", {}),
    (
        "direct_only_group_not_security_enabled",
        [DIRECT],
        [group(GROUP_A, state="QueuedForProcessing", security_enabled=False)],
        [GROUP_A],
        [],
        None,
        False,
        "direct_only",
        {},
    ),
    (
        "inherited_only",
        [FROM_A],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_only",
        {"direct": False, "plans_lost": [], "inherited_from": [GROUP_A]},
    ),
    (
        "inherited_only_even_in_error",
        [entry(E3, GROUP_A, state="Error", error="CountViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_only",
        {"errors": ["CountViolation"]},
    ),
    (
        "error_count_violation",
        [DIRECT, entry(E3, GROUP_A, state="Error", error="CountViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_in_error",
        {"errors": ["CountViolation"], "healthy_inherited_from": [], "blocking_groups": [GROUP_A]},
    ),
    (
        "error_active_with_error",
        [DIRECT, entry(E3, GROUP_A, state="ActiveWithError", error="MutuallyExclusiveViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_in_error",
        {"errors": ["MutuallyExclusiveViolation"]},
    ),
    (
        "error_disabled_without_code",
        [DIRECT, entry(E3, GROUP_A, state="Disabled", error=None)],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_in_error",
        {"errors": ["Disabled"]},
    ),
    (
        "error_code_on_active_entry",
        [DIRECT, entry(E3, GROUP_A, error="ProhibitedInUsageLocationViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        False,
        "inherited_in_error",
        {"errors": ["ProhibitedInUsageLocationViolation"]},
    ),
    (
        "processing_queued",
        [DIRECT, FROM_A],
        [group(GROUP_A, state="QueuedForProcessing")],
        [GROUP_A],
        [],
        None,
        False,
        "group_processing",
        {"healthy_inherited_from": [], "blocking_groups": [GROUP_A]},
    ),
    ("processing_in_progress", [DIRECT, FROM_A], [group(GROUP_A, state="ProcessingInProgress")], [GROUP_A], [], None, False, "group_processing", {}),
    ("processing_unknown_value", [DIRECT, FROM_A], [group(GROUP_A, state="ProcessingFailed")], [GROUP_A], [], None, False, "group_processing", {}),
    ("group_dropped_the_sku", [DIRECT, FROM_A], [group(GROUP_A, {EMS: ()})], [GROUP_A], [], None, False, "group_processing", {}),
    ("group_not_read", [DIRECT, FROM_A], [], [GROUP_A], [], None, False, "group_processing", {}),
    (
        "direct_member_no_entry_group_processing",
        [DIRECT],
        [group(GROUP_A, state="ProcessingInProgress")],
        [GROUP_A],
        [],
        None,
        False,
        "group_processing",
        {"inherited_from": []},
    ),
    ("direct_member_no_entry_state_null", [DIRECT], [group(GROUP_A, state=None)], [GROUP_A], [], None, False, "group_processing", {}),
    (
        "untrusted",
        [DIRECT, FROM_A],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        [GROUP_B],
        False,
        "inherited_from_untrusted_group",
        {"healthy_inherited_from": [], "inherited_from": [GROUP_A]},
    ),
    ("trusted", [DIRECT, FROM_A], [group(GROUP_A)], [GROUP_A], [], [GROUP_A.upper()], False, "safe_to_remove", {}),
    (
        "untrusted_group_error_is_not_this_runs_business",
        [DIRECT, entry(E3, GROUP_A, state="Error", error="CountViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        [GROUP_B],
        False,
        "inherited_from_untrusted_group",
        {"errors": ["CountViolation"]},
    ),
    (
        "untrusted_processing_group_without_entry_is_ignored",
        [DIRECT],
        [group(GROUP_A, state="QueuedForProcessing")],
        [GROUP_A],
        [],
        [GROUP_B],
        False,
        "direct_only",
        {},
    ),
    ("nested_only", [DIRECT], [group(GROUP_A)], [], [GROUP_A], None, False, "not_direct_member", {"blocking_groups": [GROUP_A]}),
    ("entry_but_no_longer_direct_member", [DIRECT, FROM_A], [group(GROUP_A)], [], [GROUP_A], None, False, "not_direct_member", {"healthy_inherited_from": []}),
    ("nested_group_without_the_sku_explains_nothing", [DIRECT], [group(GROUP_A, {EMS: ()})], [], [GROUP_A], None, False, "direct_only", {}),
    (
        "group_disables_a_direct_plan",
        [DIRECT, FROM_A],
        [group(GROUP_A, {E3: [EXCHANGE]})],
        [GROUP_A],
        [],
        None,
        False,
        "plans_would_be_lost",
        {"plans_lost": ["EXCHANGE_S_ENTERPRISE"], "healthy_inherited_from": [GROUP_A]},
    ),
    (
        "direct_disables_what_group_disables",
        [entry(E3, None, [EXCHANGE]), entry(E3, GROUP_A, [EXCHANGE])],
        [group(GROUP_A, {E3: [EXCHANGE]})],
        [GROUP_A],
        [],
        None,
        False,
        "safe_to_remove",
        {"direct_disabled_plans": [EXCHANGE]},
    ),
    (
        "union_of_two_groups_covers",
        [DIRECT, entry(E3, GROUP_A, [EXCHANGE]), entry(E3, GROUP_B, [SHAREPOINT])],
        [group(GROUP_A, {E3: [EXCHANGE]}), group(GROUP_B, {E3: [SHAREPOINT]})],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "safe_to_remove",
        {"healthy_inherited_from": [GROUP_A, GROUP_B], "plans_lost": []},
    ),
    (
        "group_changed_options_member_not_reprocessed",
        [DIRECT, entry(E3, GROUP_A, [])],
        [group(GROUP_A, {E3: [EXCHANGE]})],
        [GROUP_A],
        [],
        None,
        False,
        "plans_would_be_lost",
        {"plans_lost": ["EXCHANGE_S_ENTERPRISE"]},
    ),
    (
        "group_enabled_more_member_not_reprocessed",
        [DIRECT, entry(E3, GROUP_A, [TEAMS])],
        [group(GROUP_A, {E3: []})],
        [GROUP_A],
        [],
        None,
        False,
        "plans_would_be_lost",
        {"plans_lost": ["TEAMS1"]},
    ),
    (
        "company_plan_is_ignored",
        [DIRECT, entry(E3, GROUP_A, [LIGHTHOUSE])],
        [group(GROUP_A, {E3: [LIGHTHOUSE]})],
        [GROUP_A],
        [],
        None,
        False,
        "safe_to_remove",
        {},
    ),
    (
        "allow_service_loss_relaxes_subset_only",
        [DIRECT, FROM_A],
        [group(GROUP_A, {E3: [EXCHANGE, TEAMS]})],
        [GROUP_A],
        [],
        None,
        True,
        "safe_to_remove",
        {"plans_lost": ["EXCHANGE_S_ENTERPRISE", "TEAMS1"]},
    ),
    ("allow_service_loss_never_relaxes_inheritance", [DIRECT], [], [], [], None, True, "direct_only", {}),
    (
        "allow_service_loss_not_for_errors",
        [DIRECT, entry(E3, GROUP_A, state="Error", error="CountViolation")],
        [group(GROUP_A)],
        [GROUP_A],
        [],
        None,
        True,
        "inherited_in_error",
        {},
    ),
    (
        "allow_service_loss_not_for_processing",
        [DIRECT, FROM_A],
        [group(GROUP_A, state="QueuedForProcessing")],
        [GROUP_A],
        [],
        None,
        True,
        "group_processing",
        {},
    ),
    # precedence when G is empty
    (
        "error_outranks_processing",
        [DIRECT, entry(E3, GROUP_A, state="Error", error="CountViolation"), entry(E3, GROUP_B)],
        [group(GROUP_A), group(GROUP_B, state="ProcessingInProgress")],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "inherited_in_error",
        {"blocking_groups": [GROUP_A]},
    ),
    (
        "processing_outranks_untrusted",
        [DIRECT, entry(E3, GROUP_A), entry(E3, GROUP_B)],
        [group(GROUP_A, state="QueuedForProcessing"), group(GROUP_B)],
        [GROUP_A, GROUP_B],
        [],
        [GROUP_A],
        False,
        "group_processing",
        {"blocking_groups": [GROUP_A]},
    ),
    (
        "untrusted_outranks_nested",
        [DIRECT, entry(E3, GROUP_B)],
        [group(GROUP_A), group(GROUP_B)],
        [GROUP_B],
        [GROUP_A],
        [GROUP_A, GROUP_C],
        False,
        "inherited_from_untrusted_group",
        {"blocking_groups": [GROUP_B]},
    ),
    (
        "nested_trusted_with_untrusted_group_that_gave_nothing",
        [DIRECT],
        [group(GROUP_A), group(GROUP_B, state="QueuedForProcessing")],
        [GROUP_B],
        [GROUP_A],
        [GROUP_A],
        False,
        "not_direct_member",
        {"blocking_groups": [GROUP_A]},
    ),
    # precedence when G is non-empty but short: only a source that would supply a lost plan explains
    (
        "errored_group_would_supply_the_lost_plan",
        [DIRECT, entry(E3, GROUP_A, [EXCHANGE]), entry(E3, GROUP_B, state="Error", error="CountViolation")],
        [group(GROUP_A, {E3: [EXCHANGE]}), group(GROUP_B)],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "inherited_in_error",
        {"plans_lost": ["EXCHANGE_S_ENTERPRISE"], "healthy_inherited_from": [GROUP_A], "blocking_groups": [GROUP_B]},
    ),
    (
        "errored_group_would_not_supply_the_lost_plan",
        [DIRECT, entry(E3, GROUP_A, [EXCHANGE]), entry(E3, GROUP_B, [EXCHANGE], state="Error", error="CountViolation")],
        [group(GROUP_A, {E3: [EXCHANGE]}), group(GROUP_B, {E3: [EXCHANGE]})],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "plans_would_be_lost",
        {"errors": ["CountViolation"], "blocking_groups": []},
    ),
    (
        "processing_group_would_supply_the_lost_plan",
        [DIRECT, entry(E3, GROUP_A, [EXCHANGE])],
        [group(GROUP_A, {E3: [EXCHANGE]}), group(GROUP_B, state="ProcessingInProgress")],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "group_processing",
        {"blocking_groups": [GROUP_B]},
    ),
    (
        "completed_group_without_entry_does_not_block_a_safe_user",
        [DIRECT, FROM_A],
        [group(GROUP_A), group(GROUP_B, state="QueuedForProcessing")],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "safe_to_remove",
        {},
    ),
    (
        "healthy_and_errored_groups_cover",
        [DIRECT, FROM_A, entry(E3, GROUP_B, state="Error", error="CountViolation")],
        [group(GROUP_A), group(GROUP_B)],
        [GROUP_A, GROUP_B],
        [],
        None,
        False,
        "safe_to_remove",
        {"errors": ["CountViolation"], "healthy_inherited_from": [GROUP_A], "inherited_from": [GROUP_A, GROUP_B]},
    ),
]


@pytest.mark.parametrize(
    "entries, groups, direct_member_of, transitive, trusted, allow, verdict, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_classify_table(catalog, entries, groups, direct_member_of, transitive, trusted, allow, verdict, expected):
    record = run(catalog, entries, groups, direct_member_of, transitive, trusted, allow)
    assert record["verdict"] == verdict, record["reason"]
    for key, value in expected.items():
        assert record[key] == value, key
    assert tuple(sorted(record)) == tuple(sorted(RECORD_FIELDS))
    assert record["reason"]
    json.dumps(record)  # records go to files and return values as they are


def test_every_verdict_appears_in_the_table_or_record_helpers():
    seen = set(case[7] for case in CASES) | {"user_not_found", "sku_not_subscribed"}
    assert seen == set(VERDICTS)
    assert set(VERDICT_MEANINGS) == set(VERDICTS)


def test_record_content_for_the_common_case(catalog):
    record = run(catalog, [entry(E3, None, [YAMMER.upper()]), entry(E3, GROUP_A, [YAMMER])], [group(GROUP_A, {E3: [YAMMER]})])
    assert record["user_id"] == USER_ID
    assert record["user_principal_name"] == "Ada.Lovelace@contoso.example"
    assert record["sku_id"] == E3 and record["sku_part_number"] == "ENTERPRISEPACK"
    assert record["direct"] is True
    assert record["direct_disabled_plans"] == [YAMMER]
    assert "YAMMER_ENTERPRISE" not in record["direct_enabled_plan_names"]
    assert "EXCHANGE_S_ENTERPRISE" in record["direct_enabled_plan_names"]
    assert record["direct_enabled_plan_names"] == record["inherited_enabled_plan_names"]
    assert len(record["direct_enabled_plan_names"]) == 34


def test_direct_only_reports_every_direct_plan_as_lost(catalog):
    record = run(catalog, [entry(E3, None, [TEAMS])])
    assert record["plans_lost"] == catalog.plan_names(E3, catalog.user_plan_ids(E3) - {TEAMS})


def test_no_entry_for_the_sku_gives_no_record(catalog):
    assert run(catalog, [entry(EMS, None)]) is None


def test_user_holding_an_unsubscribed_sku(catalog):
    record = run(catalog, [entry(NOT_SUBSCRIBED, None), entry(NOT_SUBSCRIBED, GROUP_A)], [group(GROUP_A, {NOT_SUBSCRIBED: ()})], sku_id=NOT_SUBSCRIBED)
    assert record["verdict"] == "sku_not_subscribed"
    assert record["sku_part_number"] is None
    assert record["direct"] is True and record["inherited_from"] == [GROUP_A]


def test_upper_case_ids_everywhere_give_the_same_record(catalog):
    lower = run(catalog, [DIRECT, entry(E3, GROUP_A, [EXCHANGE])], [group(GROUP_A, {E3: [EXCHANGE]})], [GROUP_A])
    upper = classify(
        user(entry(E3.upper(), None), entry(E3.upper(), GROUP_A.upper(), [EXCHANGE.upper()])),
        E3.upper(),
        catalog,
        [group(GROUP_A.upper(), {E3.upper(): [EXCHANGE.upper()]})],
        [GROUP_A.upper()],
    )
    assert upper == lower
    assert upper["verdict"] == "plans_would_be_lost"


def test_malformed_membership_is_an_input_error(catalog):
    with pytest.raises(LicensingInputError, match="'Sales' is not a valid direct member-of group id"):
        run(catalog, [DIRECT], direct_member_of=["Sales"])
    with pytest.raises(LicensingInputError, match="expected a list"):
        classify(user(DIRECT), E3, catalog, [], GROUP_A)


def test_group_facts_objects_and_graph_dicts_are_equivalent(catalog):
    graph_groups = [group(GROUP_A, {E3: [EXCHANGE]}), group(GROUP_B)]
    as_facts = dict((g["id"], GroupFacts.from_graph(g)) for g in graph_groups)
    entries = [DIRECT, entry(E3, GROUP_A, [EXCHANGE]), entry(E3, GROUP_B)]
    assert run(catalog, entries, graph_groups, [GROUP_A, GROUP_B]) == classify(user(*entries), E3, catalog, as_facts, [GROUP_A, GROUP_B])


# --------------------------------------------------------------------------------------------
# classify_user, records helpers, summary
# --------------------------------------------------------------------------------------------


class TestClassifyUser:
    def test_one_record_per_held_sku_sorted_by_part_number(self, catalog):
        subject = user(entry(EMS, None), entry(E3, None), entry(E3, GROUP_A), entry(EMS, GROUP_B, state="Error", error="CountViolation"))
        records = classify_user(subject, catalog, [group(GROUP_A), group(GROUP_B, {EMS: ()})], [GROUP_A, GROUP_B])
        assert [(r["sku_part_number"], r["verdict"]) for r in records] == [("EMS", "inherited_in_error"), ("ENTERPRISEPACK", "safe_to_remove")]

    def test_scope_limits_skus_and_reports_unsubscribed(self, catalog):
        subject = user(entry(EMS, None), entry(E3, None))
        records = classify_user(subject, catalog, [], [], sku_ids=[E3.upper(), NOT_SUBSCRIBED, E5])
        assert [(r["sku_id"], r["verdict"]) for r in records] == [(NOT_SUBSCRIBED, "sku_not_subscribed"), (E3, "direct_only")]

    def test_user_without_licenses(self, catalog):
        assert classify_user(user(), catalog, [], []) == []
        assert classify_user(user(licenseAssignmentStates=None), catalog, [], []) == []

    def test_user_not_found_record(self):
        by_upn = user_not_found_record("ghost@contoso.example", sku_id=E3.upper(), sku_part_number="ENTERPRISEPACK")
        assert by_upn["verdict"] == "user_not_found"
        assert by_upn["user_principal_name"] == "ghost@contoso.example" and by_upn["user_id"] is None
        assert by_upn["sku_id"] == E3
        assert "'ghost@contoso.example'" in by_upn["reason"]
        assert set(by_upn) == set(RECORD_FIELDS)
        by_id = user_not_found_record(USER_ID.upper())
        assert by_id["user_id"] == USER_ID and by_id["user_principal_name"] is None

    def test_summarize_has_every_verdict(self, catalog):
        records = [{"verdict": "safe_to_remove"}, {"verdict": "safe_to_remove"}, user_not_found_record("x@y")]
        summary = summarize(records)
        assert list(summary) == list(VERDICTS)
        assert summary["safe_to_remove"] == 2 and summary["user_not_found"] == 1 and summary["direct_only"] == 0
        assert sum(summary.values()) == 3
        assert summarize([]) == dict((verdict, 0) for verdict in VERDICTS)

    def test_summarize_refuses_unknown_verdict(self):
        with pytest.raises(LicensingInputError, match="'maybe' is not a known verdict"):
            summarize([{"verdict": "maybe"}])


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def safe_record(upn, sku_part_number="ENTERPRISEPACK", verdict="safe_to_remove", user_id=None):
    return {
        "user_id": user_id or "00000000-0000-4000-8000-%012d" % abs(hash(upn) % 10**12),
        "user_principal_name": upn,
        "sku_id": E3 if sku_part_number == "ENTERPRISEPACK" else EMS,
        "sku_part_number": sku_part_number,
        "verdict": verdict,
    }


class TestBatches:
    def test_canary_then_batches_in_stable_order(self):
        records = [safe_record("user%02d@contoso.example" % number) for number in range(10)]
        records.append(safe_record("skipped@contoso.example", verdict="direct_only"))
        shuffled = list(records)
        random.Random(4).shuffle(shuffled)
        rows = assign_batches(shuffled, canary_size=2, batch_size=3)
        assert [row["user_principal_name"] for row in rows] == ["user%02d@contoso.example" % number for number in range(10)]
        assert [row["batch"] for row in rows] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
        assert rows == assign_batches(records, canary_size=2, batch_size=3)
        assert all("batch" not in record for record in records)

    def test_order_is_part_number_then_upn_casefolded_then_user_id(self):
        records = [
            safe_record("bob@x", "EMS"),
            safe_record("Alice@x"),
            safe_record("alice@x", user_id="00000000-0000-4000-8000-000000000001"),
            safe_record("ALICE@x", user_id="00000000-0000-4000-8000-000000000000"),
            safe_record("carol@x", "EMS"),
        ]
        rows = assign_batches(records, canary_size=0, batch_size=500)
        assert [(row["sku_part_number"], row["user_principal_name"]) for row in rows][:2] == [("EMS", "bob@x"), ("EMS", "carol@x")]
        assert [row["user_id"] for row in rows[2:4]] == ["00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000001"]
        assert set(row["batch"] for row in rows) == {1}

    def test_canary_larger_than_plan(self):
        rows = assign_batches([safe_record("a@x"), safe_record("b@x")], canary_size=10)
        assert [row["batch"] for row in rows] == [0, 0]

    @pytest.mark.parametrize(
        "canary_size, batch_size, message",
        [
            (-1, 500, "-1 is not a valid canary_size: expected an integer >= 0"),
            (10, 0, "0 is not a valid batch_size: expected an integer >= 1"),
            ("10", 500, "'10' is not a valid canary_size"),
            (10, True, "True is not a valid batch_size"),
        ],
    )
    def test_sizes_are_validated(self, canary_size, batch_size, message):
        with pytest.raises(LicensingInputError) as excinfo:
            assign_batches([], canary_size=canary_size, batch_size=batch_size)
        assert message in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# Effective plans and loss detection
# --------------------------------------------------------------------------------------------


class TestLossDetection:
    def test_removing_a_covered_direct_assignment_loses_nothing(self, catalog):
        before = effective_enabled_plans(user(DIRECT, FROM_A, entry(EMS, None)), catalog)
        after = effective_enabled_plans(user(FROM_A, entry(EMS, None)), catalog)
        assert before[E3] == catalog.user_plan_ids(E3)
        assert lost_plans(before, after) == {}

    def test_plans_only_the_direct_copy_gave_are_lost(self, catalog):
        before = effective_enabled_plans(user(DIRECT, entry(E3, GROUP_A, [EXCHANGE])), catalog)
        after = effective_enabled_plans(user(entry(E3, GROUP_A, [EXCHANGE])), catalog)
        assert lost_plans(before, after) == {E3: frozenset([EXCHANGE])}

    def test_unhealthy_entries_give_nothing(self, catalog):
        before = effective_enabled_plans(user(DIRECT, entry(E3, GROUP_A, state="Error", error="CountViolation")), catalog)
        after = effective_enabled_plans(user(entry(E3, GROUP_A, state="Error", error="CountViolation")), catalog)
        assert lost_plans(before, after) == {E3: catalog.user_plan_ids(E3)}

    def test_a_vanished_sku_is_a_loss_even_when_unknown_to_the_catalog(self, catalog):
        before = effective_enabled_plans(user(entry(NOT_SUBSCRIBED, None)), catalog)
        assert before == {NOT_SUBSCRIBED: frozenset()}
        assert lost_plans(before, {}) == {NOT_SUBSCRIBED: frozenset()}

    def test_gaining_is_not_a_loss(self, catalog):
        assert lost_plans({E3: frozenset([TEAMS])}, {E3: frozenset([TEAMS, EXCHANGE]), EMS: frozenset([INTUNE_A])}) == {}


# --------------------------------------------------------------------------------------------
# Group side
# --------------------------------------------------------------------------------------------


class TestLicenseSpecs:
    def test_disabled_and_enabled_forms(self, catalog):
        desired = resolve_license_specs(
            catalog,
            [
                {"sku": "enterprisepack", "disabled_plans": ["YAMMER_ENTERPRISE", SWAY_ID]},
                {"sku": EMS.upper(), "enabled_plans": ["INTUNE_A", "AAD_PREMIUM"]},
                {"sku": "AAD_PREMIUM"},
            ],
        )
        assert desired[E3] == frozenset([YAMMER, SWAY_ID])
        assert catalog.enabled_plans(EMS, desired[EMS]) == catalog.resolve_plans(EMS, ["INTUNE_A", "AAD_PREMIUM"])
        assert desired[catalog.resolve_sku("AAD_PREMIUM")] == frozenset()

    def test_both_forms_is_an_error(self, catalog):
        with pytest.raises(LicensingInputError, match="license 'EMS' sets both disabled_plans and enabled_plans"):
            resolve_license_specs(catalog, [{"sku": "EMS", "disabled_plans": [], "enabled_plans": ["INTUNE_A"]}])

    def test_same_sku_twice_is_an_error(self, catalog):
        with pytest.raises(LicensingInputError, match="a second time"):
            resolve_license_specs(catalog, [{"sku": "EMS"}, {"sku": EMS}])

    def test_unknown_sku_and_plan_are_named(self, catalog):
        with pytest.raises(SkuNotSubscribedError, match="'SPE_E5' is not a subscribed SKU"):
            resolve_license_specs(catalog, [{"sku": "SPE_E5"}])
        with pytest.raises(LicensingInputError, match="'TEAMS2' is not a service plan of SKU ENTERPRISEPACK"):
            resolve_license_specs(catalog, [{"sku": "ENTERPRISEPACK", "disabled_plans": ["TEAMS2"]}])
        with pytest.raises(LicensingInputError, match="expected an object with 'sku'"):
            resolve_license_specs(catalog, ["EMS"])


SWAY_ID = "a23b959c-7ce8-4e57-9140-b90eb88a9e97"


class TestGroupLicenseChanges:
    def test_adds_a_new_sku(self, catalog):
        changes = group_license_changes(catalog, [], {E3: frozenset([YAMMER])})
        assert changes["changed"] is True
        assert changes["add_licenses"] == [{"skuId": E3, "disabledPlans": [YAMMER]}]
        assert changes["remove_licenses"] == []
        assert changes["before"] == {}
        assert "YAMMER_ENTERPRISE" not in changes["after"]["ENTERPRISEPACK"]
        assert changes["service_loss"] == {}

    def test_same_plan_sets_in_any_order_or_case_is_no_change(self, catalog):
        current = [{"skuId": E3.upper(), "disabledPlans": [YAMMER.upper(), EXCHANGE]}]
        changes = group_license_changes(catalog, current, {E3: frozenset([EXCHANGE, YAMMER])})
        assert changes["changed"] is False
        assert changes["add_licenses"] == [] and changes["remove_licenses"] == []
        assert changes["before"] == changes["after"]

    def test_disabled_lists_differing_only_in_company_plans_is_no_change(self, catalog):
        changes = group_license_changes(catalog, {E3: [LIGHTHOUSE]}, {E3: frozenset()})
        assert changes["changed"] is False

    def test_disabling_an_enabled_plan_is_a_service_loss(self, catalog):
        changes = group_license_changes(catalog, {E3: []}, {E3: frozenset([EXCHANGE, TEAMS])})
        assert changes["changed"] is True
        assert changes["service_loss"] == {"ENTERPRISEPACK": ["EXCHANGE_S_ENTERPRISE", "TEAMS1"]}

    def test_enabling_more_is_not_a_loss(self, catalog):
        changes = group_license_changes(catalog, {E3: [EXCHANGE]}, {E3: frozenset()})
        assert changes["add_licenses"] == [{"skuId": E3, "disabledPlans": []}]
        assert changes["service_loss"] == {}

    def test_state_absent_removes_listed_skus_only(self, catalog):
        changes = group_license_changes(catalog, {E3: [], EMS: []}, {EMS: frozenset(), E5: frozenset()}, state="absent")
        assert changes["remove_licenses"] == [EMS]
        assert changes["add_licenses"] == []
        assert list(changes["after"]) == ["ENTERPRISEPACK"]
        assert changes["service_loss"] == {"EMS": catalog.plan_names(EMS, catalog.user_plan_ids(EMS))}
        again = group_license_changes(catalog, {E3: []}, {EMS: frozenset()}, state="absent")
        assert again["changed"] is False

    def test_exclusive_removes_unlisted_skus(self, catalog):
        changes = group_license_changes(catalog, {E3: [], EMS: []}, {E3: frozenset()}, exclusive=True)
        assert changes["remove_licenses"] == [EMS]
        assert changes["add_licenses"] == []
        assert set(changes["service_loss"]) == {"EMS"}
        not_exclusive = group_license_changes(catalog, {E3: [], EMS: []}, {E3: frozenset()})
        assert not_exclusive["changed"] is False

    def test_exclusive_with_absent_is_refused(self, catalog):
        with pytest.raises(LicensingInputError, match="exclusive applies only"):
            group_license_changes(catalog, {}, {}, state="absent", exclusive=True)
        with pytest.raises(LicensingInputError, match="'gone' is not a valid state"):
            group_license_changes(catalog, {}, {}, state="gone")

    def test_exclusive_removal_of_an_unsubscribed_sku_is_labelled_by_guid(self, catalog):
        changes = group_license_changes(catalog, {NOT_SUBSCRIBED: []}, {}, exclusive=True)
        assert changes["remove_licenses"] == [NOT_SUBSCRIBED]
        assert changes["service_loss"] == {NOT_SUBSCRIBED: []}


class TestUnits:
    def test_shortfall_only_for_skus_that_do_not_fit(self, catalog):
        new_consumers = {E3: 60, EMS: 3, E5: 12}
        shortfall = unit_shortfall(catalog, [E3, EMS, E5], new_consumers)
        assert shortfall == {EMS: 3, E5: 1}
        message = format_shortfall(catalog, shortfall, new_consumers)
        assert "EMS needs 3 more unit(s) (0 available, 3 member(s) do not hold it yet)" in message
        assert "ENTERPRISEPREMIUM needs 1 more unit(s)" in message
        assert "none of the group's SKUs" in message

    def test_members_already_holding_the_sku_need_nothing(self, catalog):
        assert unit_shortfall(catalog, [EMS], {}) == {}


def test_records_carry_the_usage_location_or_none():
    assert _record({"id": "B7B1E1A6-0000-4000-8000-000000000001", "usageLocation": "FR"}, "x", SkuCatalog({}))["usage_location"] == "FR"
    assert _record({"id": "B7B1E1A6-0000-4000-8000-000000000001", "usageLocation": ""}, "x", SkuCatalog({}))["usage_location"] is None
    assert user_not_found_record("ghost@contoso.example")["usage_location"] is None
