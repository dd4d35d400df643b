# -*- coding: utf-8 -*-

# Copyright (c) 2025, entraops.licensing contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure licensing model for the direct-to-group license migration.

Nothing here talks HTTP or imports Ansible: plain dicts (Graph JSON shapes) go in, plain,
JSON-serialisable dicts come out. Modules glue Graph reads to these functions.

Identities: every SKU, plan, group and user id is normalised once (lower-case canonical GUID)
by guid.py's ``normalize_guid`` (raising LicensingInputError) when it enters this module; comparisons below only ever see the
normalised form.

The safety rule (DESIGN section 1), per user and SKU::

    P(sku)      = service plans of the SKU with appliesTo == "User"
    enabled(D)  = P(sku) - direct.disabledPlans
    G           = inherited entries of that SKU that are healthy (see classify())
    enabled(G)  = union over G of (P(sku) - disabled(g))
    removable  <=> G non-empty and enabled(D) <= enabled(G)

``allow_service_loss`` relaxes only the subset condition, never "G non-empty".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.guid import is_guid, normalize_guid


# --------------------------------------------------------------------------------------------
# Verdicts (stable strings: reports, plans, journals and return values use them verbatim)
# --------------------------------------------------------------------------------------------

SAFE_TO_REMOVE = "safe_to_remove"
DIRECT_ONLY = "direct_only"
INHERITED_ONLY = "inherited_only"
INHERITED_IN_ERROR = "inherited_in_error"
INHERITED_FROM_UNTRUSTED_GROUP = "inherited_from_untrusted_group"
NOT_DIRECT_MEMBER = "not_direct_member"
GROUP_PROCESSING = "group_processing"
PLANS_WOULD_BE_LOST = "plans_would_be_lost"
USER_NOT_FOUND = "user_not_found"
SKU_NOT_SUBSCRIBED = "sku_not_subscribed"

VERDICTS = (
    SAFE_TO_REMOVE,
    DIRECT_ONLY,
    INHERITED_ONLY,
    INHERITED_IN_ERROR,
    INHERITED_FROM_UNTRUSTED_GROUP,
    NOT_DIRECT_MEMBER,
    GROUP_PROCESSING,
    PLANS_WOULD_BE_LOST,
    USER_NOT_FOUND,
    SKU_NOT_SUBSCRIBED,
)

# One line per verdict for reports and documentation (DESIGN section 1 table).
VERDICT_MEANINGS = {
    SAFE_TO_REMOVE: "the rule holds: healthy inheritance enables every plan the direct assignment enables",
    DIRECT_ONLY: "no inherited copy of this SKU covers the user",
    INHERITED_ONLY: "nothing direct to remove (already migrated)",
    INHERITED_IN_ERROR: "an inherited copy is in Error/ActiveWithError/Disabled or has an error code",
    INHERITED_FROM_UNTRUSTED_GROUP: "inherited only from groups outside the run's trusted list",
    NOT_DIRECT_MEMBER: "the user gets the group only transitively (nested); Entra does not license them",
    GROUP_PROCESSING: "a group that would cover the user is not ProcessingComplete",
    PLANS_WOULD_BE_LOST: "removing the direct assignment would lose plans no healthy inherited copy enables",
    USER_NOT_FOUND: "the input names a user that does not exist",
    SKU_NOT_SUBSCRIBED: "the input names a SKU the tenant does not subscribe to",
}

# When no healthy inheritance covers the direct plans, every blocked source of the SKU gets one
# of these reasons, and the record's verdict is the first one present in this order. Concrete
# faults the operator must fix come first (an error on the user), then things that resolve by
# waiting (processing), then scope decisions (trust), then membership shape. A reason never
# outranks a fault that is also present, so a "wait" verdict never hides an error.
BLOCKING_PRECEDENCE = (
    INHERITED_IN_ERROR,
    GROUP_PROCESSING,
    INHERITED_FROM_UNTRUSTED_GROUP,
    NOT_DIRECT_MEMBER,
)

PROCESSING_COMPLETE = "ProcessingComplete"

RECORD_FIELDS = (
    "user_id",
    "user_principal_name",
    "sku_id",
    "sku_part_number",
    "verdict",
    "direct",
    "direct_disabled_plans",
    "inherited_from",
    "healthy_inherited_from",
    "plans_lost",
    "errors",
    "reason",
    "blocking_groups",
    "direct_enabled_plan_names",
    "inherited_enabled_plan_names",
    "usage_location",
)

# What a plan row keeps of a record (DESIGN section 4, plus the reason for the change record). The
# per-plan name lists stay in the report: a plan holds every safe row in memory while it is sorted,
# and those lists were the largest item on the heap (tracemalloc, license_assignment_info at 10,000 users).
PLAN_ROW_FIELDS = (
    "user_id",
    "user_principal_name",
    "sku_id",
    "sku_part_number",
    "verdict",
    "direct",
    "direct_disabled_plans",
    "inherited_from",
    "healthy_inherited_from",
    "plans_lost",
    "errors",
    "reason",
)


class LicensingInputError(ValueError):
    """Bad input: the message names the bad value and what was expected."""


class SkuNotSubscribedError(LicensingInputError):
    """A SKU (GUID or part number) that the tenant does not subscribe to.

    Kept distinct from other input errors so callers can turn it into a ``sku_not_subscribed``
    record instead of failing. ``sku`` holds the value as given.
    """

    def __init__(self, message, sku):
        super(SkuNotSubscribedError, self).__init__(message)
        self.sku = sku


# --------------------------------------------------------------------------------------------
# GUIDs
# --------------------------------------------------------------------------------------------

# Canonical forms of the GUID strings seen so far: SKU, plan and group ids repeat on every user, and
# the pattern match costs ~30 times a lookup. Bounded (it starts over when full); a value that is not
# a GUID is never kept, so it raises every time.
_GUID_MEMO = {}
_GUID_MEMO_LIMIT = 16384


def _memo_guid(value, what):
    """normalize_guid(value, what, error=LicensingInputError), remembered for string values."""
    if not isinstance(value, str):
        return normalize_guid(value, what, error=LicensingInputError)
    guid = _GUID_MEMO.get(value)
    if guid is None:
        guid = normalize_guid(value, what, error=LicensingInputError)
        if len(_GUID_MEMO) >= _GUID_MEMO_LIMIT:
            _GUID_MEMO.clear()
        _GUID_MEMO[value] = guid
    return guid


