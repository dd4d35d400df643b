"""Dynamic membership rules: the subset of Entra's rule syntax that licensing groups use (docs/tenant-format.md 5).

``parse_rule(text)`` returns a ``Rule`` whose ``matches(value_of)`` evaluates it for one user, ``value_of(name)``
giving the user's value of a Graph property name (``PROPERTIES`` maps rule names to those). A rule it cannot
parse raises ``RuleSyntaxError`` naming the character offset and what was expected there.

Grammar (operators and property names case-insensitive, as Entra reads them)::

    rule       := or
    or         := and ("-or" and)*
    and        := unary ("-and" unary)*
    unary      := "-not" unary | "(" or ")" | comparison
    comparison := "user." property operator value
    operator   := -eq -ne -startsWith -notStartsWith -contains -notContains -in -notIn
    value      := "string" | true | false | null          (-in/-notIn: [value, value, ...])

Strings are in double quotes; a backtick escapes a double quote inside one (`` ` ``"). String comparisons ignore
case; ``null`` matches a property with no value (null or empty string): ``user.objectId -ne null`` matches every user.
"""

from __future__ import annotations

import re

# rule property (lower case) -> Graph property the directory reads (onPremisesExtensionAttributes.* for the 15 attributes)
PROPERTIES = {
    "objectid": "id",
    "accountenabled": "accountEnabled",
    "city": "city",
    "companyname": "companyName",
    "country": "country",
    "department": "department",
    "displayname": "displayName",
    "employeeid": "employeeId",
    "givenname": "givenName",
    "jobtitle": "jobTitle",
    "mail": "mail",
    "mailnickname": "mailNickname",
    "onpremisessecurityidentifier": "onPremisesSecurityIdentifier",
    "onpremisessamaccountname": "onPremisesSamAccountName",
    "state": "state",
    "surname": "surname",
    "usagelocation": "usageLocation",
    "userprincipalname": "userPrincipalName",
    "usertype": "userType",
}
PROPERTIES.update({f"extensionattribute{n}": f"onPremisesExtensionAttributes.extensionAttribute{n}" for n in range(1, 16)})

