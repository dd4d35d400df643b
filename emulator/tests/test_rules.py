"""The dynamic membership rule engine (graph_emulator/rules.py): parsing, evaluation, positions of errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph_emulator.rules import PROPERTIES, RuleSyntaxError, parse_rule


def user(**values):
    data = {"id": "0b7d7b0e-1f5c-4d6a-8d2e-000000000001", "accountEnabled": True, "userType": "Member"}
    data.update(values)
    return lambda name: data.get(name)


def test_object_id_not_null_matches_every_user():
    rule = parse_rule("user.objectId -ne null")
    assert rule.matches(user()) is True
    assert rule.properties == {"id"}


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ('user.department -eq "Sales"', {"department": "sales"}, True),
        ('user.department -eq "Sales"', {"department": "Sales EMEA"}, False),
        ('user.department -ne "Sales"', {"department": None}, True),
        ('user.department -startsWith "Sal"', {"department": "SALES"}, True),
        ('user.department -notStartsWith "Sal"', {"department": "Support"}, True),
        ('user.department -notStartsWith "Sal"', {"department": None}, True),
        ('user.jobTitle -contains "engineer"', {"jobTitle": "Senior Engineer"}, True),
        ('user.jobTitle -notContains "engineer"', {"jobTitle": "Senior Engineer"}, False),
        ('user.country -in ["GB","de"]', {"country": "DE"}, True),
        ('user.country -notIn ["GB","DE"]', {"country": "FR"}, True),
        ("user.accountEnabled -eq true", {"accountEnabled": True}, True),
        ("user.accountEnabled -eq false", {"accountEnabled": True}, False),
        ('user.userType -eq "Member"', {}, True),
        ("user.usageLocation -eq null", {"usageLocation": None}, True),
        ("user.usageLocation -eq null", {"usageLocation": ""}, True),
        ('user.extensionAttribute7 -eq "E3"', {"onPremisesExtensionAttributes.extensionAttribute7": "e3"}, True),
        ('USER.DEPARTMENT -EQ "x" -OR user.city -eq "Paris"', {"city": "paris"}, True),
        ('-not (user.department -eq "HR")', {"department": "HR"}, False),
        ('(user.department -eq "HR" -or user.department -eq "Legal") -and user.accountEnabled -eq true', {"department": "Legal"}, True),
        ('user.department -eq "HR" -or user.department -eq "Legal" -and user.country -eq "US"', {"department": "HR", "country": "FR"}, True),
        ('user.companyName -eq "Say `"hi`""', {"companyName": 'say "HI"'}, True),
        ('user.employeeId -startsWith "E"', {"employeeId": None}, False),
    ],
)
def test_operators_properties_and_precedence(text, values, expected):
    assert parse_rule(text).matches(user(**values)) is expected


@pytest.mark.parametrize(
    ("text", "position", "expected_fragment"),
    [
        ('user.department -equals "Sales"', 16, "an operator"),
        ("user.department -eq Sales", 20, "a value"),
        ('user.nickname -eq "x"', 0, "a supported user property"),
        ('(user.department -eq "x"', 24, "')'"),
        ('user.department -eq "x" user.city -eq "y"', 24, "-and, -or"),
        ('user.department -eq "Sales', 20, "closing double quote"),
        ('user.country -in ["GB" "DE"]', 23, "',' or ']'"),
        ("", 0, "an expression"),
        ('department -eq "x"', 0, "a user property"),
    ],
)
def test_a_rule_it_cannot_read_names_the_position_and_what_was_expected(text, position, expected_fragment):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    assert caught.value.position == position
    assert expected_fragment in caught.value.expected
    assert f"at position {position}" in str(caught.value)


NAMES = sorted(n for n in PROPERTIES if n != "accountenabled")
WORDS = st.sampled_from(["Sales", "HR", "Engineering", "", "sales", "Support"])


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), value=st.one_of(st.none(), WORDS), literal=st.sampled_from(["Sales", "HR", "Engineering", "sales", "Support"]))
def test_negated_operators_are_the_complement(name, value, literal):
    values = {PROPERTIES[name]: value}
    for positive, negative in (("-eq", "-ne"), ("-startsWith", "-notStartsWith"), ("-contains", "-notContains")):
        yes = parse_rule(f'user.{name} {positive} "{literal}"').matches(user(**values))
        no = parse_rule(f'user.{name} {negative} "{literal}"').matches(user(**values))
        assert yes != no
    inside = parse_rule(f'user.{name} -in ["{literal}", "x"]').matches(user(**values))
    assert inside == parse_rule(f'user.{name} -eq "{literal}" -or user.{name} -eq "x"').matches(user(**values))
    assert inside != parse_rule(f'user.{name} -notIn ["{literal}", "x"]').matches(user(**values))


@settings(max_examples=200, deadline=None)
@given(a=st.booleans(), b=st.booleans(), c=st.booleans())
def test_and_binds_tighter_than_or_and_not_negates(a, b, c):
    values = {"department": "x" if a else "y", "city": "x" if b else "y", "country": "x" if c else "y"}
    text = 'user.department -eq "x" -or user.city -eq "x" -and user.country -eq "x"'
    assert parse_rule(text).matches(user(**values)) == (a or (b and c))
    assert parse_rule(f"-not ({text})").matches(user(**values)) == (not (a or (b and c)))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='user.dpartmn -eqoriNsl"()[],` ', max_size=40))
def test_any_text_parses_or_fails_with_a_position_inside_it(text):
    try:
        parse_rule(text)
    except RuleSyntaxError as error:
        assert 0 <= error.position <= len(text)