def _guid_set(values, what):
    if values is None:
        return frozenset()
    if isinstance(values, (str, bytes, dict)):
        raise LicensingInputError("{0!r} is not a valid list of {1}s: expected a list of GUIDs".format(values, what))
    return frozenset(_memo_guid(value, what) for value in values)


def _require_list(values, what):
    """Refuse a bare string where a list is expected (it would iterate character by character)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise LicensingInputError("{0!r} is not a valid {1}: expected a list".format(values, what))
    return list(values)


# --------------------------------------------------------------------------------------------
# SKU catalog
# --------------------------------------------------------------------------------------------

# Distinct (SKU, plan set) pairs whose sorted names SkuCatalog keeps; past this the cache starts over.
_SORTED_NAMES_LIMIT = 4096


def sorted_plan_names(names):
    """Plan names in the collection's one order: case-insensitive, ties by the exact name."""
    return sorted(names, key=lambda name: (name.casefold(), name))


class SkuCatalog:
    """The tenant's subscribed SKUs and their service plans, read from ``GET /subscribedSkus``.

    P(sku) is taken from the tenant at run time, never hard-coded: Microsoft adds plans to
    products over time and enables them in every group by default (reference 15).
    """

    def __init__(self, skus_by_id):
        # skus_by_id: {sku_id: {'sku_id', 'sku_part_number', 'plans': {plan_id: (name, applies_to)},
        #              'enabled', 'consumed', 'capability_status', 'raw'}}
        self._skus = skus_by_id
        self._by_part_number = dict((sku["sku_part_number"].casefold(), sku_id) for sku_id, sku in skus_by_id.items())
        # plan_names of plan sets: users share a handful of enabled sets, each sorted once
        self._sorted_names = {}

    @classmethod
    def from_subscribed_skus(cls, skus):
        """Build a catalog from the ``value`` list of ``GET /subscribedSkus`` (or that whole response)."""
        if isinstance(skus, dict) and "value" in skus:
            skus = skus["value"]
        skus_by_id = {}
        seen_part_numbers = {}
        for sku in _require_list(skus, "subscribedSkus list"):
            if not isinstance(sku, dict):
                raise LicensingInputError("{0!r} is not a valid subscribedSku: expected an object".format(sku))
            sku_id = normalize_guid(sku.get("skuId"), "SKU id", error=LicensingInputError)
            part_number = sku.get("skuPartNumber") or sku_id
            if sku_id in skus_by_id:
                raise LicensingInputError("SKU id {0} appears twice in subscribedSkus: expected each SKU once".format(sku_id))
            if part_number.casefold() in seen_part_numbers:
                raise LicensingInputError(
                    "skuPartNumber {0!r} appears twice in subscribedSkus ({1} and {2}): a part number must name one SKU".format(
                        part_number, seen_part_numbers[part_number.casefold()], sku_id
                    )
                )
            seen_part_numbers[part_number.casefold()] = sku_id
            plans = {}
            for plan in sku.get("servicePlans") or []:
                plan_id = normalize_guid(plan.get("servicePlanId"), "service plan id", error=LicensingInputError)
                plans[plan_id] = (plan.get("servicePlanName") or plan_id, plan.get("appliesTo"))
            prepaid = sku.get("prepaidUnits") or {}
            skus_by_id[sku_id] = {
                "sku_id": sku_id,
                "sku_part_number": part_number,
                "plans": plans,
                "enabled": int(prepaid.get("enabled") or 0),
                "consumed": int(sku.get("consumedUnits") or 0),
                "capability_status": sku.get("capabilityStatus"),
                "applies_to": sku.get("appliesTo"),
                "user_plan_ids": frozenset(plan_id for plan_id, (dummy, applies_to) in plans.items() if applies_to == "User"),
            }
        return cls(skus_by_id)

    def __contains__(self, sku_id):
        return sku_id in self._skus

    def sku_ids(self):
        """All subscribed SKU ids, sorted by part number (stable for reports)."""
        return sorted(self._skus, key=lambda sku_id: (self._skus[sku_id]["sku_part_number"].casefold(), sku_id))

    def part_numbers(self):
        """All subscribed part numbers, sorted case-insensitively."""
        return sorted((sku["sku_part_number"] for sku in self._skus.values()), key=str.casefold)

    def _not_subscribed(self, value):
        return SkuNotSubscribedError(
            "{0!r} is not a subscribed SKU: expected a SKU id or skuPartNumber of this tenant ({1})".format(
                value, ", ".join(self.part_numbers()) or "the tenant subscribes to no SKU"
            ),
            value,
        )

    def resolve_sku(self, value):
        """Return the SKU id for a SKU GUID or a ``skuPartNumber`` (case-insensitive).

        Raises SkuNotSubscribedError for a well-formed GUID or a part number the tenant does
        not subscribe to (its message lists the subscribed part numbers), LicensingInputError
        for anything that is not a string.
        """
        if not isinstance(value, str) or not value.strip():
            raise LicensingInputError("{0!r} is not a valid SKU: expected a SKU id (GUID) or skuPartNumber".format(value))
        if is_guid(value):
            sku_id = normalize_guid(value, "SKU id", error=LicensingInputError)
            if sku_id in self._skus:
                return sku_id
            raise self._not_subscribed(value)
        sku_id = self._by_part_number.get(value.strip().casefold())
        if sku_id is None:
            raise self._not_subscribed(value)
        return sku_id

    def get(self, sku_id):
        """The catalog entry for a (normalised) SKU id: dict with sku_id, sku_part_number,
        plans {plan_id: (name, appliesTo)}, enabled, consumed, capability_status, applies_to."""
        try:
            return self._skus[sku_id]
        except KeyError:
            raise self._not_subscribed(sku_id)

    def part_number(self, sku_id):
        """``skuPartNumber`` of a subscribed SKU id."""
        return self.get(sku_id)["sku_part_number"]

    def label(self, sku_id):
        """Part number when subscribed, else the GUID itself (for messages and report keys)."""
        sku = self._skus.get(sku_id)
        return sku["sku_part_number"] if sku else sku_id

    def user_plan_ids(self, sku_id):
        """P(sku): ids of the SKU's service plans that apply to users (``appliesTo == "User"``).

        Company-level plans are excluded: they are tenant features, not something a user holds
        or loses with a license.
        """
        return self.get(sku_id)["user_plan_ids"]

    def resolve_plans(self, sku_id, values):
        """Resolve plan GUIDs or ``servicePlanName``s (case-insensitive) of one SKU to plan ids.

        Any plan of the SKU is accepted (user or company level). Unknown values raise
        LicensingInputError naming the value and the SKU and listing the valid plan names.
        """
        plans = self.get(sku_id)["plans"]
        ids_by_name = dict((name.casefold(), plan_id) for plan_id, (name, dummy) in plans.items())
        resolved = set()
        for value in _require_list(values, "list of service plans"):
            plan_id = None
            if is_guid(value):
                plan_id = normalize_guid(value, "service plan id", error=LicensingInputError)
                if plan_id not in plans:
                    plan_id = None
            elif isinstance(value, str):
                plan_id = ids_by_name.get(value.strip().casefold())
            if plan_id is None:
                raise LicensingInputError(
                    "{0!r} is not a service plan of SKU {1}: expected a servicePlanId or servicePlanName of it ({2})".format(
                        value, self.part_number(sku_id), ", ".join(sorted((name for name, dummy in plans.values()), key=str.casefold))
                    )
                )
            resolved.add(plan_id)
        return frozenset(resolved)

    def plan_names(self, sku_id, plan_ids):
        """Sorted (case-insensitive) names of plan ids; ids the SKU does not know appear as the GUID."""
        if not isinstance(plan_ids, (set, frozenset)):
            return self._plan_names(sku_id, plan_ids)
        key = (sku_id, plan_ids if isinstance(plan_ids, frozenset) else frozenset(plan_ids))
        names = self._sorted_names.get(key)
        if names is None:
            if len(self._sorted_names) >= _SORTED_NAMES_LIMIT:
                self._sorted_names.clear()
            names = self._sorted_names[key] = tuple(self._plan_names(sku_id, plan_ids))
        return list(names)

    def _plan_names(self, sku_id, plan_ids):
        plans = self._skus[sku_id]["plans"] if sku_id in self._skus else {}
        names = [plans[plan_id][0] if plan_id in plans else plan_id for plan_id in plan_ids]
        return sorted_plan_names(names)

    def enabled_plans(self, sku_id, disabled_plans):
        """P(sku) minus ``disabled_plans`` (plan ids)."""
        return self.user_plan_ids(sku_id) - _guid_set(disabled_plans, "service plan id")

    def disabled_from_enabled(self, sku_id, enabled_plans):
        """The ``disabledPlans`` that leave exactly ``enabled_plans`` enabled: P(sku) - enabled."""
        return self.user_plan_ids(sku_id) - _guid_set(enabled_plans, "service plan id")

    def units(self, sku_id):
        """Seats: ``{'enabled': prepaid enabled, 'consumed': consumedUnits, 'available': free}``.

        ``available`` is never negative (a tenant can be over-consumed after a renewal shrinks);
        warning/suspended units are not counted as assignable.
        """
        sku = self.get(sku_id)
        return {"enabled": sku["enabled"], "consumed": sku["consumed"], "available": max(sku["enabled"] - sku["consumed"], 0)}


