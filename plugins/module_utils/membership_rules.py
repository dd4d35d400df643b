# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client-side reading of Entra dynamic membership rules: parse a rule, evaluate it on Graph users.

Only the subset that licensing groups use in practice is understood (reference entra-licensing.md 2):
comparisons ``user.<property> <operator> <value>`` with the operators ``-eq``, ``-ne``, ``-startsWith``,
``-notStartsWith``, ``-contains``, ``-notContains``, ``-in``, ``-notIn``, joined by ``-and``, ``-or``,
``-not`` and parentheses. Values are double-quoted strings (a backtick escapes a quote, as in Entra),
``true``, ``false``, ``null`` or a list ``["a", "b"]`` for ``-in``/``-notIn``. Operators, property names
and string values compare without regard to case, as Entra does.

Two kinds of failure, so that callers can act on each:

* ``MembershipRuleSyntaxError``: the text cannot be a rule at all (unterminated string, unbalanced
  parentheses, a comparison without a value); the message names the position. Callers refuse it
  before any write.
* ``MembershipRuleUnsupported``: the text may be a valid Entra rule but uses syntax or properties
  outside this subset (``-match``, ``-any``, ``device.``, ``memberOf``...). Callers then say they
  cannot evaluate the rule client-side and let Graph decide.

``evaluate(rule, user)`` works on a Graph user dict read with ``$select`` of ``graph_properties(rule)``.
Null semantics (decided here; Entra documents the ``-ne null`` form only): a missing or null property
equals only ``null``; ``-ne``, ``-notStartsWith``, ``-notContains`` and ``-notIn`` are true on it; the
other operators are false.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re


class MembershipRuleError(ValueError):
    """A rule this module cannot use."""


class MembershipRuleSyntaxError(MembershipRuleError):
    """The text cannot be a membership rule; the message names the position (0-based character offset)."""

    def __init__(self, message, position):
        MembershipRuleError.__init__(self, "%s at position %d" % (message, position))
        self.position = position


class MembershipRuleUnsupported(MembershipRuleError):
    """A rule (possibly valid for Entra) outside the subset evaluated here."""


COMPARISONS = {
    "-eq": "eq",
    "-ne": "ne",
    "-startswith": "startsWith",
    "-notstartswith": "notStartsWith",
    "-contains": "contains",
    "-notcontains": "notContains",
    "-in": "in",
    "-notin": "notIn",
}
NEGATED = frozenset(("ne", "notStartsWith", "notContains", "notIn"))

