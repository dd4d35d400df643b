"""Tenant file format: validation (``validate_tenant``) and a deterministic generator (``generate_tenant``).

The format is documented in ``docs/tenant-format.md``. Validation normalises every GUID to lower case
once, fills defaults, and raises ``TenantFormatError`` naming the JSON path and the bad value.
This module must not import ``engine`` (the engine imports it).
"""

from __future__ import annotations

import gc
import json
import random
import re
import uuid
from pathlib import Path

from .rules import RuleSyntaxError, parse_rule

GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# ISO 3166-1 alpha-2: Graph's usageLocation is a two-letter ISO 3166 country code.
ISO_COUNTRY_CODES = frozenset(
    """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
YT ZA ZM ZW
""".split()
)

GROUP_STATES = ("QueuedForProcessing", "ProcessingInProgress", "ProcessingComplete")
ASSIGNMENT_STATES = ("Active", "ActiveWithError", "Disabled", "Error")
ASSIGNMENT_ERRORS = (
    "None",
    "CountViolation",
    "MutuallyExclusiveViolation",
    "DependencyViolation",
    "ProhibitedInUsageLocationViolation",
    "UniquenessViolation",
    "Other",
)
LOAD_MODES = ("processed", "queued", "asRecorded")

# Permissions the collection needs: exactly the README's least-privilege table ("Permissions"), so a route the
# collection calls without the permission the README names fails here as it would in a customer's tenant. It is
# also what the emulator's default app holds (identity.DEFAULT_APP_PERMISSIONS). Tests that shape a tenant over
# HTTP (create users, set usage locations, delete groups) mint a token with what they need.
COLLECTION_PERMISSIONS = (
    "Organization.Read.All",
    "User.Read.All",
    "GroupMember.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "Group.Create",
    "GroupMember.ReadWrite.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
)

# A copy of the project's SKU fixture skus.json (real SKU and service plan GUIDs) ships with the package, so
# the emulator runs wherever it is installed, not only beside the project's shared folder.
SKU_FIXTURE_PATH = Path(__file__).resolve().parent / "data" / "skus.json"

# The only plan Microsoft's own subscribedSkus example shows with appliesTo "Company" (graph-api.md section 4).
# Every other fixture plan is "User": skus.json carries no appliesTo column.
COMPANY_PLAN_NAMES = frozenset({"ADALLOM_S_O365"})


class TenantFormatError(ValueError):
    """A tenant document does not follow docs/tenant-format.md; the message names path and value."""


def is_guid(value) -> bool:
    return isinstance(value, str) and GUID_PATTERN.match(value) is not None


def is_country_code(value) -> bool:
    return isinstance(value, str) and value.upper() in ISO_COUNTRY_CODES and len(value) == 2


_ALLOWED_CACHE = {}


class _Checker:
    """Small helpers that raise TenantFormatError with the JSON path of the offending value."""

    @staticmethod
    def fail(path, value, expected):
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        raise TenantFormatError(f"{path}: got {shown}, expected {expected}")

    def obj(self, value, path):
        if not isinstance(value, dict):
            self.fail(path, value, "an object")
        return value

    def lst(self, value, path):
        if not isinstance(value, list):
            self.fail(path, value, "a list")
        return value

    def guid(self, value, path):
        if not is_guid(value):
            self.fail(path, value, "a GUID like 6fd2c87f-b296-42f0-b197-1e91e994b900")
        return value.lower()

    def string(self, value, path, *, optional=False):
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not optional and not value):
            self.fail(path, value, "a non-empty string" if not optional else "a string or null")
        return value

    def boolean(self, value, path):
        if not isinstance(value, bool):
            self.fail(path, value, "true or false")
        return value

    def count(self, value, path):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(path, value, "a non-negative integer")
        return value

    def country(self, value, path, *, optional=True):
        if value is None and optional:
            return None
        if not is_country_code(value):
            self.fail(path, value, "a two-letter ISO 3166 country code such as 'US'" + (" or null" if optional else ""))
        return value.upper()

    def choice(self, value, path, choices):
        if value not in choices:
            self.fail(path, value, "one of " + ", ".join(choices))
        return value

    def unknown_keys(self, data, path, allowed):
        allowed = _ALLOWED_CACHE.get(allowed) or _ALLOWED_CACHE.setdefault(allowed, frozenset(allowed))
        if data.keys() <= allowed:
            return
        extra = sorted(set(data) - allowed)
        if extra:
            raise TenantFormatError(f"{path}: unknown key {extra[0]!r}; allowed keys: {', '.join(sorted(allowed))}")


_check = _Checker()

# User properties a tenant file may carry besides the core ones: what dynamic membership rules read and what
# Entra Connect writes for a user synced from on-premises AD. Kept as the user's extras (returned when selected).
ONPREM_KEYS = (
    "onPremisesSyncEnabled",
    "onPremisesSecurityIdentifier",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
)
EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{n}" for n in range(1, 16))
USER_EXTRA_KEYS = ("city", "country", "companyName", "employeeId", "userType", "state") + ONPREM_KEYS + ("onPremisesExtensionAttributes",)
RULE_STATES = ("On", "Paused")
RULE_STATUSES = ("NotStarted", "Running", "Succeeded", "Failed")

_TOP_KEYS = ("tenant", "apps", "subscribedSkus", "users", "groups", "rules", "processing")
_USER_KEYS = (
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "accountEnabled",
    "usageLocation",
    "jobTitle",
    "department",
    "createdDateTime",
    "directLicenses",
    "groupLicenses",
) + USER_EXTRA_KEYS
_GROUP_KEYS = (
    "id",
    "displayName",
    "description",
    "securityEnabled",
    "mailEnabled",
    "mailNickname",
    "groupTypes",
    "createdDateTime",
    "members",
    "assignedLicenses",
    "licenseProcessingState",
    "membershipRule",
    "membershipRuleProcessingState",
    "membershipRuleProcessingStatus",
) + ONPREM_KEYS
_SKU_KEYS = ("skuId", "skuPartNumber", "prepaidUnits", "capabilityStatus", "appliesTo", "servicePlans", "subscriptionIds", "accountName")
_PLAN_KEYS = ("servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo")