OPERATORS = ("-eq", "-ne", "-startsWith", "-notStartsWith", "-contains", "-notContains", "-in", "-notIn")
_OPERATOR_NAMES = {op.lower(): op for op in OPERATORS}
_LIST_OPERATORS = ("-in", "-notIn")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"`]|`.)*")
  | (?P<dash>-[A-Za-z]+)
  | (?P<word>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
  | (?P<punct>[()\[\],])
""",
    re.VERBOSE,
)


class RuleSyntaxError(ValueError):
    """A rule the engine cannot parse: ``position`` (0-based character offset), ``expected``, ``found``."""

    def __init__(self, position, expected, found):
        self.position = position
        self.expected = expected
        self.found = found
        shown = "the end of the rule" if found is None else repr(found)
        super().__init__(f"Dynamic membership rule validation error: expected {expected} at position {position}, found {shown}.")


def _tokens(text):
    found = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position] == '"':
                raise RuleSyntaxError(position, 'a closing double quote (")', text[position:])
            raise RuleSyntaxError(position, "a property, an operator, a value or a parenthesis", text[position])
        if match.lastgroup != "ws":
            found.append((match.lastgroup, match.group(), position))
        position = match.end()
    return found


def _normalise(value):
    """Comparable form: strings without case, booleans as 'true'/'false', '' as no value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return None
    return str(value).lower()


def _compare(operator, literal):
    """``value -> bool`` for one operator and its (normalised) literal."""
    if operator in _LIST_OPERATORS:
        wanted = frozenset(literal)
        test = lambda value: _normalise(value) in wanted  # noqa: E731
    elif operator in ("-eq", "-ne"):
        test = lambda value: _normalise(value) == literal  # noqa: E731
    elif operator in ("-startsWith", "-notStartsWith"):
        test = lambda value: literal is not None and _normalise(value) is not None and _normalise(value).startswith(literal)  # noqa: E731
    else:
        test = lambda value: literal is not None and _normalise(value) is not None and literal in _normalise(value)  # noqa: E731
    if operator in ("-ne", "-notStartsWith", "-notContains", "-notIn"):
        return lambda value: not test(value)
    return test


class Rule:
    """A parsed rule: ``text``, the Graph ``properties`` it reads, ``matches(value_of)``."""

    def __init__(self, text, predicate, properties):
        self.text = text
        self._predicate = predicate
        self.properties = frozenset(properties)

    def matches(self, value_of) -> bool:
        return self._predicate(value_of)


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.properties = set()

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None, len(self.text))

    def fail(self, expected):
        _, value, position = self.peek()
        raise RuleSyntaxError(position, expected, value)

    def take(self):
        token = self.peek()
        self.index += 1
        return token

    def is_dash(self, name):
        kind, value, _ = self.peek()
        return kind == "dash" and value.lower() == name

    def parse(self):
        if not self.tokens:
            self.fail('an expression such as user.department -eq "Sales"')
        predicate = self.parse_or()
        if self.index != len(self.tokens):
            self.fail("-and, -or or the end of the rule")
        return predicate

    def parse_or(self):
        parts = [self.parse_and()]
        while self.is_dash("-or"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda value_of: any(p(value_of) for p in parts))

    def parse_and(self):
        parts = [self.parse_unary()]
        while self.is_dash("-and"):
            self.take()
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else (lambda value_of: all(p(value_of) for p in parts))

    def parse_unary(self):
        if self.is_dash("-not"):
            self.take()
            inner = self.parse_unary()
            return lambda value_of: not inner(value_of)
        kind, value, _ = self.peek()
        if kind == "punct" and value == "(":
            self.take()
            inner = self.parse_or()
            if self.peek()[1] != ")":
                self.fail("')' or -and/-or")
            self.take()
            return inner
        return self.parse_comparison()

    def parse_property(self):
        kind, value, _ = self.peek()
        if kind != "word" or not value.lower().startswith("user."):
            self.fail("a user property such as user.department, '(' or -not")
        name = PROPERTIES.get(value[5:].lower())
        if name is None:
            self.fail(f"a supported user property ({', '.join('user.' + p for p in sorted(PROPERTIES) if not p[-1].isdigit())}, user.extensionAttribute1..15)")
        self.take()
        self.properties.add(name)
        return name

    def parse_operator(self):
        kind, value, _ = self.peek()
        operator = _OPERATOR_NAMES.get(value.lower()) if kind == "dash" else None
        if operator is None:
            self.fail("an operator (" + ", ".join(OPERATORS) + ")")
        self.take()
        return operator

    def parse_value(self):
        kind, value, _ = self.peek()
        if kind == "string":
            self.take()
            return _normalise(re.sub(r"`(.)", r"\1", value[1:-1]))
        if kind == "word" and value.lower() in ("true", "false", "null"):
            self.take()
            return None if value.lower() == "null" else value.lower()
        self.fail('a value (a "string" in double quotes, true, false or null)')

    def parse_list(self):
        if self.peek()[1] != "[":
            self.fail("'[' opening the list of values")
        self.take()
        values = [self.parse_value()]
        while self.peek()[1] == ",":
            self.take()
            values.append(self.parse_value())
        if self.peek()[1] != "]":
            self.fail("',' or ']' closing the list of values")
        self.take()
        return values

    def parse_comparison(self):
        name = self.parse_property()
        operator = self.parse_operator()
        literal = self.parse_list() if operator in _LIST_OPERATORS else self.parse_value()
        test = _compare(operator, literal)
        return lambda value_of: test(value_of(name))


def parse_rule(text) -> Rule:
    """Parse a membership rule; ``RuleSyntaxError`` (a ValueError) names the position of what it cannot read."""
    if not isinstance(text, str):
        raise RuleSyntaxError(0, "a membership rule string", text)
    parser = _Parser(text)
    predicate = parser.parse()
    return Rule(text, predicate, parser.properties)