def _enabled(catalog, sku_id, disabled_plans):
    # For plan sets this module normalised itself: skips re-validating every GUID on hot paths.
    return catalog.user_plan_ids(sku_id) - disabled_plans


# --------------------------------------------------------------------------------------------
# Assignment views over a Graph user (licenseAssignmentStates)
# --------------------------------------------------------------------------------------------


def is_healthy_entry(entry):
    """True if a licenseAssignmentState is in effect without error.

    ``state`` must be ``Active``; ``error`` must be null or ``"None"``: the Graph docs say null,
    Microsoft's own examples and scripts emit and test the string ``"None"``. Both comparisons
    ignore case and surrounding blanks; anything else (``ActiveWithError``, ``Disabled``,
    ``Error``, an error code, an empty string) is unhealthy.
    """
    state = entry.get("state")
    error = entry.get("error")
    if not isinstance(state, str) or state.strip().casefold() != "active":
        return False
    return error is None or (isinstance(error, str) and error.strip().casefold() == "none")


def entry_error_code(entry):
    """The entry's error code, or None when it has none (null or "None")."""
    error = entry.get("error")
    if error is None or (isinstance(error, str) and error.strip().casefold() == "none"):
        return None
    return str(error)


def user_assignment_states(user):
    """The user's licenseAssignmentStates with skuId / assignedByGroup / disabledPlans normalised.

    Returns a list of dicts: ``sku_id``, ``group_id`` (None for a direct entry),
    ``disabled_plans`` (frozenset), ``state``, ``error``. Raises LicensingInputError when the
    property is absent: it is returned only with ``$select``, and silently treating a user read
    without it as unlicensed would hide every assignment.
    """
    if not isinstance(user, dict):
        raise LicensingInputError("{0!r} is not a valid user: expected a Graph user object".format(user))
    if "licenseAssignmentStates" not in user:
        raise LicensingInputError(
            "user {0!r} has no 'licenseAssignmentStates': expected it read with $select=licenseAssignmentStates".format(
                user.get("userPrincipalName") or user.get("id")
            )
        )
    entries = []
    for raw in _require_list(user.get("licenseAssignmentStates"), "licenseAssignmentStates"):
        group = raw.get("assignedByGroup")
        entries.append(
            {
                "sku_id": _memo_guid(raw.get("skuId"), "SKU id"),
                "group_id": None if group is None else _memo_guid(group, "group id"),
                "disabled_plans": _guid_set(raw.get("disabledPlans"), "service plan id"),
                "state": raw.get("state"),
                "error": raw.get("error"),
            }
        )
    return entries


def user_sku_ids(user):
    """SKU ids the user holds in any way (direct or inherited, healthy or not), as a frozenset."""
    return frozenset(entry["sku_id"] for entry in user_assignment_states(user))


