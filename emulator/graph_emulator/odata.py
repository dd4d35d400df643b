"""OData query options the collection relies on: $select, $filter (the directory subset), $top,
$count, and opaque $skiptoken paging tokens.

Rules follow reference/graph-api.md sections 2, 3.5 and 5: licensing properties only when
selected, ``assignedLicenses/any(x:x/skuId eq GUID)`` without advanced query, ``ne``/``not``/
``endswith``/``$count``/``null`` comparisons only with ``ConsistencyLevel: eventual`` + ``$count=true``,
``hasMembersWithLicenseErrors`` only *without* advanced query, ``$top`` 1..999.
"""

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone

from .engine import GraphError

MAX_PAGE = 999
DEFAULT_PAGE = 100

# -- entity metadata -------------------------------------------------------------------------

USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_PROPERTIES = frozenset(USER_DEFAULT) | frozenset(
    (
        "deletedDateTime",
        "accountEnabled",
        "ageGroup",
        "assignedLicenses",
        "assignedPlans",
        "authorizationInfo",
        "city",
        "companyName",
        "consentProvidedForMinor",
        "country",
        "createdDateTime",
        "creationType",
        "department",
        "employeeHireDate",
        "employeeId",
        "employeeLeaveDateTime",
        "employeeOrgData",
        "employeeType",
        "externalUserState",
        "externalUserStateChangeDateTime",
        "faxNumber",
        "identities",
        "imAddresses",
        "isResourceAccount",
        "lastPasswordChangeDateTime",
        "legalAgeGroupClassification",
        "licenseAssignmentStates",
        "mailNickname",
        "onPremisesDistinguishedName",
        "onPremisesDomainName",
        "onPremisesExtensionAttributes",
        "onPremisesImmutableId",
        "onPremisesLastSyncDateTime",
        "onPremisesProvisioningErrors",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "onPremisesUserPrincipalName",
        "otherMails",
        "passwordPolicies",
        "passwordProfile",
        "postalCode",
        "preferredDataLocation",
        "provisionedPlans",
        "proxyAddresses",
        "securityIdentifier",
        "serviceProvisioningErrors",
        "showInAddressList",
        "signInSessionsValidFromDateTime",
        "state",
        "streetAddress",
        "usageLocation",
        "userType",
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
        "mailboxSettings",
        "signInActivity",
        "customSecurityAttributes",
        "employeeExperience",
    )
)
GROUP_DEFAULT = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)
# never returned by GET even when selected (reference 3.1); only usable in $filter
NEVER_RETURNED = frozenset(("hasMembersWithLicenseErrors",))
GROUP_PROPERTIES = frozenset(GROUP_DEFAULT) | frozenset(
    (
        "assignedLabels",
        "assignedLicenses",
        "licenseProcessingState",
        "hasMembersWithLicenseErrors",
        "allowExternalSenders",
        "autoSubscribeNewMembers",
        "hideFromAddressLists",
        "hideFromOutlookClients",
        "isSubscribedByMail",
        "unseenCount",
        "isArchived",
    )
)
# beta only (v1.0 answers 400 for it, as for any property it does not know): a dynamic group's evaluation status
BETA_GROUP_PROPERTIES = GROUP_PROPERTIES | frozenset(("membershipRuleProcessingStatus",))
COLLECTION_PROPERTIES = frozenset(
    (
        "businessPhones",
        "assignedLicenses",
        "assignedPlans",
        "licenseAssignmentStates",
        "provisionedPlans",
        "proxyAddresses",
        "otherMails",
        "imAddresses",
        "identities",
        "groupTypes",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "onPremisesProvisioningErrors",
        "serviceProvisioningErrors",
        "assignedLabels",
        "servicePlans",
        "subscriptionIds",
        "additionalDetails",
        "targetResources",
        "interests",
        "pastProjects",
        "responsibilities",
        "schools",
        "skills",
    )
)

ENTITY_TYPES = {
    "user": ("microsoft.graph.user", "User", USER_PROPERTIES),
    "group": ("microsoft.graph.group", "Group", GROUP_PROPERTIES),
    "group_beta": ("microsoft.graph.group", "Group", BETA_GROUP_PROPERTIES),
}