def validate_app(app, path="apps[0]") -> dict:
    """Normalise one app entry {clientId, displayName, secrets, certificates, permissions}."""
    _check.obj(app, path)
    _check.unknown_keys(app, path, ("clientId", "displayName", "secrets", "certificates", "permissions"))
    client_id = _check.guid(app.get("clientId"), f"{path}.clientId")
    secrets = [_check.string(s, f"{path}.secrets[{i}]") for i, s in enumerate(_check.lst(app.get("secrets", []), f"{path}.secrets"))]
    certificates = []
    for i, pem in enumerate(_check.lst(app.get("certificates", []), f"{path}.certificates")):
        _check.string(pem, f"{path}.certificates[{i}]")
        if "-----BEGIN CERTIFICATE-----" not in pem:
            _check.fail(f"{path}.certificates[{i}]", pem[:40], "a PEM certificate")
        certificates.append(pem)
    permissions = [_check.string(p, f"{path}.permissions[{i}]") for i, p in enumerate(_check.lst(app.get("permissions", []), f"{path}.permissions"))]
    return {
        "clientId": client_id,
        "displayName": _check.string(app.get("displayName", f"App {client_id[:8]}"), f"{path}.displayName"),
        "secrets": secrets,
        "certificates": certificates,
        "permissions": permissions,
    }


def _validate_sku(sku, path):
    _check.obj(sku, path)
    _check.unknown_keys(sku, path, _SKU_KEYS)
    units = _check.obj(sku.get("prepaidUnits", {}), f"{path}.prepaidUnits")
    _check.unknown_keys(units, f"{path}.prepaidUnits", ("enabled", "suspended", "warning", "lockedOut"))
    plans = []
    seen = set()
    for i, plan in enumerate(_check.lst(sku.get("servicePlans"), f"{path}.servicePlans")):
        ppath = f"{path}.servicePlans[{i}]"
        _check.obj(plan, ppath)
        _check.unknown_keys(plan, ppath, _PLAN_KEYS)
        plan_id = _check.guid(plan.get("servicePlanId"), f"{ppath}.servicePlanId")
        if plan_id in seen:
            _check.fail(f"{ppath}.servicePlanId", plan_id, "a plan listed once per SKU")
        seen.add(plan_id)
        plans.append(
            {
                "servicePlanId": plan_id,
                "servicePlanName": _check.string(plan.get("servicePlanName"), f"{ppath}.servicePlanName"),
                "provisioningStatus": _check.string(plan.get("provisioningStatus", "Success"), f"{ppath}.provisioningStatus"),
                "appliesTo": _check.choice(plan.get("appliesTo", "User"), f"{ppath}.appliesTo", ("User", "Company")),
            }
        )
    return {
        "skuId": _check.guid(sku.get("skuId"), f"{path}.skuId"),
        "skuPartNumber": _check.string(sku.get("skuPartNumber"), f"{path}.skuPartNumber"),
        "prepaidUnits": {key: _check.count(units.get(key, 0), f"{path}.prepaidUnits.{key}") for key in ("enabled", "suspended", "warning", "lockedOut")},
        "capabilityStatus": _check.choice(
            sku.get("capabilityStatus", "Enabled"), f"{path}.capabilityStatus", ("Enabled", "Warning", "Suspended", "Deleted", "LockedOut")
        ),
        "appliesTo": _check.choice(sku.get("appliesTo", "User"), f"{path}.appliesTo", ("User", "Company")),
        "servicePlans": plans,
        "subscriptionIds": [
            _check.string(s, f"{path}.subscriptionIds[{i}]") for i, s in enumerate(_check.lst(sku.get("subscriptionIds", []), f"{path}.subscriptionIds"))
        ],
        "accountName": _check.string(sku.get("accountName"), f"{path}.accountName", optional=True),
    }


def _validate_licenses(licenses, path, sku_plans):
    """[{skuId, disabledPlans}] -> normalised list; every skuId subscribed, every disabled plan in that SKU."""
    result = []
    seen = set()
    for i, lic in enumerate(_check.lst(licenses, path)):
        lpath = f"{path}[{i}]"
        _check.obj(lic, lpath)
        _check.unknown_keys(lic, lpath, ("skuId", "disabledPlans"))
        sku_id = _check.guid(lic.get("skuId"), f"{lpath}.skuId")
        if sku_id not in sku_plans:
            _check.fail(f"{lpath}.skuId", sku_id, "the skuId of an entry in subscribedSkus")
        if sku_id in seen:
            _check.fail(f"{lpath}.skuId", sku_id, "each SKU once per list")
        seen.add(sku_id)
        disabled = []
        for j, plan in enumerate(_check.lst(lic.get("disabledPlans", []), f"{lpath}.disabledPlans")):
            plan_id = _check.guid(plan, f"{lpath}.disabledPlans[{j}]")
            if plan_id not in sku_plans[sku_id]:
                _check.fail(f"{lpath}.disabledPlans[{j}]", plan_id, f"a servicePlanId of SKU {sku_id}")
            if plan_id not in disabled:
                disabled.append(plan_id)
        result.append({"skuId": sku_id, "disabledPlans": sorted(disabled)})
    return result


def _plan_ref(value, path, plan_names):
    """Rules name plans by servicePlanId or by servicePlanName (resolved through the tenant's catalog)."""
    if is_guid(value):
        return value.lower()
    if isinstance(value, str) and value in plan_names:
        return plan_names[value]
    _check.fail(path, value, "a servicePlanId GUID or a servicePlanName present in subscribedSkus")