def direct_entry(user, sku_id, entries=None):
    """The direct entry (``assignedByGroup`` null) of ``sku_id``, or None.

    Graph gives at most one. Should it ever give several, they are merged into the one that
    enables the most (intersection of disabled plans) so the rule compares against everything
    the direct side could be giving the user.
    """
    entries = user_assignment_states(user) if entries is None else entries
    directs = [entry for entry in entries if entry["sku_id"] == sku_id and entry["group_id"] is None]
    if not directs:
        return None
    merged = dict(directs[0])
    for entry in directs[1:]:
        merged["disabled_plans"] = merged["disabled_plans"] & entry["disabled_plans"]
        if is_healthy_entry(merged) and not is_healthy_entry(entry):
            merged["state"], merged["error"] = entry["state"], entry["error"]
    return merged


def inherited_entries(user, sku_id, entries=None):
    """The inherited entries (``assignedByGroup`` set) of ``sku_id``, sorted by group id."""
    entries = user_assignment_states(user) if entries is None else entries
    return sorted((entry for entry in entries if entry["sku_id"] == sku_id and entry["group_id"] is not None), key=lambda entry: entry["group_id"])


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


def assigned_licenses_map(assigned_licenses):
    """Graph ``assignedLicenses`` list -> ``{sku_id: frozenset(disabled_plans)}``.

    A mapping already in that shape is normalised and returned as well.
    """
    if isinstance(assigned_licenses, dict):
        return dict(
            (normalize_guid(sku_id, "SKU id", error=LicensingInputError), _guid_set(disabled, "service plan id"))
            for sku_id, disabled in assigned_licenses.items()
        )
    result = {}
    for license_ in _require_list(assigned_licenses, "assignedLicenses"):
        result[normalize_guid(license_.get("skuId"), "SKU id", error=LicensingInputError)] = _guid_set(license_.get("disabledPlans"), "service plan id")
    return result


class GroupFacts:
    """What the rule needs to know about one group.

    ``group_id`` (normalised), ``display_name``, ``assigned_licenses``
    ``{sku_id: frozenset(disabled_plans)}``, ``processing_state`` (the string inside
    ``licenseProcessingState``, or None) and ``security_enabled`` (bool or None when not read).
    """

    __slots__ = ("group_id", "display_name", "assigned_licenses", "processing_state", "security_enabled")

    def __init__(self, group_id, display_name=None, assigned_licenses=None, processing_state=None, security_enabled=None):
        self.group_id = normalize_guid(group_id, "group id", error=LicensingInputError)
        self.display_name = display_name
        self.assigned_licenses = assigned_licenses_map(assigned_licenses or {})
        self.processing_state = processing_state
        self.security_enabled = security_enabled

    @classmethod
    def from_graph(cls, group):
        """From a Graph group read with ``$select=id,displayName,assignedLicenses,licenseProcessingState,securityEnabled``.

        ``licenseProcessingState`` is an object ``{"state": ...}`` on the wire (CSDL); a bare
        string (as the docs table describes it) is accepted too; null stays None.
        """
        if not isinstance(group, dict):
            raise LicensingInputError("{0!r} is not a valid group: expected a Graph group object".format(group))
        processing = group.get("licenseProcessingState")
        if isinstance(processing, dict):
            processing = processing.get("state")
        return cls(
            group.get("id"),
            display_name=group.get("displayName"),
            assigned_licenses=group.get("assignedLicenses") or [],
            processing_state=processing,
            security_enabled=group.get("securityEnabled"),
        )

    def carries(self, sku_id):
        """True if the group currently assigns ``sku_id``."""
        return sku_id in self.assigned_licenses

    def is_processing_done(self):
        """ProcessingComplete, or null (Graph does not guarantee the property is set)."""
        return self.processing_state is None or self.processing_state == PROCESSING_COMPLETE

    def label(self):
        """``'Display name' (id)`` for messages."""
        if self.display_name:
            return "'{0}' ({1})".format(self.display_name, self.group_id)
        return self.group_id

    def __repr__(self):
        return "GroupFacts({0!r}, {1!r}, {2!r}, {3!r}, {4!r})".format(
            self.group_id, self.display_name, self.assigned_licenses, self.processing_state, self.security_enabled
        )


def index_groups(groups):
    """``{group_id: GroupFacts}`` from a mapping or list of GroupFacts and/or Graph group dicts."""
    if groups is None:
        return {}
    values = groups.values() if isinstance(groups, dict) else _require_list(groups, "list of groups")
    index = {}
    for group in values:
        facts = group if isinstance(group, GroupFacts) else GroupFacts.from_graph(group)
        index[facts.group_id] = facts
    return index


# --------------------------------------------------------------------------------------------
# The safety rule
# --------------------------------------------------------------------------------------------


def _blocked_reason(entry, group, sku_id, direct_member_of, trusted_groups):
    """Why an inherited entry cannot count as coverage, or None when it is healthy.

    Returns ``(verdict_reason, text, error)``. Checks run from "out of scope" to "transient":
    trust first (an untrusted group's state is not this run's business), then direct
    membership (Entra licenses direct members only; an entry from a group the user left is on
    its way out), then the entry's own error, then the group still carrying the SKU, then the
    group's processing state.
    """
    group_label = group.label() if group is not None else entry["group_id"]
    if trusted_groups is not None and entry["group_id"] not in trusted_groups:
        return INHERITED_FROM_UNTRUSTED_GROUP, "group {0} is not a trusted group".format(group_label), None
    if entry["group_id"] not in direct_member_of:
        return NOT_DIRECT_MEMBER, "user is no longer a direct member of group {0}".format(group_label), None
    if not is_healthy_entry(entry):
        error = entry_error_code(entry) or (str(entry.get("state")) if entry.get("state") else "UnknownState")
        return (
            INHERITED_IN_ERROR,
            "inherited copy from group {0} is in state {1} with error {2}".format(group_label, entry.get("state"), entry_error_code(entry) or "None"),
            error,
        )
    # A group that was not read (deleted, or outside what the caller fetched) cannot be shown to
    # still carry the SKU; a group that dropped the SKU leaves a stale entry that Entra will
    # remove when it processes the group. Both resolve by processing, not by the operator.
    if group is None:
        return GROUP_PROCESSING, "group {0} was not read (deleted?); its entry cannot be verified".format(group_label), None
    if not group.carries(sku_id):
        return GROUP_PROCESSING, "group {0} no longer assigns this SKU; its entry is stale".format(group_label), None
    if not group.is_processing_done():
        return GROUP_PROCESSING, "group {0} is {1}".format(group_label, group.processing_state), None
    return None