def canonical_property(kind, name):
    """The schema spelling of ``name`` (property names are case-insensitive in queries), or None."""
    known = ENTITY_TYPES[kind][2]
    if name in known:
        return name
    lowered = name.lower()
    for candidate in known:
        if candidate.lower() == lowered:
            return candidate
    return None


def parse_select(raw, kind):
    """List of canonical property names, or None for the default set. Unknown names -> 400."""
    if raw is None:
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise GraphError(400, "Request_BadRequest", "Invalid $select value: the list of properties is empty.")
    selected = []
    for name in names:
        if name == "*":
            return None
        canonical = canonical_property(kind, name) if kind in ENTITY_TYPES else name
        if canonical is None:
            raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{name}' on type '{ENTITY_TYPES[kind][0]}'.")
        if canonical not in selected:
            selected.append(canonical)
    return selected


def project(entity, select, kind, with_type=False):
    """The dict Graph returns for ``entity`` given a $select list (None = default property set)."""
    if select is None:
        names = USER_DEFAULT if kind == "user" else GROUP_DEFAULT if kind in ("group", "group_beta") else tuple(entity)
    else:
        names = select
    shaped = {}
    if with_type:
        shaped["@odata.type"] = f"#{ENTITY_TYPES[kind][0]}" if kind in ENTITY_TYPES else entity.get("@odata.type")
    for name in names:
        if name in NEVER_RETURNED or name.startswith("@"):
            continue
        value = entity.get(name)
        if value is None and name in COLLECTION_PROPERTIES:
            value = []
        shaped[name] = value
    return shaped


def parse_top(raw):
    if raw is None:
        return DEFAULT_PAGE
    try:
        top = int(raw)
    except ValueError:
        raise GraphError(400, "Request_BadRequest", f"Invalid value '{raw}' for $top: expected an integer.") from None
    if top < 1 or top > MAX_PAGE:
        raise GraphError(400, "Request_BadRequest", f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive.")
    return top


def wants_count(query):
    return query.get("$count", "").lower() == "true"


def is_advanced(query, headers):
    """Advanced query = ConsistencyLevel: eventual header AND $count=true (reference section 5)."""
    return headers.get("consistencylevel", "").strip().lower() == "eventual" and wants_count(query)


# -- paging tokens ------------------------------------------------------------------------------


class SkipTokens:
    """Opaque, tamper-evident $skiptoken values holding the next start index of a listing.

    The token binds the index to the request's path and query (without $skiptoken) so a token
    cannot be replayed against another listing; it never shows the index in clear text.
    """

    def __init__(self, secret):
        self._secret = secret

    def _mac(self, payload):
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]

    def _bind(self, scope, start):
        return json.dumps({"s": scope, "i": start}, separators=(",", ":")).encode()

    def encode(self, scope, start):
        # XOR the index with a keyed stream so the token body is not a readable counter
        index = start.to_bytes(8, "big")
        stream = self._mac(b"stream" + scope.encode())[:8]
        hidden = bytes(a ^ b for a, b in zip(index, stream))
        mac = self._mac(self._bind(scope, start))
        return "RFNwdAIA" + base64.urlsafe_b64encode(hidden + mac).decode().rstrip("=")

    def decode(self, scope, token):
        try:
            if not token.startswith("RFNwdAIA"):
                raise ValueError
            body = token[8:]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            hidden, mac = raw[:8], raw[8:]
            stream = self._mac(b"stream" + scope.encode())[:8]
            start = int.from_bytes(bytes(a ^ b for a, b in zip(hidden, stream)), "big")
            if len(mac) != 12 or not hmac.compare_digest(mac, self._mac(self._bind(scope, start))):
                raise ValueError
            return start
        except ValueError:
            raise GraphError(
                400, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request."
            ) from None


# -- $filter ------------------------------------------------------------------------------------

GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<guid>"""
    + GUID_RE
    + r""")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_$][\w$.]*(?:/[A-Za-z_$][\w$.]*)*)
  | (?P<punct>[(),:])