def _validate_rules(rules, plan_names):
    _check.obj(rules, "rules")
    _check.unknown_keys(rules, "rules", ("mutuallyExclusivePlans", "planDependencies", "prohibitedUsageLocations"))
    pairs = []
    for i, pair in enumerate(_check.lst(rules.get("mutuallyExclusivePlans", []), "rules.mutuallyExclusivePlans")):
        ppath = f"rules.mutuallyExclusivePlans[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            _check.fail(ppath, pair, "a pair [planA, planB]")
        a, b = (_plan_ref(p, f"{ppath}[{j}]", plan_names) for j, p in enumerate(pair))
        if a == b:
            _check.fail(ppath, pair, "two different plans")
        pairs.append([a, b])
    dependencies = {}
    for plan, prereqs in _check.obj(rules.get("planDependencies", {}), "rules.planDependencies").items():
        dpath = f"rules.planDependencies[{plan!r}]"
        dependent = _plan_ref(plan, dpath, plan_names)
        required = [_plan_ref(p, f"{dpath}[{j}]", plan_names) for j, p in enumerate(_check.lst(prereqs, dpath))]
        if not required:
            _check.fail(dpath, prereqs, "at least one prerequisite plan")
        dependencies[dependent] = sorted(set(required))
    prohibited = {}
    for plan, countries in _check.obj(rules.get("prohibitedUsageLocations", {}), "rules.prohibitedUsageLocations").items():
        ppath = f"rules.prohibitedUsageLocations[{plan!r}]"
        plan_id = _plan_ref(plan, ppath, plan_names)
        prohibited[plan_id] = sorted({_check.country(c, f"{ppath}[{j}]", optional=False) for j, c in enumerate(_check.lst(countries, ppath))})
    return {"mutuallyExclusivePlans": pairs, "planDependencies": dependencies, "prohibitedUsageLocations": prohibited}


def _validate_user(user, path, sku_plans, upns):
    _check.obj(user, path)
    _check.unknown_keys(user, path, _USER_KEYS)
    upn = _check.string(user.get("userPrincipalName"), f"{path}.userPrincipalName")
    if "@" not in upn:
        _check.fail(f"{path}.userPrincipalName", upn, "a userPrincipalName like alice@contoso.com")
    if upn.lower() in upns:
        _check.fail(f"{path}.userPrincipalName", upn, "a userPrincipalName not used by another user")
    upns.add(upn.lower())
    account_enabled = user.get("accountEnabled", True)
    normalised = {
        "id": _check.guid(user.get("id"), f"{path}.id"),
        "userPrincipalName": upn,
        "displayName": _check.string(user.get("displayName", upn.split("@")[0]), f"{path}.displayName"),
        "givenName": _check.string(user.get("givenName"), f"{path}.givenName", optional=True),
        "surname": _check.string(user.get("surname"), f"{path}.surname", optional=True),
        "mail": _check.string(user.get("mail"), f"{path}.mail", optional=True),
        "mailNickname": _check.string(user.get("mailNickname", upn.split("@")[0]), f"{path}.mailNickname"),
        "accountEnabled": _check.boolean(account_enabled, f"{path}.accountEnabled"),
        "usageLocation": _check.country(user.get("usageLocation"), f"{path}.usageLocation"),
        "jobTitle": _check.string(user.get("jobTitle"), f"{path}.jobTitle", optional=True),
        "department": _check.string(user.get("department"), f"{path}.department", optional=True),
        "createdDateTime": _check.string(user.get("createdDateTime"), f"{path}.createdDateTime", optional=True),
        "directLicenses": _validate_licenses(user.get("directLicenses", []), f"{path}.directLicenses", sku_plans),
    }
    normalised.update(_validate_user_extras(user, path))
    if "groupLicenses" in user:
        entries = []
        for i, entry in enumerate(_check.lst(user["groupLicenses"], f"{path}.groupLicenses")):
            epath = f"{path}.groupLicenses[{i}]"
            _check.obj(entry, epath)
            _check.unknown_keys(entry, epath, ("groupId", "state", "error", "lastUpdatedDateTime", "licenses"))
            entries.append(
                {
                    "groupId": _check.guid(entry.get("groupId"), f"{epath}.groupId"),
                    "state": _check.choice(entry.get("state", "Active"), f"{epath}.state", ASSIGNMENT_STATES),
                    "error": _check.choice(entry.get("error", "None"), f"{epath}.error", ASSIGNMENT_ERRORS),
                    "lastUpdatedDateTime": _check.string(entry.get("lastUpdatedDateTime"), f"{epath}.lastUpdatedDateTime", optional=True),
                    "licenses": _validate_licenses(entry.get("licenses", []), f"{epath}.licenses", sku_plans),
                }
            )
        normalised["groupLicenses"] = entries
    return normalised


def _validate_onprem(data, path):
    """The on-premises properties Entra Connect writes: only those present, onPremisesSyncEnabled true or null."""
    result = {}
    for key in ONPREM_KEYS:
        if key not in data:
            continue
        if key == "onPremisesSyncEnabled":
            if data[key] not in (True, None):
                _check.fail(f"{path}.{key}", data[key], "true or null (false is not modelled: a once-synced object is cloud-only again)")
            result[key] = data[key]
        else:
            result[key] = _check.string(data[key], f"{path}.{key}", optional=True)
    return result