def _membership_blocks(sku_id, groups, entry_group_ids, direct_member_of, transitive_member_of, trusted_groups):
    """Groups that carry the SKU, include the user, and gave no entry yet.

    They explain a missing inherited copy: a direct member of a still-processing group is
    waiting (group_processing); a member only through nesting never gets one (not_direct_member).
    Untrusted groups are left out: they would not count even when they deliver, and naming them
    would suggest the user is inherited from somewhere.
    Returns a list of ``(group, verdict_reason, text)``.
    """
    blocks = []
    for group_id in sorted((direct_member_of | transitive_member_of) - entry_group_ids):
        group = groups.get(group_id)
        if group is None or not group.carries(sku_id):
            continue
        if trusted_groups is not None and group_id not in trusted_groups:
            continue
        if group_id not in direct_member_of:
            blocks.append(
                (
                    group,
                    NOT_DIRECT_MEMBER,
                    "user is a member of group {0} only through a nested group; Entra licenses direct members only".format(group.label()),
                )
            )
        elif group.security_enabled is not False and group.processing_state != PROCESSING_COMPLETE:
            # null counts as "still processing" here: with no entry on the user, nothing shows the
            # group has reached them, unlike an existing entry for which null is acceptable.
            blocks.append(
                (
                    group,
                    GROUP_PROCESSING,
                    "group {0} is {1} and has not licensed the user yet".format(group.label(), group.processing_state or "not reporting a processing state"),
                )
            )
    return blocks


def _record(user, sku_id, catalog):
    sku_known = sku_id in catalog
    return {
        "user_id": _user_id(user),
        "user_principal_name": user.get("userPrincipalName") if isinstance(user, dict) else None,
        "sku_id": sku_id,
        "sku_part_number": catalog.part_number(sku_id) if sku_known else None,
        "verdict": None,
        "direct": False,
        "direct_disabled_plans": [],
        "inherited_from": [],
        "healthy_inherited_from": [],
        "plans_lost": [],
        "errors": [],
        "reason": "",
        "blocking_groups": [],
        "direct_enabled_plan_names": [],
        "inherited_enabled_plan_names": [],
        # None when the user has none: group licensing then uses the tenant's country, a direct assignment cannot.
        "usage_location": (user.get("usageLocation") or None) if isinstance(user, dict) else None,
    }


def _user_id(user):
    if not isinstance(user, dict) or user.get("id") is None:
        return None
    return normalize_guid(user.get("id"), "user id", error=LicensingInputError)


# Normalised forms of group-id frozensets: assignments.MembershipIndex hands out one shared frozenset per
# combination of groups, so the same few sets come back for every user. Bounded like _GUID_MEMO.
_MEMBERSHIP_MEMO = {}


def _membership_set(values, what):
    if not isinstance(values, frozenset):
        return _guid_set(_require_list(values, what), what.rstrip("s"))
    normalised = _MEMBERSHIP_MEMO.get(values)
    if normalised is None:
        normalised = _guid_set(_require_list(values, what), what.rstrip("s"))
        if len(_MEMBERSHIP_MEMO) >= _GUID_MEMO_LIMIT:
            _MEMBERSHIP_MEMO.clear()
        _MEMBERSHIP_MEMO[values] = normalised
    return normalised


def classify(user, sku_id, catalog, groups, direct_member_of, transitive_member_of=(), trusted_groups=None, allow_service_loss=False):
    """Apply the safety rule to one user and one SKU; return a record dict, or None.

    Arguments:
      user: Graph user dict with ``id``, ``userPrincipalName`` and ``licenseAssignmentStates``.
      sku_id: SKU GUID (normalised here).
      catalog: SkuCatalog of the tenant.
      groups: facts of the groups involved (see index_groups()). Give at least every group
        referenced by the user's inherited entries and every licensed group the user belongs to;
        a group missing here can never make a removal safe, only less well explained.
      direct_member_of: ids of groups the user is a DIRECT member of (``/users/{id}/memberOf``).
      transitive_member_of: ids of groups the user belongs to transitively (may include the
        direct ones); only used to explain ``not_direct_member``.
      trusted_groups: None (every group counts) or the ids of the only groups that may count.
      allow_service_loss: relax the subset condition only (plans_lost is still reported).

    Returns None when the user holds ``sku_id`` in no way (nothing to classify). Otherwise a
    dict with the DESIGN section 4 fields:
      user_id, user_principal_name, sku_id, sku_part_number, verdict, direct (bool),
      direct_disabled_plans (sorted GUIDs: exactly what a restore must put back),
      inherited_from (sorted group ids of all inherited entries of the SKU),
      healthy_inherited_from (sorted group ids forming G), plans_lost (sorted names of
      enabled(D) - enabled(G); empty when there is no direct entry), errors (sorted error codes
      of the user's inherited entries that are in error; an entry in a bad state without a
      code contributes its state, e.g. ``Disabled``),
    plus these extras:
      reason (one sentence explaining the verdict), blocking_groups (sorted ids of the groups
      whose state decided a blocking verdict), direct_enabled_plan_names (enabled(D)),
      inherited_enabled_plan_names (enabled(G)).

    Healthy inheritance G: an entry of the SKU with ``assignedByGroup`` set, healthy
    (is_healthy_entry), from a group the user is a direct member of, that is trusted (when
    ``trusted_groups`` is given), whose facts are known, that still carries the SKU, and whose
    processing state is ProcessingComplete or null. For such an entry, the disabled plans are
    the UNION of the entry's disabledPlans and the group's current disabledPlans for the SKU:
    when a group's license options change, members are reprocessed later, so the entry can
    still show plans the group no longer gives; soon Entra will take them away, and counting
    them would let us remove a direct copy that is the only lasting source of those plans.

    Verdict when the rule does not hold: each blocked source (an unhealthy inherited entry, or a
    group carrying the SKU that the user belongs to without an entry) gets a reason; a source
    counts when G is empty or when it would supply a plan in plans_lost. The verdict is the
    first counted reason in BLOCKING_PRECEDENCE (inherited_in_error, group_processing,
    inherited_from_untrusted_group, not_direct_member); with none, plans_would_be_lost when G
    is non-empty, else direct_only. No direct entry -> inherited_only. SKU unknown to the
    catalog -> sku_not_subscribed.
    """
    sku_id = normalize_guid(sku_id, "SKU id", error=LicensingInputError)
    groups = index_groups(groups)
    direct_member_of, transitive_member_of, trusted_groups = _memberships(direct_member_of, transitive_member_of, trusted_groups)
    return _classify(user, user_assignment_states(user), sku_id, catalog, groups, direct_member_of, transitive_member_of, trusted_groups, allow_service_loss)