# Rule property (lower case) -> Graph user property; extensionAttribute1..15 live in onPremisesExtensionAttributes.
USER_PROPERTIES = dict(
    (name.lower(), name)
    for name in (
        "accountEnabled",
        "city",
        "companyName",
        "country",
        "department",
        "displayName",
        "employeeId",
        "employeeType",
        "givenName",
        "jobTitle",
        "mail",
        "mailNickname",
        "officeLocation",
        "onPremisesDistinguishedName",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "postalCode",
        "preferredLanguage",
        "state",
        "surname",
        "usageLocation",
        "userPrincipalName",
        "userType",
    )
)
USER_PROPERTIES["objectid"] = "id"
EXTENSION_ATTRIBUTE = re.compile(r"^extensionattribute([1-9]|1[0-5])$")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<lbracket>\[) | (?P<rbracket>\]) | (?P<comma>,)
      | (?P<string>") | (?P<operator>-[A-Za-z]+) | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


def _read_string(text, start):
    """``(value, end)`` of the double-quoted string opening at ``start`` (a backtick escapes the next character)."""
    chars, position = [], start + 1
    while position < len(text):
        char = text[position]
        if char == "`" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
            continue
        if char == '"':
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    raise MembershipRuleSyntaxError("unterminated string", start)


def tokenize(text):
    """``[(kind, value, position)]``; kinds: lparen rparen lbracket rbracket comma string operator word."""
    tokens, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return tokens
        match = _TOKEN.match(text, position)
        if match is None:
            raise MembershipRuleSyntaxError("unexpected character %r" % text[position], position)
        kind = match.lastgroup
        start = match.start(kind)
        if kind == "string":
            value, position = _read_string(text, start)
            tokens.append(("string", value, start))
            continue
        tokens.append((kind, match.group(kind), start))
        position = match.end()


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None, len(self.text))

    def take(self):
        token = self.peek()
        self.index += 1
        return token

    def parse(self):
        if not self.tokens:
            raise MembershipRuleSyntaxError("empty rule", 0)
        node = self.parse_or()
        kind, value, position = self.peek()
        if kind is not None:
            raise MembershipRuleSyntaxError("unexpected %r" % value, position)
        return node

    def _keyword(self, word):
        kind, value, dummy = self.peek()
        return kind == "operator" and value.lower() == word

    def parse_or(self):
        items = [self.parse_and()]
        while self._keyword("-or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else ("or", items)

    def parse_and(self):
        items = [self.parse_not()]
        while self._keyword("-and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else ("and", items)

    def parse_not(self):
        if self._keyword("-not"):
            self.take()
            return ("not", self.parse_not())
        return self.parse_primary()

    def parse_primary(self):
        kind, value, position = self.take()
        if kind == "lparen":
            node = self.parse_or()
            closing, dummy, where = self.take()
            if closing != "rparen":
                raise MembershipRuleSyntaxError("missing ')' for the '(' at position %d" % position, where)
            return node
        if kind == "word":
            return self.parse_comparison(value, position)
        if kind is None:
            raise MembershipRuleSyntaxError("rule ends where a comparison was expected", position)
        raise MembershipRuleSyntaxError("unexpected %r where a comparison was expected" % value, position)

    def parse_comparison(self, name, position):
        prop = graph_property(name, position)
        kind, operator, where = self.take()
        if kind != "operator":
            raise MembershipRuleSyntaxError("expected an operator after %r" % name, where)
        if operator.lower() in ("-and", "-or", "-not"):
            raise MembershipRuleSyntaxError("expected a comparison operator after %r, got %r" % (name, operator), where)
        op = COMPARISONS.get(operator.lower())
        if op is None:
            raise MembershipRuleUnsupported("operator %r at position %d is outside the subset evaluated client-side" % (operator, where))
        value = self.parse_value(op)
        return ("cmp", prop, op, value)

    def parse_value(self, op):
        kind, value, position = self.take()
        if op in ("in", "notIn"):
            if kind != "lbracket":
                raise MembershipRuleSyntaxError('expected a list ["..."] after -%s' % op, position)
            values = []
            while True:
                kind, value, position = self.take()
                if kind == "rbracket" and not values:
                    return values
                values.append(self._scalar(kind, value, position))
                kind, value, position = self.take()
                if kind == "rbracket":
                    return values
                if kind != "comma":
                    raise MembershipRuleSyntaxError("expected ',' or ']' in a list", position)
        return self._scalar(kind, value, position)

    def _scalar(self, kind, value, position):
        if kind == "string":
            return value
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() == "null":
            return None
        if kind is None:
            raise MembershipRuleSyntaxError("rule ends where a value was expected", position)
        raise MembershipRuleSyntaxError('expected a value (a "string", true, false or null), got %r' % value, position)


def graph_property(name, position=0):
    """The Graph user property a rule property names (``user.department`` -> ``department``)."""
    parts = name.split(".")
    if len(parts) != 2 or parts[0].lower() != "user":
        raise MembershipRuleUnsupported("property %r at position %d: only user.<property> is evaluated client-side" % (name, position))
    key = parts[1].lower()
    if EXTENSION_ATTRIBUTE.match(key):
        return "onPremisesExtensionAttributes." + "extensionAttribute" + key[len("extensionattribute") :]
    if key in USER_PROPERTIES:
        return USER_PROPERTIES[key]
    raise MembershipRuleUnsupported("property %r at position %d is outside the subset evaluated client-side" % (name, position))


def parse(rule):
    """The rule's tree; raises MembershipRuleSyntaxError or MembershipRuleUnsupported."""
    if not isinstance(rule, str):
        raise MembershipRuleSyntaxError("a rule must be text, got %s" % type(rule).__name__, 0)
    return _Parser(rule).parse()


def _properties(node, found):
    if node[0] == "cmp":
        found.add(node[1].split(".")[0])
    elif node[0] == "not":
        _properties(node[1], found)
    else:
        for item in node[1]:
            _properties(item, found)
    return found


def graph_properties(tree):
    """Sorted Graph user properties to ``$select`` to evaluate ``tree`` (``id`` always)."""
    return sorted(_properties(tree, set(["id"])))


def _value_of(user, prop):
    value = user
    for part in prop.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _fold(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _compare(actual, op, expected):
    if actual is None or actual == "":
        if op in ("eq", "ne"):
            is_null = expected is None
            return is_null if op == "eq" else not is_null
        return op in NEGATED
    if expected is None and op in ("eq", "ne"):
        return op == "ne"
    left = _fold(actual)
    if op in ("eq", "ne"):
        return (left == _fold(expected)) == (op == "eq")
    if op in ("startsWith", "notStartsWith"):
        return left.startswith(_fold(expected)) == (op == "startsWith")
    if op in ("contains", "notContains"):
        return (_fold(expected) in left) == (op == "contains")
    listed = set(_fold(item) for item in expected if item is not None)
    return (left in listed) == (op == "in")


def evaluate(tree, user):
    """True when the Graph ``user`` matches the parsed rule ``tree``."""
    kind = tree[0]
    if kind == "cmp":
        return _compare(_value_of(user, tree[1]), tree[2], tree[3])
    if kind == "not":
        return not evaluate(tree[1], user)
    if kind == "and":
        return all(evaluate(item, user) for item in tree[1])
    return any(evaluate(item, user) for item in tree[1])


def matching_ids(tree, users):
    """Set of lower-case ids of the ``users`` that match ``tree``."""
    return set(user["id"].lower() for user in users if evaluate(tree, user))


def normalize_rule(rule):
    """The rule with runs of white space outside strings folded to one space, for comparing a rule with Graph's copy."""
    if rule is None:
        return None
    out, position = [], 0
    text = rule.strip()
    while position < len(text):
        char = text[position]
        if char == '"':
            try:
                dummy, end = _read_string(text, position)
            except MembershipRuleSyntaxError:
                end = len(text)
            out.append(text[position:end])
            position = end
        elif char.isspace():
            while position < len(text) and text[position].isspace():
                position += 1
            out.append(" ")
        else:
            out.append(char)
            position += 1
    return "".join(out)