def _validate_user_extras(user, path):
    extras = {}
    for key in ("city", "country", "companyName", "employeeId", "userType", "state"):
        if key in user:
            extras[key] = _check.string(user[key], f"{path}.{key}", optional=True)
    if "userType" in extras and extras["userType"] not in (None, "Member", "Guest"):
        _check.fail(f"{path}.userType", extras["userType"], "'Member', 'Guest' or null")
    extras.update(_validate_onprem(user, path))
    if "onPremisesExtensionAttributes" in user:
        extras["onPremisesExtensionAttributes"] = validate_extension_attributes(user["onPremisesExtensionAttributes"], f"{path}.onPremisesExtensionAttributes")
    return extras


def validate_extension_attributes(value, path):
    """onPremisesExtensionAttributes: an object of extensionAttribute1..15 (strings or null); all 15 keys in the result."""
    _check.obj(value, path)
    _check.unknown_keys(value, path, EXTENSION_ATTRIBUTES)
    return {key: _check.string(value.get(key), f"{path}.{key}", optional=True) for key in EXTENSION_ATTRIBUTES}


def _validate_dynamic(group, path, group_types):
    """membershipRule, membershipRuleProcessingState and the recorded status of a DynamicMembership group."""
    dynamic = "DynamicMembership" in group_types
    rule = group.get("membershipRule")
    if not dynamic:
        for key in ("membershipRule", "membershipRuleProcessingState", "membershipRuleProcessingStatus"):
            if group.get(key) is not None:
                _check.fail(f"{path}.{key}", group[key], "null for a group whose groupTypes has no 'DynamicMembership'")
        return {}
    _check.string(rule, f"{path}.membershipRule")
    try:
        parse_rule(rule)
    except RuleSyntaxError as error:
        _check.fail(f"{path}.membershipRule", rule, f"a rule the emulator can read ({error})")
    result = {
        "membershipRule": rule,
        "membershipRuleProcessingState": _check.choice(group.get("membershipRuleProcessingState", "On"), f"{path}.membershipRuleProcessingState", RULE_STATES),
    }
    status = group.get("membershipRuleProcessingStatus")
    if status is not None:
        _check.obj(status, f"{path}.membershipRuleProcessingStatus")
        _check.unknown_keys(status, f"{path}.membershipRuleProcessingStatus", ("status", "lastMembershipUpdated", "errorMessage"))
        result["membershipRuleProcessingStatus"] = {
            "status": _check.choice(status.get("status"), f"{path}.membershipRuleProcessingStatus.status", RULE_STATUSES),
            "lastMembershipUpdated": _check.string(
                status.get("lastMembershipUpdated"), f"{path}.membershipRuleProcessingStatus.lastMembershipUpdated", optional=True
            ),
            "errorMessage": None,
        }
    return result


def _validate_group(group, path, sku_plans):
    _check.obj(group, path)
    _check.unknown_keys(group, path, _GROUP_KEYS)
    group_types = [_check.string(t, f"{path}.groupTypes[{i}]") for i, t in enumerate(_check.lst(group.get("groupTypes", []), f"{path}.groupTypes"))]
    display_name = _check.string(group.get("displayName"), f"{path}.displayName")
    state = group.get("licenseProcessingState")
    return {
        "id": _check.guid(group.get("id"), f"{path}.id"),
        "displayName": display_name,
        "description": _check.string(group.get("description"), f"{path}.description", optional=True),
        "securityEnabled": _check.boolean(group.get("securityEnabled", True), f"{path}.securityEnabled"),
        "mailEnabled": _check.boolean(group.get("mailEnabled", False), f"{path}.mailEnabled"),
        "mailNickname": _check.string(group.get("mailNickname", re.sub(r"[^A-Za-z0-9]", "", display_name) or "group"), f"{path}.mailNickname"),
        "groupTypes": group_types,
        "createdDateTime": _check.string(group.get("createdDateTime"), f"{path}.createdDateTime", optional=True),
        "members": [_check.guid(m, f"{path}.members[{i}]") for i, m in enumerate(_check.lst(group.get("members", []), f"{path}.members"))],
        "assignedLicenses": _validate_licenses(group.get("assignedLicenses", []), f"{path}.assignedLicenses", sku_plans),
        "licenseProcessingState": None if state is None else _check.choice(state, f"{path}.licenseProcessingState", GROUP_STATES),
        **_validate_dynamic(group, path, group_types),
        **_validate_onprem(group, path),
    }


def validate_tenant(document) -> dict:
    """Return a normalised copy of a tenant document, or raise TenantFormatError naming path and value."""
    _check.obj(document, "(document)")
    _check.unknown_keys(document, "(document)", _TOP_KEYS)
    info = _check.obj(document.get("tenant"), "tenant")
    _check.unknown_keys(info, "tenant", ("id", "displayName", "defaultDomain", "countryLetterCode"))
    tenant = {
        "id": _check.guid(info.get("id"), "tenant.id"),
        "displayName": _check.string(info.get("displayName", "Contoso"), "tenant.displayName"),
        "defaultDomain": _check.string(info.get("defaultDomain"), "tenant.defaultDomain"),
        "countryLetterCode": _check.country(info.get("countryLetterCode"), "tenant.countryLetterCode", optional=False),
    }
    apps = [validate_app(app, f"apps[{i}]") for i, app in enumerate(_check.lst(document.get("apps", []), "apps"))]
    _unique([a["clientId"] for a in apps], "apps", "clientId")

    skus = [_validate_sku(s, f"subscribedSkus[{i}]") for i, s in enumerate(_check.lst(document.get("subscribedSkus", []), "subscribedSkus"))]
    _unique([s["skuId"] for s in skus], "subscribedSkus", "skuId")
    sku_plans = {s["skuId"]: {p["servicePlanId"] for p in s["servicePlans"]} for s in skus}
    plan_names = {p["servicePlanName"]: p["servicePlanId"] for s in skus for p in s["servicePlans"]}

    upns = set()
    users = [_validate_user(u, f"users[{i}]", sku_plans, upns) for i, u in enumerate(_check.lst(document.get("users", []), "users"))]
    groups = [_validate_group(g, f"groups[{i}]", sku_plans) for i, g in enumerate(_check.lst(document.get("groups", []), "groups"))]
    ids = _check_references(users, groups)
    group_ids = {g["id"] for g in groups}
    rules = _validate_rules(document.get("rules", {}), plan_names)
    mode, pending = _validate_processing(document.get("processing", {}), users, ids, group_ids)
    return {
        "tenant": tenant,
        "apps": apps,
        "subscribedSkus": skus,
        "users": users,
        "groups": groups,
        "rules": rules,
        "processing": {"groupLicenses": mode, "pending": pending},
    }