def _memberships(direct_member_of, transitive_member_of, trusted_groups):
    """The three group-id arguments of classify() as normalised frozensets (trusted_groups may stay None)."""
    direct_member_of = _membership_set(direct_member_of, "direct member-of group ids")
    transitive_member_of = _membership_set(transitive_member_of, "transitive member-of group ids")
    if trusted_groups is not None:
        trusted_groups = _membership_set(trusted_groups, "trusted group ids")
    return direct_member_of, transitive_member_of, trusted_groups


def _classify(user, entries, sku_id, catalog, groups, direct_member_of, transitive_member_of, trusted_groups, allow_service_loss):
    """classify() once its arguments are normalised: ``entries`` = user_assignment_states(user), ``sku_id``
    canonical, ``groups`` an index_groups() mapping, the memberships as _memberships() gives them."""
    direct = direct_entry(user, sku_id, entries)
    inherited = inherited_entries(user, sku_id, entries)
    if direct is None and not inherited:
        return None

    record = _record(user, sku_id, catalog)
    record["direct"] = direct is not None
    record["direct_disabled_plans"] = sorted(direct["disabled_plans"]) if direct is not None else []
    record["inherited_from"] = sorted(set(entry["group_id"] for entry in inherited))
    record["errors"] = sorted(set(entry_error_code(entry) or str(entry.get("state") or "UnknownState") for entry in inherited if not is_healthy_entry(entry)))
    if sku_id not in catalog:
        record["verdict"] = SKU_NOT_SUBSCRIBED
        record["reason"] = "SKU {0} is not subscribed in this tenant; its service plans are unknown".format(sku_id)
        return record

    # sources: (group, reason, text, prospective enabled plans)
    healthy_group_ids = set()
    inherited_enabled = set()
    blocked = []
    for entry in inherited:
        group = groups.get(entry["group_id"])
        group_disabled = group.assigned_licenses.get(sku_id, frozenset()) if group is not None else frozenset()
        entry_enabled = _enabled(catalog, sku_id, entry["disabled_plans"] | group_disabled)
        blocked_reason = _blocked_reason(entry, group, sku_id, direct_member_of, trusted_groups)
        if blocked_reason is None:
            healthy_group_ids.add(entry["group_id"])
            inherited_enabled |= entry_enabled
        else:
            blocked.append((entry["group_id"], blocked_reason[0], blocked_reason[1], entry_enabled))
    entry_group_ids = frozenset(entry["group_id"] for entry in inherited)
    for group, reason, text in _membership_blocks(sku_id, groups, entry_group_ids, direct_member_of, transitive_member_of, trusted_groups):
        blocked.append((group.group_id, reason, text, _enabled(catalog, sku_id, group.assigned_licenses[sku_id])))

    record["healthy_inherited_from"] = sorted(healthy_group_ids)
    record["inherited_enabled_plan_names"] = catalog.plan_names(sku_id, inherited_enabled)

    if direct is None:
        record["verdict"] = INHERITED_ONLY
        record["reason"] = "no direct assignment to remove: the SKU is only inherited (from {0})".format(", ".join(record["inherited_from"]))
        return record

    direct_enabled = _enabled(catalog, sku_id, direct["disabled_plans"])
    lost = direct_enabled - inherited_enabled
    record["direct_enabled_plan_names"] = catalog.plan_names(sku_id, direct_enabled)
    record["plans_lost"] = catalog.plan_names(sku_id, lost)

    if healthy_group_ids and (not lost or allow_service_loss):
        record["verdict"] = SAFE_TO_REMOVE
        if lost:
            record["reason"] = "healthy inheritance from {0}; allow_service_loss accepts losing {1}".format(
                ", ".join(record["healthy_inherited_from"]), ", ".join(record["plans_lost"])
            )
        else:
            record["reason"] = "every plan enabled directly is enabled by healthy inheritance from {0}".format(", ".join(record["healthy_inherited_from"]))
        return record

    # A blocked source explains the verdict only if fixing it could help: with G empty any source
    # could become G; otherwise only one that would supply a missing plan.
    counted = [source for source in blocked if not healthy_group_ids or source[3] & lost]
    for reason in BLOCKING_PRECEDENCE:
        matching = [source for source in counted if source[1] == reason]
        if matching:
            record["verdict"] = reason
            record["blocking_groups"] = sorted(set(source[0] for source in matching))
            record["reason"] = "; ".join(source[2] for source in matching)
            return record
    if healthy_group_ids:
        record["verdict"] = PLANS_WOULD_BE_LOST
        record["reason"] = "removing the direct assignment would lose {0}, which no healthy inherited copy enables".format(", ".join(record["plans_lost"]))
    else:
        record["verdict"] = DIRECT_ONLY
        record["reason"] = "no inherited copy of this SKU covers the user"
    return record


def classify_user(user, catalog, groups, direct_member_of, transitive_member_of=(), trusted_groups=None, sku_ids=None, allow_service_loss=False, entries=None):
    """Classify every SKU a user holds; a list of records (see classify()) sorted by part number.

    ``sku_ids`` (optional) limits the scope to those SKU ids: a SKU in scope that the user does
    not hold gives no record (there is nothing to migrate); a SKU in scope that the tenant does
    not subscribe to gives a ``sku_not_subscribed`` record. A SKU the user holds but the tenant
    no longer lists also gives ``sku_not_subscribed``.

    ``entries``: ``user_assignment_states(user)`` when the caller already has it (read once per user).
    """
    groups = index_groups(groups)
    entries = user_assignment_states(user) if entries is None else entries
    held = frozenset(entry["sku_id"] for entry in entries)
    if sku_ids is None:
        scope = held
    else:
        scope = frozenset(_memo_guid(sku_id, "SKU id") for sku_id in _require_list(sku_ids, "list of SKU ids"))
    records = []
    memberships = None  # normalised at the first SKU classified, where classify() would check them
    for sku_id in scope:
        if sku_id not in held:
            if sku_id not in catalog:
                record = _record(user, sku_id, catalog)
                record["verdict"] = SKU_NOT_SUBSCRIBED
                record["reason"] = "SKU {0} is not subscribed in this tenant".format(sku_id)
                records.append(record)
            continue
        if memberships is None:
            memberships = _memberships(direct_member_of, transitive_member_of, trusted_groups)
        records.append(_classify(user, entries, sku_id, catalog, groups, memberships[0], memberships[1], memberships[2], allow_service_loss))
    return sorted(records, key=lambda record: ((record["sku_part_number"] or "").casefold(), record["sku_id"]))


