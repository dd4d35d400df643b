# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The client-side membership rule parser and evaluator (pure: no HTTP)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.entraops.licensing.plugins.module_utils.membership_rules import (
    MembershipRuleSyntaxError,
    MembershipRuleUnsupported,
    evaluate,
    graph_properties,
    matching_ids,
    normalize_rule,
    parse,
)

ADA = {
    "id": "A1",
    "department": "Sales",
    "country": "France",
    "usageLocation": "FR",
    "accountEnabled": True,
    "userType": "Member",
    "onPremisesExtensionAttributes": {"extensionAttribute7": "E3"},
}
BOB = {"id": "B2", "department": None, "country": "Germany", "usageLocation": "DE", "accountEnabled": False, "userType": "Guest"}


@pytest.mark.parametrize(
    "rule, ada, bob",
    [
        ("user.objectId -ne null", True, True),
        ('user.department -eq "sales"', True, False),
        ('user.department -ne "Sales"', False, True),
        ("user.department -eq null", False, True),
        ('user.country -startsWith "Fr"', True, False),
        ('user.country -notStartsWith "Fr"', False, True),
        ('user.country -contains "rman"', False, True),
        ('user.usageLocation -in ["FR", "BE"]', True, False),
        ('user.usageLocation -notIn ["FR"]', False, True),
        ("user.accountEnabled -eq true", True, False),
        ('user.userType -eq "Member" -and user.accountEnabled -eq true', True, False),
        ('user.userType -eq "Guest" -or user.country -eq "France"', True, True),
        ('-not (user.department -eq "Sales")', False, True),
        ('(user.country -eq "France" -or user.country -eq "Germany") -and -not (user.userType -eq "Guest")', True, False),
        ('user.extensionAttribute7 -eq "E3"', True, False),
        ('USER.DEPARTMENT -EQ "SALES"', True, False),
        ('user.department -contains "x"', False, False),
        ('user.department -eq "Sa`"les"', False, False),
    ],
)
def test_evaluation(rule, ada, bob):
    tree = parse(rule)
    assert (evaluate(tree, ADA), evaluate(tree, BOB)) == (ada, bob)


def test_and_binds_tighter_than_or():
    tree = parse('user.country -eq "Germany" -or user.country -eq "France" -and user.userType -eq "Guest"')
    assert matching_ids(tree, [ADA, BOB]) == {"b2"}


def test_properties_to_select():
    tree = parse('user.department -eq "Sales" -and user.extensionAttribute3 -ne null -or user.objectId -ne null')
    assert graph_properties(tree) == ["department", "id", "onPremisesExtensionAttributes"]


@pytest.mark.parametrize(
    "rule, position",
    [
        ("", 0),
        ('user.department -eq "Sales', 20),
        ('(user.department -eq "Sales"', 28),
        ('user.department -eq "Sales")', 27),
        ("user.department -eq", 19),
        ('user.department "Sales"', 16),
        ('user.usageLocation -in "FR"', 23),
        ('user.department -eq "a" -and', 28),
        ("user.department -eq Sales", 20),
        ('user.department -eq "a" ; x', 24),
    ],
)
def test_syntax_errors_name_the_position(rule, position):
    with pytest.raises(MembershipRuleSyntaxError) as caught:
        parse(rule)
    assert caught.value.position == position
    assert "position %d" % position in str(caught.value)


@pytest.mark.parametrize(
    "rule",
    [
        'user.department -match "^S"',
        'device.deviceOSType -eq "Windows"',
        'user.assignedPlans -any (assignedPlan.capabilityStatus -eq "Enabled")',
        'user.manager -eq "x"',
    ],
)
def test_rules_outside_the_subset_are_unsupported_not_syntax_errors(rule):
    with pytest.raises(MembershipRuleUnsupported):
        parse(rule)


def test_normalize_rule_folds_white_space_outside_strings_only():
    assert normalize_rule('  user.department   -eq  "A  B"\n -and user.objectId -ne null ') == 'user.department -eq "A  B" -and user.objectId -ne null'