def _check_references(users, groups):
    """``{id: "users[i]" or "groups[i]"}``, after checking ids are unique and memberships name objects of the file."""
    ids = {}
    for kind, items in (("users", users), ("groups", groups)):
        for i, item in enumerate(items):
            if item["id"] in ids:
                _check.fail(f"{kind}[{i}].id", item["id"], f"an id not already used by {ids[item['id']]}")
            ids[item["id"]] = f"{kind}[{i}]"
    group_ids = {g["id"] for g in groups}
    for i, group in enumerate(groups):
        seen = set()
        for j, member in enumerate(group["members"]):
            if member not in ids:
                _check.fail(f"groups[{i}].members[{j}]", member, "the id of a user or group in this file")
            if member == group["id"] or member in seen:
                _check.fail(f"groups[{i}].members[{j}]", member, "a member listed once and not the group itself")
            seen.add(member)
        if group["assignedLicenses"] and not group["securityEnabled"]:
            _check.fail(f"groups[{i}].securityEnabled", False, "true for a group that carries licenses")
        if "membershipRule" in group or group.get("onPremisesSyncEnabled"):
            _check_kind_members(group, i, {g["id"]: g for g in groups}, {u["id"]: u for u in users})
    for i, user in enumerate(users):
        for j, entry in enumerate(user.get("groupLicenses", [])):
            if entry["groupId"] not in group_ids:
                _check.fail(f"users[{i}].groupLicenses[{j}].groupId", entry["groupId"], "the id of a group in this file")
    return ids


def _check_kind_members(group, i, groups_by_id, users_by_id):
    """A dynamic group holds users only; a synced group holds synced objects only and is not dynamic."""
    if "membershipRule" in group:
        if group.get("onPremisesSyncEnabled"):
            _check.fail(f"groups[{i}].onPremisesSyncEnabled", True, "null for a DynamicMembership group (a synced group's members come from AD)")
        for j, member in enumerate(group["members"]):
            if member in groups_by_id:
                _check.fail(f"groups[{i}].members[{j}]", member, "a user (a dynamic group's rule selects users only)")
    if group.get("onPremisesSyncEnabled"):
        for j, member in enumerate(group["members"]):
            other = users_by_id.get(member) or groups_by_id.get(member)
            if not other.get("onPremisesSyncEnabled"):
                _check.fail(f"groups[{i}].members[{j}]", member, "a user or group synced from on-premises (onPremisesSyncEnabled true) in a synced group")


def _validate_processing(processing, users, ids, group_ids):
    """(mode, pending) of the document's ``processing`` section."""
    processing = _check.obj(processing, "processing")
    _check.unknown_keys(processing, "processing", ("groupLicenses", "pending"))
    has_recorded = any("groupLicenses" in u for u in users)
    mode = _check.choice(processing.get("groupLicenses", "asRecorded" if has_recorded else "processed"), "processing.groupLicenses", LOAD_MODES)
    pending = []
    for i, pair in enumerate(_check.lst(processing.get("pending", []), "processing.pending")):
        if not isinstance(pair, list) or len(pair) != 2:
            _check.fail(f"processing.pending[{i}]", pair, "a pair [groupId, userId or null]")
        gid = _check.guid(pair[0], f"processing.pending[{i}][0]")
        uid = None if pair[1] is None else _check.guid(pair[1], f"processing.pending[{i}][1]")
        if gid not in group_ids or (uid is not None and uid not in ids):
            _check.fail(f"processing.pending[{i}]", pair, "ids of a group and a user of this file")
        pending.append([gid, uid])
    if pending and mode != "asRecorded":
        _check.fail("processing.pending", pending[:1], "pending work only with groupLicenses 'asRecorded'")
    return mode, pending


def _unique(values, path, key):
    seen = set()
    for i, value in enumerate(values):
        if value in seen:
            _check.fail(f"{path}[{i}].{key}", value, f"a {key} used once")
        seen.add(value)


# --------------------------------------------------------------------------------------------------
# Generator

_GIVEN_NAMES = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Sophie",
    "Guido",
    "Hedy",
    "John",
    "Karen",
    "Niklaus",
    "Anita",
    "Donald",
)
_SURNAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "van Rossum",
    "Lamarr",
    "Backus",
    "Jones",
    "Wirth",
    "Borg",
    "Knuth",
)
_DEPARTMENTS = ("Finance", "Engineering", "Sales", "Marketing", "HR", "Legal", "Support", "Operations")
_JOB_TITLES = ("Analyst", "Engineer", "Manager", "Consultant", "Specialist", "Director", "Assistant")
_COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "NL", "JP", "CA", "AU", "IN", "BR")
# Plans admins commonly switch off in an E3-style SKU; picked only when present in the SKU.
_COMMONLY_DISABLED = (
    "SWAY",
    "YAMMER_ENTERPRISE",
    "KAIZALA_O365_P3",
    "Deskless",
    "MYANALYTICS_P2",
    "MICROSOFTBOOKINGS",
    "BPOS_S_TODO_2",
    "STREAM_O365_E3",
    "PROJECT_O365_P2",
    "FORMS_PLAN_E1",
)