def user_not_found_record(key, sku_id=None, sku_part_number=None):
    """A ``user_not_found`` record for an input user key (object id or UPN) that Graph does not know.

    A GUID key fills ``user_id`` (normalised), anything else ``user_principal_name``.
    """
    record = {
        "user_id": None,
        "user_principal_name": None,
        "sku_id": None,
        "sku_part_number": sku_part_number,
        "verdict": USER_NOT_FOUND,
        "direct": False,
        "direct_disabled_plans": [],
        "inherited_from": [],
        "healthy_inherited_from": [],
        "plans_lost": [],
        "errors": [],
        "reason": "user {0!r} was not found".format(key),
        "blocking_groups": [],
        "direct_enabled_plan_names": [],
        "inherited_enabled_plan_names": [],
        "usage_location": None,
    }
    if is_guid(key):
        record["user_id"] = normalize_guid(key, "user id", error=LicensingInputError)
    else:
        record["user_principal_name"] = key
    if sku_id is not None:
        record["sku_id"] = normalize_guid(sku_id, "SKU id", error=LicensingInputError) if is_guid(sku_id) else sku_id
    return record


def summarize(records):
    """``{verdict: count}`` with every verdict present (0 when none), in VERDICTS order."""
    counts = dict((verdict, 0) for verdict in VERDICTS)
    for record in records:
        verdict = record.get("verdict")
        if verdict not in counts:
            raise LicensingInputError("{0!r} is not a known verdict: expected one of {1}".format(verdict, ", ".join(VERDICTS)))
        counts[verdict] += 1
    return counts