""",
    re.VERBOSE,
)
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
KEYWORDS = {"true": True, "false": False, "null": None}

# property -> operators allowed by default ("any" = lambda on a collection). Advanced query adds
# ne/not/endswith/$count/null comparisons on the same properties.
USER_FILTERABLE = {
    "id": {"eq", "in"},
    "userPrincipalName": {"eq", "in", "startswith"},
    "displayName": {"eq", "in", "startswith"},
    "mail": {"eq", "in", "startswith"},
    "mailNickname": {"eq", "in", "startswith"},
    "givenName": {"eq", "in", "startswith"},
    "surname": {"eq", "in", "startswith"},
    "accountEnabled": {"eq"},
    "usageLocation": {"eq", "in", "startswith", "ge", "le"},
    "department": {"eq", "in", "startswith"},
    "jobTitle": {"eq", "in", "startswith"},
    "companyName": {"eq", "in", "startswith"},
    "city": {"eq", "in", "startswith"},
    "country": {"eq", "in", "startswith"},
    "employeeId": {"eq", "in", "startswith"},
    "userType": {"eq", "in"},
    "onPremisesSyncEnabled": {"eq"},
    "onPremisesSecurityIdentifier": {"eq", "in"},
    "onPremisesSamAccountName": {"eq", "in", "startswith"},
    "createdDateTime": {"eq", "ge", "le", "in"},
    "assignedLicenses": {"any"},
    "assignedPlans": {"any"},
    "proxyAddresses": {"any"},
}
GROUP_FILTERABLE = {
    "id": {"eq", "in"},
    "displayName": {"eq", "in", "startswith"},
    "mail": {"eq", "in", "startswith"},
    "mailNickname": {"eq", "in", "startswith"},
    "description": {"eq", "in", "startswith"},
    "securityEnabled": {"eq"},
    "mailEnabled": {"eq"},
    "isAssignableToRole": {"eq"},
    "createdDateTime": {"eq", "ge", "le", "in"},
    "groupTypes": {"any"},
    "assignedLicenses": {"any"},
    "proxyAddresses": {"any"},
    "hasMembersWithLicenseErrors": {"eq"},
    "onPremisesSyncEnabled": {"eq"},
    "onPremisesSecurityIdentifier": {"eq", "in"},
    "onPremisesSamAccountName": {"eq", "in", "startswith"},
    "membershipRuleProcessingState": {"eq"},
}
AUDIT_FILTERABLE = {
    "activityDateTime": {"eq", "ge", "le"},
    "activityDisplayName": {"eq", "startswith"},
    "category": {"eq"},
    "loggedByService": {"eq"},
    "result": {"eq"},
    "correlationId": {"eq"},
    "id": {"eq"},
    "initiatedBy/user/id": {"eq"},
    "initiatedBy/user/userPrincipalName": {"eq", "startswith"},
    "initiatedBy/app/appId": {"eq"},
    "initiatedBy/app/displayName": {"eq", "startswith"},
    "targetResources": {"any"},
}
FILTER_RULES = {"user": (USER_FILTERABLE, "User"), "group": (GROUP_FILTERABLE, "Group"), "audit": (AUDIT_FILTERABLE, "DirectoryAudit")}

# Edm types of the filterable properties that are not Edm.String (CSDL): a literal of another type is refused
# as Graph refuses it ("A binary operator with incompatible types was detected ..."). Lambda members are
# named "collection/member" ("collection/" for a collection of primitives, which are strings here).
PROPERTY_TYPES = {
    "accountEnabled": "Edm.Boolean",
    "securityEnabled": "Edm.Boolean",
    "mailEnabled": "Edm.Boolean",
    "isAssignableToRole": "Edm.Boolean",
    "hasMembersWithLicenseErrors": "Edm.Boolean",
    "onPremisesSyncEnabled": "Edm.Boolean",
    "createdDateTime": "Edm.DateTimeOffset",
    "activityDateTime": "Edm.DateTimeOffset",
    "assignedLicenses/skuId": "Edm.Guid",
    "assignedPlans/servicePlanId": "Edm.Guid",
    "assignedPlans/assignedDateTime": "Edm.DateTimeOffset",
}
LITERAL_TYPES = {"string": "Edm.String", "guid": "Edm.Guid", "datetime": "Edm.DateTimeOffset", "bool": "Edm.Boolean", "number": "Edm.Int32"}
OPERATOR_KINDS = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual", "lt": "LessThan", "le": "LessThanOrEqual", "in": "In"}
# Microsoft Graph known issues, "Some limitations apply to query parameters" (developer.microsoft.com/graph/known-issues,
# updated 2023-06-01): without advanced query a filter holds at most 15 expressions ("in" values count one each) and
# an "eq" value at most 120 characters; advanced queries are limited by the URL length (2,048) instead.
MAX_FILTER_EXPRESSIONS = 15
MAX_EQ_VALUE_LENGTH = 120
# properties that refuse the advanced query form (msgraph-sdk-powershell#2967, reference 3.3)
DEFAULT_ONLY = {("group", "hasMembersWithLicenseErrors")}


def _bad_filter(detail):
    return GraphError(400, "Request_BadRequest", f"Invalid filter clause: {detail}")


def _unsupported(prop, resource):
    return GraphError(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'.")


def _tokens(text):
    position = 0
    found = []
    while position < len(text):
        match = TOKEN_RE.match(text, position)
        if not match:
            raise _bad_filter(f"Syntax error at position {position} in '{text}'.")
        position = match.end()
        kind = match.lastgroup
        if kind != "ws":
            found.append((kind, match.group(kind)))
    return found


DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?")


def _normalise(value):
    """Comparable form: strings case-insensitively, GUID literals lower-case, datetimes as UTC."""
    if isinstance(value, str):
        # value[4] == "-" and value[10] == "T" are necessary for the pattern: most strings (GUIDs, names) skip the regex
        if len(value) > 10 and value[10] == "T" and value[4] == "-" and DATETIME_RE.fullmatch(value):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
            except ValueError:
                return value.lower()
        return value.lower()
    return value


def _compare(left, operator, right):
    return _comparison(operator, right)(left)


def _comparison(operator, literal):
    """``left -> bool`` comparing with ``literal`` as _compare did; the literal is normalised once, not per entity."""
    right = _normalise(literal)
    if operator == "eq":
        return lambda left: _normalise(left) == right
    if operator == "ne":
        return lambda left: _normalise(left) != right
    if right is None:
        return lambda left: False
    compare = {"gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}[operator]

    def ordered(left):
        left = _normalise(left)
        if left is None:
            return False
        try:
            return compare(left, right)
        except TypeError:
            return False

    return ordered


def _value_at(entity, path):
    return _getter(path)(entity)


def _getter(path):
    """``entity -> value at path`` (``a/b``: nested dicts; None where a step is not a dict); the path is split once."""
    parts = path.split("/")
    if len(parts) == 1:
        name = parts[0]
        return lambda entity: entity.get(name) if isinstance(entity, dict) else None

    def walk(entity):
        value = entity
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return walk


class FilterParser:
    """Recursive-descent parser turning a $filter string into a predicate over entity dicts."""

    def __init__(self, text, kind, advanced):
        self.expressions = 0  # leaf expressions (comparisons, functions, each "in" value): MAX_FILTER_EXPRESSIONS
        self.text = text
        self.kind = kind
        self.advanced = advanced
        self.rules, self.resource = FILTER_RULES[kind]
        self.tokens = _tokens(text)
        self.position = 0
        self.properties = set()  # root properties the filter reads (property_path records them)

    # token helpers
    def peek(self, offset=0):
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        if token[0] is None:
            raise _bad_filter(f"Unexpected end of expression in '{self.text}'.")
        self.position += 1
        return token

    def expect(self, value):
        kind, text = self.take()
        if text is None or text.lower() != value:
            raise _bad_filter(f"Expected '{value}' but found '{text}' in '{self.text}'.")

    def is_word(self, value, offset=0):
        kind, text = self.peek(offset)
        return kind == "word" and text.lower() == value

    # grammar
    def parse(self):
        predicate = self.parse_or()
        if self.position != len(self.tokens):
            raise _bad_filter(f"Syntax error at token '{self.peek()[1]}' in '{self.text}'.")
        return predicate

    def parse_or(self):
        parts = [self.parse_and()]
        while self.is_word("or"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda entity: any(p(entity) for p in parts))

    def parse_and(self):
        parts = [self.parse_unary()]
        while self.is_word("and"):
            self.take()
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else (lambda entity: all(p(entity) for p in parts))

    def parse_unary(self):
        if self.is_word("not"):
            self.take()
            inner = self.parse_unary()
            self.require_advanced(self.last_property, "not")
            return lambda entity: not inner(entity)
        return self.parse_primary()

    def parse_primary(self):
        kind, text = self.peek()
        if kind == "punct" and text == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if kind != "word":
            raise _bad_filter(f"Syntax error at token '{text}' in '{self.text}'.")
        lowered = text.lower()
        if lowered in ("startswith", "endswith") and self.peek(1) == ("punct", "("):
            return self.parse_function(lowered, root=True)
        if lowered.endswith("/any") or lowered.endswith("/all"):
            return self.parse_lambda()
        return self.parse_comparison()

    def property_path(self, raw):
        """Canonical path of a root property; checks it is filterable at all."""
        parts = raw.split("/")
        if self.kind in ENTITY_TYPES:
            canonical = canonical_property(self.kind, parts[0])
            if canonical is None:
                raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{parts[0]}' on type '{ENTITY_TYPES[self.kind][0]}'.")
            parts[0] = canonical
        path = "/".join(parts)
        self.last_property = path
        self.properties.add(parts[0])
        return path

    def allow(self, path, operator):
        root_rule = self.rules.get(path)
        if root_rule is None:
            raise _unsupported(path, self.resource)
        if (self.kind, path) in DEFAULT_ONLY and self.advanced:
            raise _unsupported(path, self.resource)
        if operator in root_rule:
            return
        if operator in ("ne", "endswith", "not", "null", "$count") or (operator in COMPARISONS and root_rule):
            self.require_advanced(path, operator)
            return
        raise _unsupported(path, self.resource)

    def require_advanced(self, path, operator):
        if self.kind == "audit":
            raise _unsupported(path, self.resource)
        if (self.kind, path) in DEFAULT_ONLY:
            raise _unsupported(path, self.resource)
        if not self.advanced:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Operator '{operator}' is not supported because the 'ConsistencyLevel:eventual' header "
                "is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
            )

    def typed_literal(self, property_type, operator):
        """parse_literal, refusing a literal whose Edm type is not the property's (quoted GUID on skuId, ...)."""
        token_kind = self.peek()[0]
        if token_kind == "word" and (self.peek()[1] or "").lower() in ("true", "false"):
            token_kind = "bool"
        literal = self.parse_literal()
        literal_type = LITERAL_TYPES.get(token_kind) if literal is not None else None
        if literal_type is not None and property_type is not None and literal_type != property_type:
            raise GraphError(
                400,
                "BadRequest",
                "A binary operator with incompatible types was detected. "
                f"Found operand types '{property_type}' and '{literal_type}' for operator kind '{OPERATOR_KINDS.get(operator, operator)}'.",
            )
        if operator == "eq" and not self.advanced and isinstance(literal, str) and token_kind == "string" and len(literal) > MAX_EQ_VALUE_LENGTH:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"The value compared with 'eq' is {len(literal)} characters long; at most {MAX_EQ_VALUE_LENGTH} are supported without advanced query.",
            )
        return literal

    def count_expressions(self, amount=1):
        self.expressions += amount
        if self.expressions > MAX_FILTER_EXPRESSIONS and not self.advanced:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Too many child clauses specified in search filter expression containing 'OR' operators: {self.expressions}. "
                f"Max allowed: {MAX_FILTER_EXPRESSIONS}.",
            )

    def parse_literal(self):
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind in ("guid", "datetime"):
            return text.lower() if kind == "guid" else text
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in KEYWORDS:
            return KEYWORDS[text.lower()]
        raise _bad_filter(f"Expected a literal but found '{text}' in '{self.text}'.")

    def parse_comparison(self, variable=None, collection=None):
        _, raw = self.take()
        count_segment = raw.lower().endswith("/$count")
        if count_segment:
            raw = raw[: -len("/$count")]
        if variable is not None:
            relative = self.relative_path(raw, variable)
            path = None
            value_of = _getter(relative) if relative else (lambda item: item)
            property_type = PROPERTY_TYPES.get(f"{collection}/{relative}", "Edm.String")
        else:
            path = self.property_path(raw)
            value_of = _getter(path)
            property_type = "Edm.Int32" if count_segment else PROPERTY_TYPES.get(path, "Edm.String" if self.kind in ENTITY_TYPES else None)
        operator_kind, operator = self.take()
        operator = (operator or "").lower()
        if operator == "in":
            values = self.parse_list(property_type)
            self.count_expressions(len(values))
            wanted = {_normalise(v) for v in values}
            if path is not None:
                self.allow(path, "in")
            return lambda entity: _normalise(value_of(entity)) in wanted
        if operator not in COMPARISONS:
            raise _bad_filter(f"Unknown operator '{operator}' in '{self.text}'.")
        literal = self.typed_literal(property_type, operator)
        self.count_expressions()
        matches = _comparison(operator, literal)
        if count_segment:
            self.allow(path, "$count")
            return lambda entity: matches(len(value_of(entity) or []))
        if path is not None:
            self.allow(path, "null" if literal is None else operator)
            return lambda entity: matches(value_of(entity))
        if operator != "eq":
            self.require_advanced(collection, operator)
        return lambda item: matches(value_of(item))

    def parse_list(self, property_type=None):
        self.expect("(")
        values = [self.typed_literal(property_type, "in")]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.typed_literal(property_type, "in"))
        self.expect(")")
        return values

    @staticmethod
    def relative_path(raw, variable):
        if raw == variable:
            return ""
        if raw.startswith(variable + "/"):
            return raw[len(variable) + 1 :]
        raise _bad_filter(f"Unknown range variable in '{raw}'.")

    def parse_function(self, name, root=False, variable=None, collection=None):
        self.take()
        self.expect("(")
        _, raw = self.take()
        self.expect(",")
        literal = self.parse_literal()
        self.expect(")")
        self.count_expressions()
        if not isinstance(literal, str):
            raise _bad_filter(f"{name} expects a string literal in '{self.text}'.")
        wanted = literal.lower()

        def test(value):
            if not isinstance(value, str):
                return False
            return value.lower().startswith(wanted) if name == "startswith" else value.lower().endswith(wanted)

        if root:
            path = self.property_path(raw)
            self.allow(path, name)
            value_of = _getter(path)
            return lambda entity: test(value_of(entity))
        relative = self.relative_path(raw, variable)
        if name == "endswith":
            self.require_advanced(collection, name)
        value_of = _getter(relative) if relative else (lambda item: item)
        return lambda item: test(value_of(item))

    def parse_lambda(self):
        _, raw = self.take()
        collection_raw, _, operator = raw.rpartition("/")
        path = self.property_path(collection_raw)
        self.allow(path, "any")
        self.expect("(")
        _, variable = self.take()
        self.expect(":")
        if self.peek()[0] == "word" and self.peek()[1].lower() in ("startswith", "endswith"):
            inner = self.parse_function(self.peek()[1].lower(), variable=variable, collection=path)
        else:
            inner = self.parse_comparison(variable=variable, collection=path)
        self.expect(")")
        value_of = _getter(path)
        if operator.lower() == "all":
            self.require_advanced(path, "all")
            return lambda entity: all(inner(item) for item in (value_of(entity) or []))
        return lambda entity: any(inner(item) for item in (value_of(entity) or []))


def parse_filter(text, kind, advanced):
    """Predicate for ``$filter`` on entities of ``kind`` ('user', 'group', 'audit'), or None."""
    return parse_filter_with_properties(text, kind, advanced)[0]


def parse_filter_with_properties(text, kind, advanced):
    """``(predicate or None, frozenset of the root properties it reads)``: a listing builds only those
    (and the selected ones) for each entity, instead of every computed property."""
    if text is None or not text.strip():
        return None, frozenset()
    parser = FilterParser(text, kind, advanced)
    parser.last_property = None
    predicate = parser.parse()
    return predicate, frozenset(parser.properties)


def simple_id_lookup(text):
    """IDs when the filter is only ``id eq 'x'`` / ``id in (...)``: lets the server skip a full scan."""
    if not text:
        return None
    match = re.fullmatch(r"\s*id\s+eq\s+'([^']*)'\s*", text, re.IGNORECASE)
    if match:
        return [match.group(1)]
    match = re.fullmatch(r"\s*id\s+in\s+\(([^)]*)\)\s*", text, re.IGNORECASE)
    if match:
        values = [part.strip() for part in match.group(1).split(",")]
        if all(re.fullmatch(r"'[^']*'", value) for value in values):
            return [value[1:-1] for value in values]
    return None