PROFILES = ("default", "seed", "dynamic", "hybrid", "multisku")  # multisku: multisku.py
# Profiles built on the seed example (same users, licenses and exceptions; docs/tenant-format.md section 3).
SEED_PROFILES = ("seed", "dynamic", "hybrid")
DYNAMIC_ALL_USERS_RULE = "user.objectId -ne null"
ONPREM_DOMAIN = "corp.contoso.com"
# A fixed time for generated snapshots (onPremisesLastSyncDateTime, lastMembershipUpdated): deterministic output.
GENERATED_AT = "2026-01-05T06:00:00Z"
# The seed example's legacy automation assigns E3 with these plans off: Kaizala (retired by Microsoft) and
# Yammer (replaced by Teams channels) are what tenants standardising on Teams commonly switched off.
STANDARD_DISABLED_PLANS = ("KAIZALA_O365_P3", "YAMMER_ENTERPRISE")
SEED_GROUP_NAME = "All users"

DEFAULT_EXTRA_SKUS = (
    "STANDARDPACK",
    "ENTERPRISEPREMIUM",
    "SPE_E3",
    "EMS",
    "EMSPREMIUM",
    "EXCHANGESTANDARD",
    "AAD_PREMIUM",
    "MCOMEETADV",
    "WORKPLACE_ANALYTICS",
)
# Realistic small purchases for the SKUs nobody holds in a generated tenant.
_EXTRA_UNITS = {
    "STANDARDPACK": 50,
    "ENTERPRISEPREMIUM": 25,
    "SPE_E3": 25,
    "EMS": 100,
    "EMSPREMIUM": 25,
    "EXCHANGESTANDARD": 20,
    "EXCHANGEENTERPRISE": 10,
    "AAD_PREMIUM": 100,
    "MCOMEETADV": 10,
    "WORKPLACE_ANALYTICS": 5,
}