def _check_size(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LicensingInputError("{0!r} is not a valid {1}: expected an integer >= {2}".format(value, name, minimum))


def batch_sort_key(record):
    """Stable plan order: part number, then UPN case-folded, then user id, then SKU id.

    The UPN as written breaks the last tie, so the order is total and a plan never depends on the
    order Graph returned the users in (hypothesis found 'a' and 'A' with one user id swapping places).
    """
    upn = record.get("user_principal_name") or ""
    return ((record.get("sku_part_number") or ""), upn.casefold(), record.get("user_id") or "", record.get("sku_id") or "", upn)


def plan_row(record):
    """A new dict holding the PLAN_ROW_FIELDS of a record (and its ``batch`` when it has one)."""
    row = dict((field, record[field]) for field in PLAN_ROW_FIELDS if field in record)
    if "batch" in record:
        row["batch"] = record["batch"]
    return row


def assign_batches(records, canary_size=10, batch_size=500):
    """The ``safe_to_remove`` records as plan rows (plan_row copies) with a ``batch`` number.

    Rows are in batch_sort_key() order; the first ``canary_size`` rows are batch 0, then every
    ``batch_size`` rows form batches 1, 2, ... Same records in any order -> same rows and
    batches, so a plan written twice names the same batches for the change record.
    ``canary_size`` 0 means no canary (batch 0 is empty and the first batch is 1).
    """
    check_batch_sizes(canary_size, batch_size)
    rows = sorted((plan_row(record) for record in records if record.get("verdict") == SAFE_TO_REMOVE), key=batch_sort_key)
    for position, row in enumerate(rows):
        row["batch"] = batch_number(position, canary_size, batch_size)
    return rows


def check_batch_sizes(canary_size, batch_size):
    """Raise LicensingInputError unless ``canary_size`` >= 0 and ``batch_size`` >= 1 (whole numbers)."""
    _check_size(canary_size, "canary_size", 0)
    _check_size(batch_size, "batch_size", 1)


def batch_number(position, canary_size, batch_size):
    """The batch of the row at ``position`` (from 0) in batch_sort_key order: 0 for the canary, then 1, 2, ..."""
    return 0 if position < canary_size else 1 + (position - canary_size) // batch_size


# --------------------------------------------------------------------------------------------
# Effective plans and loss detection (after each write)
# --------------------------------------------------------------------------------------------


def effective_enabled_plans(user, catalog):
    """``{sku_id: frozenset(plan ids)}`` the user actually has: union over healthy entries.

    Direct and inherited entries count alike (the service gives the union of all sources).
    A SKU the catalog does not know maps to an empty set, so its disappearance still shows.
    """
    effective = {}
    for entry in user_assignment_states(user):
        if not is_healthy_entry(entry):
            continue
        enabled = _enabled(catalog, entry["sku_id"], entry["disabled_plans"]) if entry["sku_id"] in catalog else frozenset()
        effective[entry["sku_id"]] = effective.get(entry["sku_id"], frozenset()) | enabled
    return effective


def lost_plans(before, after):
    """``{sku_id: frozenset(plan ids)}`` of what ``before`` had and ``after`` lacks.

    A key is present for every SKU that lost anything, including a SKU that is gone entirely
    (its value then holds all its previous plans, possibly empty). Empty dict = nothing lost.
    """
    lost = {}
    for sku_id, enabled_before in before.items():
        if sku_id not in after:
            lost[sku_id] = frozenset(enabled_before)
            continue
        missing = frozenset(enabled_before) - frozenset(after[sku_id])
        if missing:
            lost[sku_id] = missing
    return lost


# --------------------------------------------------------------------------------------------
# Group side: desired licenses, changes, seat capacity
# --------------------------------------------------------------------------------------------


def resolve_license_specs(catalog, licenses):
    """``[{sku, disabled_plans | enabled_plans}]`` -> ``{sku_id: frozenset(disabled_plans)}``.

    ``sku`` is a GUID or part number; plans are GUIDs or names. ``disabled_plans`` and
    ``enabled_plans`` are mutually exclusive; with neither, every plan is enabled. Naming the
    same SKU twice is an error (which options would win is not obvious).
    """
    desired = {}
    for spec in _require_list(licenses, "licenses list"):
        if not isinstance(spec, dict) or spec.get("sku") is None:
            raise LicensingInputError("{0!r} is not a valid license: expected an object with 'sku'".format(spec))
        sku_id = catalog.resolve_sku(spec["sku"])
        if sku_id in desired:
            raise LicensingInputError("{0!r} names SKU {1} a second time: expected each SKU once".format(spec["sku"], catalog.part_number(sku_id)))
        has_disabled = spec.get("disabled_plans") is not None
        has_enabled = spec.get("enabled_plans") is not None
        if has_disabled and has_enabled:
            raise LicensingInputError("license {0!r} sets both disabled_plans and enabled_plans: expected at most one of them".format(spec["sku"]))
        if has_enabled:
            desired[sku_id] = catalog.disabled_from_enabled(sku_id, catalog.resolve_plans(sku_id, spec["enabled_plans"]))
        else:
            desired[sku_id] = catalog.resolve_plans(sku_id, spec.get("disabled_plans") or [])
    return desired


def _enabled_or_none(catalog, sku_id, disabled_plans):
    return catalog.enabled_plans(sku_id, disabled_plans) if sku_id in catalog else None


def group_license_changes(catalog, current_assigned, desired, state="present", exclusive=False):
    """What ``POST /groups/{id}/assignLicense`` must send to reach ``desired``.

    ``current_assigned``: the group's ``assignedLicenses`` (Graph list or ``{sku_id: disabled}``).
    ``desired``: from resolve_license_specs(). ``state='absent'`` removes the listed SKUs;
    ``exclusive=True`` (present only) also removes SKUs that are not listed.

    SKUs are compared by ENABLED user plans, not by disabledPlans lists: order, duplicates and
    company-level or retired plan ids in a disabled list change nothing for members.

    Returns ``{'add_licenses': [{'skuId', 'disabledPlans'}], 'remove_licenses': [sku_id],
    'changed': bool, 'before': {part_number: [enabled plan names]}, 'after': {...},
    'service_loss': {part_number: [plan names members would lose]}}``. A key in
    ``service_loss`` means members lose something: a removed SKU appears with all its enabled
    plans (even if that list is empty, the license itself goes), a kept SKU with the plans it
    stops enabling.
    """
    if state not in ("present", "absent"):
        raise LicensingInputError("{0!r} is not a valid state: expected 'present' or 'absent'".format(state))
    if exclusive and state != "present":
        raise LicensingInputError("exclusive={0!r} with state={1!r}: exclusive applies only to state 'present'".format(exclusive, state))
    current = assigned_licenses_map(current_assigned or {})
    desired = assigned_licenses_map(desired or {})

    add_licenses = []
    remove_ids = set()
    if state == "absent":
        remove_ids = set(sku_id for sku_id in desired if sku_id in current)
    else:
        for sku_id in sorted(desired, key=catalog.label):
            if sku_id not in current or _enabled_or_none(catalog, sku_id, current[sku_id]) != _enabled_or_none(catalog, sku_id, desired[sku_id]):
                add_licenses.append({"skuId": sku_id, "disabledPlans": sorted(desired[sku_id])})
        if exclusive:
            remove_ids = set(sku_id for sku_id in current if sku_id not in desired)

    after = dict(current)
    for license_ in add_licenses:
        after[license_["skuId"]] = frozenset(license_["disabledPlans"])
    for sku_id in remove_ids:
        after.pop(sku_id, None)

    def names(assigned):
        return dict(
            (catalog.label(sku_id), catalog.plan_names(sku_id, _enabled_or_none(catalog, sku_id, disabled) or ())) for sku_id, disabled in assigned.items()
        )

    service_loss = {}
    for sku_id, disabled in current.items():
        enabled_before = _enabled_or_none(catalog, sku_id, disabled) or frozenset()
        if sku_id not in after:
            service_loss[catalog.label(sku_id)] = catalog.plan_names(sku_id, enabled_before)
            continue
        stopped = enabled_before - (_enabled_or_none(catalog, sku_id, after[sku_id]) or frozenset())
        if stopped:
            service_loss[catalog.label(sku_id)] = catalog.plan_names(sku_id, stopped)
    return {
        "add_licenses": add_licenses,
        "remove_licenses": sorted(remove_ids, key=lambda sku_id: (catalog.label(sku_id), sku_id)),
        "changed": bool(add_licenses or remove_ids),
        "before": names(current),
        "after": names(after),
        "service_loss": service_loss,
    }


def unit_shortfall(catalog, sku_ids, new_consumers):
    """``{sku_id: missing units}`` for the SKUs whose free units cannot cover new consumers.

    ``new_consumers``: ``{sku_id: number of group members who do not hold the SKU yet}``
    (members who already hold it, directly or from another group, consume no extra unit).
    Only SKUs with a shortfall appear; an empty dict means every SKU fits.
    """
    shortfall = {}
    for sku_id in sku_ids:
        needed = int(new_consumers.get(sku_id, 0))
        missing = needed - catalog.units(sku_id)["available"]
        if missing > 0:
            shortfall[sku_id] = missing
    return shortfall


def format_shortfall(catalog, shortfall, new_consumers=None):
    """One message for a unit_shortfall() result, explaining the all-or-nothing consequence."""
    parts = []
    for sku_id in sorted(shortfall, key=lambda sku_id: (catalog.label(sku_id), sku_id)):
        units = catalog.units(sku_id)
        detail = "{0} needs {1} more unit(s) ({2} available".format(catalog.label(sku_id), shortfall[sku_id], units["available"])
        if new_consumers is not None:
            detail += ", {0} member(s) do not hold it yet".format(int(new_consumers.get(sku_id, 0)))
        parts.append(detail + ")")
    return (
        "not enough free license units: {0}. Entra applies a group's licenses all-or-nothing per user: a member who hits "
        "CountViolation on one SKU gets none of the group's SKUs".format("; ".join(parts))
    )
