# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""tenant_snapshot's logic: a real tenant's licensing shape in the Graph emulator's tenant format, pseudonymised.

The pure part (``Pseudonymizer``, ``user_document``, ``group_document``, ``snapshot_units``, ``known_rules``)
works on plain Graph dicts and is tested without HTTP. ``take_snapshot`` reads through GraphClient (bulk
``$select``, pages of 999, ``$batch`` for the first page of each group's members) and writes the users to the
file as they arrive: memory holds the groups' member ids, one page of users and the set of exported user ids,
never the users themselves. The document format is emulator/docs/tenant-format.md section 1.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import json
import os
import re
import tempfile
import uuid

from ansible_collections.entraops.licensing.plugins.module_utils.guid import is_guid

PAGE_SIZE = 999
# The attributes the snapshot reads for each user: licensing, and what dynamic membership rules test.
USER_SELECT = (
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "accountEnabled",
    "usageLocation",
    "createdDateTime",
    "assignedLicenses",
    "licenseAssignmentStates",
    "department",
    "country",
    "userType",
    "jobTitle",
    "companyName",
    "city",
    "employeeId",
    "onPremisesExtensionAttributes",
    "onPremisesSyncEnabled",
    "onPremisesSecurityIdentifier",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
)
GROUP_SELECT = (
    "id",
    "displayName",
    "description",
    "securityEnabled",
    "mailEnabled",
    "mailNickname",
    "groupTypes",
    "createdDateTime",
    "assignedLicenses",
    "licenseProcessingState",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
)
# User attributes a dynamic rule may test that say something about a person (a title, a city, an extension
# attribute): with pseudonymisation they are copied only when a membership rule in the snapshot names them.
RULE_ONLY_USER_ATTRIBUTES = ("department", "jobTitle", "companyName", "city", "onPremisesExtensionAttributes")
# Always copied: they decide licensing or group kind and identify nobody.
PLAIN_USER_ATTRIBUTES = ("accountEnabled", "usageLocation", "createdDateTime", "country", "userType", "onPremisesSyncEnabled", "onPremisesLastSyncDateTime")
GROUP_STATES = ("QueuedForProcessing", "ProcessingInProgress", "ProcessingComplete")
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# The dependencies the licensing reference names (entra-licensing.md section 3); Graph exposes none of them.
KNOWN_DEPENDENCIES = (
    ("WORKPLACE_ANALYTICS", ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE")),
    ("MCOMEETADV", ("MCOSTANDARD",)),
)
COMPANY_PLAN = "Company"
MISSING_MEMBERS_BY_BATCH = 2000  # more users to fetch than this: one filtered pass over /users instead of $batch reads


class SnapshotInputError(ValueError):
    """Options that cannot make a snapshot (no key, unknown group or SKU); raised before anything is written."""


# ------------------------------------------------------------------------------------- pseudonyms


def load_key(key, key_path):
    """The pseudonym key as bytes from ``key`` or the file at ``key_path``; SnapshotInputError when there is none."""
    if key:
        value = key
    elif key_path:
        try:
            with open(key_path, "rb") as handle:
                value = handle.read().strip()
        except (IOError, OSError) as exc:
            raise SnapshotInputError("pseudonym_key_path %r cannot be read (%s): expected a file holding the operator's key" % (key_path, exc.strerror))
    else:
        raise SnapshotInputError(
            "pseudonymize is true and no key is given: set pseudonym_key or pseudonym_key_path (a secret the operator keeps, "
            "at least 16 characters), or pseudonymize=false to copy names as they are"
        )
    if not isinstance(value, bytes):
        value = value.encode("utf-8")
    if len(value) < 16:
        raise SnapshotInputError("the pseudonym key holds %d characters: expected at least 16" % len(value))
    return value


class Pseudonymizer:
    """Stable pseudonyms from HMAC-SHA256 with the operator's key; the identity when ``key`` is None.

    A pseudonym depends on the key, its kind and the original value only, so two snapshots taken with one key
    agree, and the operator who holds the key can recompute it. ``sink(pseudonym, original)``, when given, is
    told every pseudonym once (the mapping file).
    """

    def __init__(self, key=None, remap_ids=False, sink=None, domain=None):
        self.key = key
        self.remap_ids = bool(remap_ids) and key is not None
        self.sink = sink
        self._domain = domain
        self._recorded = set()  # pseudonyms of values met many times (domains) already given to the sink

    @property
    def enabled(self):
        return self.key is not None

    def digest(self, kind, value):
        return hmac.new(self.key, ("%s\0%s" % (kind, value)).encode("utf-8"), hashlib.sha256).hexdigest()

    def _remember(self, pseudonym, original, repeated=False):
        if self.sink is None or pseudonym == original:
            return pseudonym
        if repeated:
            if pseudonym in self._recorded:
                return pseudonym
            self._recorded.add(pseudonym)
        self.sink(pseudonym, original)
        return pseudonym

    def token(self, kind, value):
        """16 hex digits naming ``value`` (compared without regard to case) among values of ``kind``."""
        return self.digest(kind, value.lower())[:16]

    def domain(self, name):
        """The tenant's domain in the snapshot: a pseudonymous onmicrosoft.com name."""
        if not self.enabled or not name:
            return name
        return self._remember("t%s.onmicrosoft.com" % self.digest("domain", name.lower())[:10], name, repeated=True)

    def set_domain(self, domain):
        self._domain = domain

    def object_id(self, value):
        """The id in the snapshot: the same, or a GUID derived from the key (consistent for users, groups and references)."""
        if not value or not self.remap_ids:
            return value
        derived = str(uuid.UUID(hex=self.digest("id", value.lower())[:32], version=4))
        return self._remember(derived, value.lower(), repeated=True)

    def user_names(self, user):
        """{property: pseudonym} for the naming properties of a Graph user that hold a value."""
        upn = user.get("userPrincipalName") or user.get("id")
        token = self.token("user", upn)
        names = {"userPrincipalName": self._remember("u%s@%s" % (token, self._domain), upn)}
        values = {
            "displayName": "User %s" % token,
            "givenName": "Given %s" % token[:8],
            "surname": "Surname %s" % token[8:],
            "mail": "m%s@%s" % (token, self._domain),
            "mailNickname": "u%s" % token,
            "onPremisesSamAccountName": "u%s" % token[:15],
        }
        for prop, pseudonym in values.items():
            if user.get(prop):
                names[prop] = self._remember(pseudonym, user[prop])
        if user.get("employeeId"):
            names["employeeId"] = self._remember("e%s" % self.token("employeeId", user["employeeId"]), user["employeeId"])
        return names

    def group_names(self, group):
        token = self.token("group", group.get("id") or "")
        names = {"displayName": self._remember("Group %s" % token, group.get("displayName")), "mailNickname": "g%s" % token}
        if group.get("onPremisesSamAccountName"):
            names["onPremisesSamAccountName"] = self._remember("g%s" % token[:15], group["onPremisesSamAccountName"])
        return names

    def sid(self, value):
        """An on-premises SID with the domain part replaced (the relative id kept): one domain maps to one domain."""
        if not self.enabled or not value:
            return value
        parts = value.split("-")
        if len(parts) < 5:
            return self._remember("S-1-5-21-%d" % int(self.digest("sid", value)[:8], 16), value)
        domain = "-".join(parts[:-1])
        digest = self.digest("sid-domain", domain.upper())
        numbers = [str(int(digest[offset : offset + 8], 16)) for offset in (0, 8, 16)]
        return self._remember("S-1-5-21-%s-%s" % ("-".join(numbers), parts[-1]), value)

    def on_premises_domain(self, value):
        if not self.enabled or not value:
            return value
        return self._remember("d%s.corp.example" % self.digest("domain", value.lower())[:10], value, repeated=True)


# ------------------------------------------------------------------------------- document records


def _licenses(entries):
    return [
        {"skuId": (entry.get("skuId") or "").lower(), "disabledPlans": sorted((plan or "").lower() for plan in entry.get("disabledPlans") or [])}
        for entry in entries or []
        if entry.get("skuId")
    ]


def split_assignment_states(user, group_ids):
    """``(directLicenses, groupLicenses)`` of a Graph user from its licenseAssignmentStates.

    Direct entries are those without ``assignedByGroup``; a group's entries are gathered per group with their
    state and error as Graph reports them. Entries from groups outside ``group_ids`` (not in the snapshot) are
    dropped. A user whose licenseAssignmentStates is empty but who holds licenses (a service that does not return
    the states) is taken as holding them directly.
    """
    states = user.get("licenseAssignmentStates")
    if not states:
        return _licenses(user.get("assignedLicenses")), []
    direct, by_group, order = [], {}, []
    for state in states:
        sku_id = (state.get("skuId") or "").lower()
        if not sku_id:
            continue
        license_ = {"skuId": sku_id, "disabledPlans": sorted((plan or "").lower() for plan in state.get("disabledPlans") or [])}
        group_id = (state.get("assignedByGroup") or "").lower()
        if not group_id:
            if all(existing["skuId"] != sku_id for existing in direct):
                direct.append(license_)
            continue
        if group_id not in group_ids:
            continue
        entry = by_group.get(group_id)
        if entry is None:
            entry = by_group[group_id] = {
                "groupId": group_id,
                "state": state.get("state") or "Active",
                "error": state.get("error") or "None",
                "lastUpdatedDateTime": state.get("lastUpdatedDateTime"),
                "licenses": [],
            }
            order.append(group_id)
        if all(existing["skuId"] != sku_id for existing in entry["licenses"]):
            entry["licenses"].append(license_)
    return direct, [by_group[group_id] for group_id in order]


def rule_attributes(rules):
    """The user attributes (of RULE_ONLY_USER_ATTRIBUTES) that the membership rules name, e.g. ``user.department``."""
    text = " ".join(rule for rule in rules if rule).lower()
    wanted = set()
    for attribute in RULE_ONLY_USER_ATTRIBUTES:
        if attribute == "onPremisesExtensionAttributes":
            if re.search(r"user\.(onpremisesextensionattributes|extensionattribute\d+)", text):
                wanted.add(attribute)
        elif re.search(r"user\.%s\b" % attribute.lower(), text):
            wanted.add(attribute)
    return wanted


# Properties pseudonymisation replaces: a membership rule that tests one of them selects other users in the copy.
PSEUDONYMISED_USER_ATTRIBUTES = (
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "employeeId",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesDomainName",
)


def rules_testing_pseudonyms(groups):
    """``[(group display name, attribute)]`` for each membership rule that tests a property pseudonymisation replaces."""
    found = []
    for group in groups:
        rule = (group.get("membershipRule") or "").lower()
        for attribute in PSEUDONYMISED_USER_ATTRIBUTES:
            if re.search(r"user\.%s\b" % attribute.lower(), rule):
                found.append((group.get("displayName"), attribute))
    return found


def user_document(user, pseudonyms, group_ids, kept_attributes):
    """The tenant-format record of a Graph user (null values left out; the emulator's defaults apply)."""
    direct, from_groups = split_assignment_states(user, group_ids)
    doc = {"id": pseudonyms.object_id((user.get("id") or "").lower())}
    if pseudonyms.enabled:
        doc.update(pseudonyms.user_names(user))
        doc["onPremisesSecurityIdentifier"] = pseudonyms.sid(user.get("onPremisesSecurityIdentifier"))
        doc["onPremisesDomainName"] = pseudonyms.on_premises_domain(user.get("onPremisesDomainName"))
        copied = PLAIN_USER_ATTRIBUTES + tuple(sorted(kept_attributes))
    else:
        copied = tuple(name for name in USER_SELECT if name not in ("id", "assignedLicenses", "licenseAssignmentStates"))
    for name in copied:
        if name not in doc:
            doc[name] = user.get(name)
    for name in [name for name, value in doc.items() if value is None or value == {} or value == []]:
        del doc[name]
    if doc.get("onPremisesSyncEnabled") is not True:
        # Graph says false for an object synced once and cloud-only since: the tenant format has true or nothing.
        doc.pop("onPremisesSyncEnabled", None)
    if isinstance(doc.get("onPremisesExtensionAttributes"), dict):
        attributes = dict((key, value) for key, value in doc["onPremisesExtensionAttributes"].items() if value is not None)
        if attributes:
            doc["onPremisesExtensionAttributes"] = attributes
        else:
            del doc["onPremisesExtensionAttributes"]
    doc["directLicenses"] = direct
    for entry in from_groups:
        entry["groupId"] = pseudonyms.object_id(entry["groupId"])
        if entry["lastUpdatedDateTime"] is None:
            del entry["lastUpdatedDateTime"]
    doc["groupLicenses"] = from_groups
    return doc


def group_document(group, members, pseudonyms, keep_name=False):
    """The tenant-format record of a Graph group with its member ids (already in the snapshot's ids)."""
    state = group.get("licenseProcessingState")
    if isinstance(state, dict):
        state = state.get("state")
    doc = {
        "id": pseudonyms.object_id((group.get("id") or "").lower()),
        "displayName": group.get("displayName") or group.get("id"),
        "securityEnabled": bool(group.get("securityEnabled")),
        "mailEnabled": bool(group.get("mailEnabled")),
        "groupTypes": list(group.get("groupTypes") or []),
        "members": members,
        "assignedLicenses": _licenses(group.get("assignedLicenses")),
    }
    for name in (
        "description",
        "mailNickname",
        "createdDateTime",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesLastSyncDateTime",
    ):
        if group.get(name) is not None:
            doc[name] = group[name]
    if group.get("onPremisesSyncEnabled") is True:
        doc["onPremisesSyncEnabled"] = True
    for name in ("onPremisesSecurityIdentifier", "onPremisesSamAccountName", "onPremisesDomainName"):
        if group.get(name):
            doc[name] = group[name]
    if state in GROUP_STATES:
        doc["licenseProcessingState"] = state
    if pseudonyms.enabled:
        names = pseudonyms.group_names(group)
        if keep_name:
            names.pop("displayName")
        doc.update(names)
        doc.pop("description", None)
        if "onPremisesSecurityIdentifier" in doc:
            doc["onPremisesSecurityIdentifier"] = pseudonyms.sid(doc["onPremisesSecurityIdentifier"])
        if "onPremisesDomainName" in doc:
            doc["onPremisesDomainName"] = pseudonyms.on_premises_domain(doc["onPremisesDomainName"])
    return doc


def sku_document(sku, exported_consumers):
    """The tenant-format record of a subscribedSku. Units are reduced by the units consumed by users the snapshot
    leaves out, so the free units are the tenant's: a rehearsal cannot assign more than the tenant could."""
    units = sku.get("prepaidUnits") or {}
    enabled = int(units.get("enabled") or 0)
    consumed = int(sku.get("consumedUnits") or 0)
    left_out = max(0, consumed - exported_consumers)
    return {
        "skuId": (sku.get("skuId") or "").lower(),
        "skuPartNumber": sku.get("skuPartNumber") or sku.get("skuId"),
        "prepaidUnits": {
            "enabled": max(0, enabled - left_out),
            "suspended": int(units.get("suspended") or 0),
            "warning": int(units.get("warning") or 0),
            "lockedOut": int(units.get("lockedOut") or 0),
        },
        "capabilityStatus": sku.get("capabilityStatus") or "Enabled",
        "appliesTo": sku.get("appliesTo") or "User",
        "servicePlans": [
            {
                "servicePlanId": (plan.get("servicePlanId") or "").lower(),
                "servicePlanName": plan.get("servicePlanName"),
                "provisioningStatus": plan.get("provisioningStatus") or "Success",
                "appliesTo": plan.get("appliesTo") or "User",
            }
            for plan in sku.get("servicePlans") or []
        ],
    }


def known_rules(skus):
    """The licensing rules Graph does not expose, as far as the reference documents them (plan dependencies)."""
    plan_ids, by_part = {}, {}
    for sku in skus:
        by_part[sku.get("skuPartNumber")] = sku
        for plan in sku.get("servicePlans") or []:
            plan_ids.setdefault(plan.get("servicePlanName"), (plan.get("servicePlanId") or "").lower())
    dependencies = {}
    for part_number, prerequisites in KNOWN_DEPENDENCIES:
        required = sorted(plan_ids[name] for name in prerequisites if name in plan_ids)
        if part_number not in by_part or not required:
            continue
        for plan in by_part[part_number].get("servicePlans") or []:
            if plan.get("appliesTo") != COMPANY_PLAN:
                dependencies[(plan.get("servicePlanId") or "").lower()] = required
    return {"mutuallyExclusivePlans": [], "planDependencies": dependencies, "prohibitedUsageLocations": {}}


def holds_licensing(user, sku_ids):
    """True when the user holds (or is in error for) one of ``sku_ids`` (None: any SKU)."""
    held = set((entry.get("skuId") or "").lower() for entry in user.get("assignedLicenses") or [])
    held.update((entry.get("skuId") or "").lower() for entry in user.get("licenseAssignmentStates") or [])
    held.discard("")
    if sku_ids is None:
        return bool(held)
    return bool(held & sku_ids)


# ------------------------------------------------------------------------------------ file output


class PrivateJsonWriter:
    """A JSON file written piece by piece to a temporary file with mode 0600, moved into place on ``commit``."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise SnapshotInputError("%r is not in an existing directory: expected a path whose folder exists" % path)
        handle, self.temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(self.path), dir=directory)
        os.fchmod(handle, 0o600)
        self.handle = os.fdopen(handle, "w")
        self.size = 0

    def write(self, text):
        self.handle.write(text)
        self.size += len(text)

    def commit(self):
        self.handle.close()
        os.chmod(self.temporary, 0o600)
        os.replace(self.temporary, self.path)

    def abort(self):
        if not self.handle.closed:
            self.handle.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)


class NullWriter:
    """Check mode: the document is built and counted, nothing is written."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.size = 0

    def write(self, text):
        self.size += len(text)

    def commit(self):
        pass

    def abort(self):
        pass


def dumps(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def is_object_id(value):
    return is_guid(value)