def load_sku_fixture(path=SKU_FIXTURE_PATH) -> dict:
    """skuPartNumber -> {skuId, skuPartNumber, displayName, servicePlans[{servicePlanId, servicePlanName}]}."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {sku["skuPartNumber"]: sku for sku in data["skus"]}


def _subscribed_sku(fixture_sku, enabled_units, rng):
    return {
        "skuId": fixture_sku["skuId"].lower(),
        "skuPartNumber": fixture_sku["skuPartNumber"],
        "prepaidUnits": {"enabled": enabled_units, "suspended": 0, "warning": 0, "lockedOut": 0},
        "capabilityStatus": "Enabled",
        "appliesTo": "User",
        "subscriptionIds": [str(uuid.UUID(int=rng.getrandbits(128), version=4))],
        "servicePlans": [
            {
                "servicePlanId": plan["servicePlanId"].lower(),
                "servicePlanName": plan["servicePlanName"],
                "provisioningStatus": "Success",
                "appliesTo": "Company" if plan["servicePlanName"] in COMPANY_PLAN_NAMES else "User",
            }
            for plan in fixture_sku["servicePlans"]
        ],
    }


def _default_rules(catalog):
    """Dependencies the licensing reference names (entra-licensing.md section 3); conflicts stay empty
    because Exchange Plan 1/2 now stack and the SharePoint pair is unconfirmed (section 14)."""
    plan_ids = {}
    for sku in catalog.values():
        for plan in sku["servicePlans"]:
            plan_ids.setdefault(plan["servicePlanName"], plan["servicePlanId"].lower())
    dependencies = {}
    exchange = [plan_ids[n] for n in ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE") if n in plan_ids]
    if "WORKPLACE_ANALYTICS" in catalog and exchange:
        for plan in catalog["WORKPLACE_ANALYTICS"]["servicePlans"]:
            if plan["servicePlanName"] not in COMPANY_PLAN_NAMES:
                dependencies[plan["servicePlanId"].lower()] = sorted(exchange)
    if "MCOMEETADV" in catalog and "MCOSTANDARD" in plan_ids:
        for plan in catalog["MCOMEETADV"]["servicePlans"]:
            dependencies[plan["servicePlanId"].lower()] = [plan_ids["MCOSTANDARD"]]
    return {"mutuallyExclusivePlans": [], "planDependencies": dependencies, "prohibitedUsageLocations": {}}


def _default_groups(user_docs, users, nested_users, new_id):
    """ "Contractors" (the last ``nested_users`` users) inside "All users (nested)": nested members are never licensed."""
    contractors_id, nested_parent_id = new_id(), new_id()
    contractor_members = [u["id"] for u in user_docs[-min(nested_users, users) :]] if nested_users and users else []
    return [
        {
            "id": contractors_id,
            "displayName": "Contractors",
            "description": "Contractors (nested inside All users (nested))",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "Contractors",
            "groupTypes": [],
            "members": contractor_members,
            "assignedLicenses": [],
        },
        {
            "id": nested_parent_id,
            "displayName": "All users (nested)",
            "description": "Holds only the Contractors group",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "AllUsersNested",
            "groupTypes": [],
            "members": [contractors_id],
            "assignedLicenses": [],
        },
    ]


def _seed_groups(user_docs, nested_indexes, new_id):
    """ "All users": every user directly, except the members of its nested "Contractors" group."""
    contractors_id, all_users_id = new_id(), new_id()
    contractor_members = [u["id"] for index, u in enumerate(user_docs) if index in nested_indexes]
    direct_members = [u["id"] for index, u in enumerate(user_docs) if index not in nested_indexes]
    return [
        {
            "id": all_users_id,
            "displayName": SEED_GROUP_NAME,
            "description": "Every employee; contractors through the Contractors group",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "AllUsers",
            "groupTypes": [],
            "members": direct_members + [contractors_id],
            "assignedLicenses": [],
        },
        {
            "id": contractors_id,
            "displayName": "Contractors",
            "description": "Contractors (nested inside All users)",
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "Contractors",
            "groupTypes": [],
            "members": contractor_members,
            "assignedLicenses": [],
        },
    ]


def generate_tenant(
    users=1000,
    seed=0,
    sku="ENTERPRISEPACK",
    units=None,
    disabled_plan_ratio=0.1,
    no_usage_location=3,
    nested_users=5,
    extra_skus=DEFAULT_EXTRA_SKUS,
    apps=None,
    fixture_path=SKU_FIXTURE_PATH,
    profile="default",
    plan_exceptions=12,
    cloud_only_users=5,
    onprem_missing=20,
) -> dict:
    """A deterministic tenant in the documented format: ``users`` users holding ``sku`` directly.

    ``profile="seed"`` is the migration's seed example (docs/tenant-format.md section 3): every direct copy
    has the legacy automation's STANDARD_DISABLED_PLANS off except ``plan_exceptions`` users whose copy
    enables one of them, and an "All users" group holds everyone directly except ``nested_users`` users,
    who are in it only through its nested "Contractors" group. ``disabled_plan_ratio`` is not used there.
    """
    if not isinstance(users, int) or users < 0:
        raise ValueError(f"users: got {users!r}, expected a non-negative integer")
    if profile not in PROFILES:
        raise ValueError(f"profile: got {profile!r}, expected one of {', '.join(PROFILES)}")
    for name, value in (
        ("no_usage_location", no_usage_location),
        ("nested_users", nested_users),
        ("plan_exceptions", plan_exceptions),
        ("cloud_only_users", cloud_only_users),
        ("onprem_missing", onprem_missing),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: got {value!r}, expected a non-negative integer")
    if not 0.0 <= disabled_plan_ratio <= 1.0:
        raise ValueError(f"disabled_plan_ratio: got {disabled_plan_ratio!r}, expected a number between 0 and 1")
    collecting = gc.isenabled()
    gc.disable()  # many small long-lived dicts: cyclic GC passes only cost time
    try:
        tenant = _generate(
            users, seed, sku, units, disabled_plan_ratio, no_usage_location, nested_users, extra_skus, apps, fixture_path, profile, plan_exceptions
        )
        if profile == "dynamic":
            _make_dynamic(tenant)
        elif profile == "hybrid":
            _make_hybrid(tenant, seed, cloud_only_users, onprem_missing)
        return tenant
    finally:
        if collecting:
            gc.enable()


def _generate(
    users, seed, sku, units, disabled_plan_ratio, no_usage_location, nested_users, extra_skus, apps, fixture_path, profile="default", plan_exceptions=0
):
    catalog = load_sku_fixture(fixture_path)
    if sku not in catalog:
        raise ValueError(f"sku: got {sku!r}, expected one of {', '.join(sorted(catalog))}")
    for extra in extra_skus:
        if extra not in catalog:
            raise ValueError(f"extra_skus: got {extra!r}, expected one of {', '.join(sorted(catalog))}")
    rng = random.Random(seed)

    def new_id():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    tenant_id = new_id()
    domain = "contoso.onmicrosoft.com"
    main_units = units if units is not None else users + max(10, users // 10)
    skus = [_subscribed_sku(catalog[sku], main_units, rng)]
    skus += [_subscribed_sku(catalog[extra], _EXTRA_UNITS.get(extra, 25), rng) for extra in extra_skus if extra != sku]

    user_plans = [p for p in skus[0]["servicePlans"] if p["appliesTo"] == "User"]
    common = [p["servicePlanId"] for p in user_plans if p["servicePlanName"] in _COMMONLY_DISABLED]
    candidates = common or [p["servicePlanId"] for p in user_plans]
    seed_profile = profile in SEED_PROFILES
    if seed_profile:
        standard = [p["servicePlanId"] for p in user_plans if p["servicePlanName"] in STANDARD_DISABLED_PLANS]
        if len(standard) != len(STANDARD_DISABLED_PLANS):
            raise ValueError(f"profile: 'seed' needs a sku with the plans {', '.join(STANDARD_DISABLED_PLANS)}; {sku} lacks some")
        # Disjoint sets, so each user of the seed example has one reason to be special.
        special = rng.sample(range(users), min(users, plan_exceptions + no_usage_location + nested_users))
        exceptions = special[:plan_exceptions]
        without_location = set(special[plan_exceptions : plan_exceptions + no_usage_location])
        nested_indexes = set(special[plan_exceptions + no_usage_location :])
        # An exception enables one plan of the standard set (alternately each): the group will not match it.
        exception_disabled = dict((index, sorted(set(standard) - {standard[position % len(standard)]})) for position, index in enumerate(exceptions))
    else:
        without_location = set(rng.sample(range(users), min(no_usage_location, users)))

    user_docs = []
    for index in range(users):
        given = _GIVEN_NAMES[index % len(_GIVEN_NAMES)]
        surname = _SURNAMES[(index // len(_GIVEN_NAMES)) % len(_SURNAMES)]
        alias = f"{given}.{surname}".lower().replace(" ", "").replace("-", "") + f".{index:06d}"
        disabled = []
        if seed_profile:
            disabled = exception_disabled.get(index, sorted(standard))
        elif candidates and rng.random() < disabled_plan_ratio:
            disabled = sorted(rng.sample(candidates, min(len(candidates), rng.choice((1, 1, 2)))))
        user_docs.append(
            {
                "id": new_id(),
                "userPrincipalName": f"{alias}@{domain}",
                "displayName": f"{given} {surname} {index:06d}",
                "givenName": given,
                "surname": surname,
                "mail": f"{alias}@{domain}",
                "accountEnabled": True,
                "usageLocation": None if index in without_location else _COUNTRIES[rng.randrange(len(_COUNTRIES))],
                "jobTitle": _JOB_TITLES[rng.randrange(len(_JOB_TITLES))],
                "department": _DEPARTMENTS[rng.randrange(len(_DEPARTMENTS))],
                "directLicenses": [{"skuId": skus[0]["skuId"], "disabledPlans": disabled}],
            }
        )

    if seed_profile:
        groups = _seed_groups(user_docs, nested_indexes, new_id)
    else:
        groups = _default_groups(user_docs, users, nested_users, new_id)
    if apps is None:
        apps = [
            {
                "clientId": new_id(),
                "displayName": "entraops-licensing (emulated)",
                "secrets": [f"emu~{rng.getrandbits(160):040x}"],
                "certificates": [],
                # the seed example is also for rehearsing the rollback, which gives users without one a usage location
                "permissions": list(COLLECTION_PERMISSIONS)
                + (["User.ReadWrite.All"] if seed_profile else [])
                # a rule change (membershipRule) is a group PATCH: Group.ReadWrite.All (docs/tenant-format.md section 5)
                + (["Group.ReadWrite.All"] if profile == "dynamic" else []),
            }
        ]
    doc = {
        "tenant": {"id": tenant_id, "displayName": "Contoso (emulated)", "defaultDomain": domain, "countryLetterCode": "US"},
        "apps": apps,
        "subscribedSkus": skus,
        "users": user_docs,
        "groups": groups,
        "rules": _default_rules({name: catalog[name] for name in (sku, *extra_skus)}),
        "processing": {"groupLicenses": "processed"},
    }
    if profile == "multisku":
        from .multisku import apply_multisku  # pylint: disable=import-outside-toplevel

        catalog_rules = {name: catalog[name] for name in (sku, *extra_skus, "EMS", "MCOMEETADV", "WORKPLACE_ANALYTICS") if name in catalog}
        doc["rules"] = _default_rules(catalog_rules)
        return apply_multisku(doc, seed, catalog, _subscribed_sku, new_id)
    return doc


def _seed_group(tenant, name):
    return next(g for g in tenant["groups"] if g["displayName"] == name)


def _make_dynamic(tenant):
    """Profile ``dynamic``: the seed example whose "All users" is a dynamic group holding every user by its rule
    (evaluated: members and status recorded). Contractors stays a static group, no longer nested (a dynamic
    group's rule selects users only), so its users are direct members like everyone else."""
    group = _seed_group(tenant, SEED_GROUP_NAME)
    group["description"] = "Every user, by the dynamic rule " + DYNAMIC_ALL_USERS_RULE
    group["groupTypes"] = ["DynamicMembership"]
    group["membershipRule"] = DYNAMIC_ALL_USERS_RULE
    group["membershipRuleProcessingState"] = "On"
    group["membershipRuleProcessingStatus"] = {"status": "Succeeded", "lastMembershipUpdated": GENERATED_AT, "errorMessage": None}
    group["members"] = [u["id"] for u in tenant["users"]]


def _onprem(sid, sam):
    return {
        "onPremisesSyncEnabled": True,
        "onPremisesSecurityIdentifier": sid,
        "onPremisesSamAccountName": sam,
        "onPremisesDomainName": ONPREM_DOMAIN,
        "onPremisesLastSyncDateTime": GENERATED_AT,
    }


def _sam_account_name(user, index):
    """At most 20 characters (AD's limit for sAMAccountName): initial, surname, the user's number."""
    letters = re.sub(r"[^a-z]", "", ((user["givenName"] or "x")[0] + (user["surname"] or "user")).lower())
    return letters[:13] + f"{index:06d}"


def _make_hybrid(tenant, seed, cloud_only_users, onprem_missing):
    """Profile ``hybrid``: the seed example synced from on-premises AD (docs/tenant-format.md section 3).

    Every user is synced except ``cloud_only_users`` cloud-only users (not in "All users": they cannot join a
    synced group); "All users" and "Contractors" are synced groups; ``onprem_missing`` synced users hold E3
    directly but are not yet in the AD group. Both sets are drawn from the users the seed example leaves
    ordinary, with their own generator, so the seed's users, exceptions and ids are unchanged.
    """
    rng = random.Random(f"hybrid-{seed}")
    domain_sid = f"S-1-5-21-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}"
    all_users = _seed_group(tenant, SEED_GROUP_NAME)
    contractors = _seed_group(tenant, "Contractors")
    users = tenant["users"]
    ordinary = [
        index
        for index, user in enumerate(users)
        if user["id"] in all_users["members"]
        and user["usageLocation"] is not None
        and user["directLicenses"]
        and user["directLicenses"][0]["disabledPlans"] == sorted(_standard_plan_ids(tenant))
    ]
    picked = rng.sample(ordinary, min(len(ordinary), cloud_only_users + onprem_missing))
    cloud_only = {users[i]["id"] for i in picked[:cloud_only_users]}
    missing = {users[i]["id"] for i in picked[cloud_only_users:]}
    for index, user in enumerate(users):
        if user["id"] not in cloud_only:
            user.update(_onprem(f"{domain_sid}-{1100 + index}", _sam_account_name(user, index)))
    for rid, (group, sam) in enumerate(((all_users, "AllUsers"), (contractors, "Contractors")), start=5100):
        group.update(_onprem(f"{domain_sid}-{rid}", sam))
        group["description"] = (group["description"] or "") + " (synced from on-premises AD)"
    all_users["members"] = [m for m in all_users["members"] if m not in cloud_only and m not in missing]


def _standard_plan_ids(tenant):
    plans = tenant["subscribedSkus"][0]["servicePlans"]
    return [p["servicePlanId"] for p in plans if p["servicePlanName"] in STANDARD_DISABLED_PLANS]
