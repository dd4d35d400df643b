"""Graph-shaped reads of the directory: user, group and member dicts, listings, subscribedSkus, licenseDetails.

``DirectoryViews`` is a part of ``Directory`` (engine.py): its methods read the directory's records and its
effective licensing (``_sources``, ``_effective``); they build a dict only when it is read, one at a time in
listings (a page of 999 builds 999, not the whole tenant).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import threading
import time
import uuid
from typing import Iterator

from .records import ACTIVE_STATES, COMPLETE, _locked
from .strict import UNKNOWN_PROCESSING_STATE
from .tenant import EXTENSION_ATTRIBUTES, ONPREM_KEYS

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
# Properties _user_dict takes from a _User slot (the rest: extras, licensing, constants).
_USER_VIEW_ATTRIBUTES = {
    "id": "id",
    "userPrincipalName": "upn",
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "mail": "mail",
    "mailNickname": "mail_nickname",
    "accountEnabled": "account_enabled",
    "usageLocation": "usage_location",
    "jobTitle": "job_title",
    "department": "department",
    "createdDateTime": "created",
}


# What a user without a value shows (Graph: every user has a userType; the 15 extension attributes are one object).
USER_PROPERTY_DEFAULTS = {"userType": "Member"}


def empty_extension_attributes():
    return dict.fromkeys(EXTENSION_ATTRIBUTES)


def rule_status_dict(group):
    """membershipRuleProcessingStatus (beta) of a dynamic group, None for another group."""
    if not group.dynamic:
        return None
    return {"status": group.rule_status, "lastMembershipUpdated": group.rule_updated, "errorMessage": None}


class ReadLag:
    """Eventual consistency (strict knob ``read_lag_ms``): a read does not see writes younger than the lag.

    Before a write changes a user's license sources (direct copies, group entries) or a group's licenses,
    the engine calls ``_remember_*``; a read within the lag is built from a copy of the record holding the
    state before the oldest write it may not see yet. Writes and the engine's own checks always use the
    current state (Graph's writes are not lagged; its replicas are). Memberships are not lagged.
    """

    _serving = threading.local()

    @contextlib.contextmanager
    def serving(self):
        """Reads in this block answer a Graph request: they are lagged (in-process reads, as tests make, are not)."""
        self._serving.request = True
        try:
            yield
        finally:
            self._serving.request = False

    def _lag_cutoff(self):
        lag = self.strict.read_lag_ms if self.strict is not None else 0.0
        return time.monotonic() - lag / 1000.0 if lag else None

    def _read_cutoff(self):
        return self._lag_cutoff() if getattr(self._serving, "request", False) else None

    def _remember(self, kind, record, state):
        if self._lag_cutoff() is not None:
            self._lagging.setdefault((kind, record.id), []).append((time.monotonic(), state))

    def _remember_user(self, user):
        self._remember("user", user, {"direct": user.direct, "gstates": dict(user.gstates) if user.gstates else None})

    def _remember_group(self, group):
        self._remember("group", group, {"licenses": group.licenses, "processing_state": group.processing_state})

    def _visible(self, kind, record):
        """``record`` as a read within the lag sees it (the record itself when nothing is hidden)."""
        cutoff = self._read_cutoff()
        if cutoff is None or not self._lagging:
            return record
        history = self._lagging.get((kind, record.id))
        if not history:
            return record
        while history and history[0][0] <= cutoff:
            history.pop(0)
        if not history:
            del self._lagging[(kind, record.id)]
            return record
        stale = copy.copy(record)
        for name, value in history[0][1].items():
            setattr(stale, name, value)
        return stale


class DirectoryViews(ReadLag):
    """The read side of ``Directory``: every public method takes the directory's lock."""

    def _assigned_licenses(self, user):
        """One entry per effectively assigned SKU; disabledPlans = plans disabled in EVERY active source."""
        disabled_by_sku = {}
        for sku_id, disabled in self._sources(user):
            previous = disabled_by_sku.get(sku_id)
            disabled_by_sku[sku_id] = set(disabled) if previous is None else previous & set(disabled)
        return [{"disabledPlans": sorted(d), "skuId": s} for s, d in disabled_by_sku.items()]

    def _assignment_states(self, user):
        states = [
            {"assignedByGroup": None, "disabledPlans": list(d), "error": "None", "lastUpdatedDateTime": updated, "skuId": s, "state": "Active"}
            for s, (d, updated) in (user.direct or {}).items()
        ]
        for gid, entry in (user.gstates or {}).items():
            states.extend(
                {"assignedByGroup": gid, "disabledPlans": list(d), "error": entry.error, "lastUpdatedDateTime": entry.updated, "skuId": s, "state": entry.state}
                for s, d in entry.licenses.items()
            )
        return states

    def _assigned_plans(self, user):
        since = {}
        if user.direct:
            for sku_id, (_, updated) in user.direct.items():
                since[sku_id] = min(since.get(sku_id, updated), updated)
        for entry in (user.gstates or {}).values():
            if entry.state in ACTIVE_STATES:
                for sku_id in entry.licenses:
                    since[sku_id] = min(since.get(sku_id, entry.updated), entry.updated)
        plans = []
        for sku_id, enabled in self._effective(user).items():
            assigned = since[sku_id]
            plans.extend(
                {"assignedDateTime": assigned, "capabilityStatus": "Enabled", "service": service, "servicePlanId": plan_id}
                for plan_id, service in self._skus[sku_id].plan_services(enabled)
            )
        return plans

    def _user_dict(self, user, select=None) -> dict:
        data = {
            "id": user.id,
            "userPrincipalName": user.upn,
            "displayName": user.display_name,
            "givenName": user.given_name,
            "surname": user.surname,
            "mail": user.mail,
            "mailNickname": user.mail_nickname,
            "accountEnabled": user.account_enabled,
            "usageLocation": user.usage_location,
            "jobTitle": user.job_title,
            "department": user.department,
            "createdDateTime": user.created,
            "businessPhones": [],
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "userType": "Member",
            "onPremisesExtensionAttributes": empty_extension_attributes(),
            **dict.fromkeys(ONPREM_KEYS),
        }
        if user.extra:
            data.update(json.loads(json.dumps(user.extra)))
        wanted = None if select is None else set(select)
        if wanted is None or "assignedLicenses" in wanted:
            data["assignedLicenses"] = self._assigned_licenses(user)
        if wanted is None or "licenseAssignmentStates" in wanted:
            data["licenseAssignmentStates"] = self._assignment_states(user)
        if wanted is None or "assignedPlans" in wanted:
            data["assignedPlans"] = self._assigned_plans(user)
        return data

    def _group_dict(self, group) -> dict:
        return {
            "id": group.id,
            "displayName": group.display_name,
            "description": group.description,
            "mailEnabled": group.mail_enabled,
            "mailNickname": group.mail_nickname,
            "mail": None,
            "securityEnabled": group.security_enabled,
            "groupTypes": list(group.group_types),
            "assignedLicenses": [{"disabledPlans": list(d), "skuId": s} for s, d in group.licenses.items()],
            "licenseProcessingState": None if group.processing_state is None else {"state": self._shown_processing_state(group.processing_state)},
            "createdDateTime": group.created,
            "membershipRule": group.membership_rule,
            "membershipRuleProcessingState": group.rule_state,
            "membershipRuleProcessingStatus": rule_status_dict(group),
            "hasMembersWithLicenseErrors": bool(group.error_users),
            "onPremisesNetBiosName": None,
            **{key: (group.onprem or {}).get(key) for key in ONPREM_KEYS},
        }

    def _shown_processing_state(self, state):
        if self.strict is not None and self.strict.unknown_processing_states and state != COMPLETE:
            return UNKNOWN_PROCESSING_STATE
        return state

    def _user_view(self, user, names) -> dict:
        """``{name: value}`` for ``names`` with the values _user_dict(user, names) holds (None where it has
        no such key), built without the other properties: a listing with $select needs a handful."""
        extra = user.extra
        view = {}
        for name in names:
            if extra and name in extra:
                view[name] = json.loads(json.dumps(extra[name]))
            elif name in _USER_VIEW_ATTRIBUTES:
                view[name] = getattr(user, _USER_VIEW_ATTRIBUTES[name])
            elif name == "assignedLicenses":
                view[name] = self._assigned_licenses(user)
            elif name == "licenseAssignmentStates":
                view[name] = self._assignment_states(user)
            elif name == "assignedPlans":
                view[name] = self._assigned_plans(user)
            elif name == "businessPhones":
                view[name] = []
            elif name == "onPremisesExtensionAttributes":
                view[name] = empty_extension_attributes()
            elif name in USER_PROPERTY_DEFAULTS:
                view[name] = USER_PROPERTY_DEFAULTS[name]
            else:
                view[name] = None  # mobilePhone, officeLocation, preferredLanguage, or not a property _user_dict has
        return view

    def iter_user_views(self, start: int, names) -> Iterator[tuple[int, dict]]:
        """iter_users with _user_view(user, names) instead of the whole dict."""
        return self._iter_built_users(start, lambda user: self._user_view(self._visible("user", user), names))

    def iter_users(self, start: int = 0, select=None) -> Iterator[tuple[int, dict]]:
        """(position, user dict) in creation order from ``start``; dicts are built one at a time."""
        return self._iter_built_users(start, lambda user: self._user_dict(self._visible("user", user), select))

    def _iter_built_users(self, start: int, build) -> Iterator[tuple[int, dict]]:
        """(position, build(user)) in creation order from ``start``, each built under the lock, one at a time."""
        position = max(0, start)
        while True:
            with self.lock:
                while position < len(self._user_order) and self._user_order[position] is None:
                    position += 1
                if position >= len(self._user_order):
                    return
                item = (position, build(self._user_order[position]))
            yield item
            position += 1

    @_locked
    def user_count(self) -> int:
        return self._user_count

    @_locked
    def get_user(self, key: str, select=None) -> dict:
        return self._user_dict(self._visible("user", self._user(key)), select)

    def iter_groups(self, start: int = 0) -> Iterator[tuple[int, dict]]:
        position = max(0, start)
        while True:
            with self.lock:
                while position < len(self._group_order) and self._group_order[position] is None:
                    position += 1
                if position >= len(self._group_order):
                    return
                item = (position, self._group_dict(self._visible("group", self._group_order[position])))
            yield item
            position += 1

    @_locked
    def group_count(self) -> int:
        return len(self._groups)

    @_locked
    def get_group(self, group_id: str) -> dict:
        return self._group_dict(self._visible("group", self._group(group_id)))

    def _member_dict(self, member_id, kind, select=None):
        if kind == "user":
            data = self._user_dict(self._visible("user", self._users[member_id]), select)
            data["@odata.type"] = USER_TYPE
        else:
            data = self._group_dict(self._groups[member_id])
            data["@odata.type"] = GROUP_TYPE
        return data

    @_locked
    def member_dict(self, member_id, kind, select=None) -> dict:
        """One entry of list_members & co. from its ``(id, kind)`` reference."""
        return self._member_dict(member_id, kind, select)

    @_locked
    def member_refs(self, group_id) -> list[tuple[str, str]]:
        """``(id, "user" | "group")`` of the direct members, in list_members order (no dict built)."""
        return list(self._group(group_id).members.items())

    @_locked
    def list_members(self, group_id, select=None) -> list[dict]:
        return [self._member_dict(mid, kind, select) for mid, kind in self.member_refs(group_id)]

    @_locked
    def transitive_member_refs(self, group_id) -> list[tuple[str, str]]:
        group = self._group(group_id)
        seen, result, stack = {group.id}, [], [group]
        while stack:
            current = stack.pop(0)
            for mid, kind in current.members.items():
                if mid in seen:
                    continue
                seen.add(mid)
                result.append((mid, kind))
                if kind == "group":
                    stack.append(self._groups[mid])
        return result

    @_locked
    def list_transitive_members(self, group_id, select=None) -> list[dict]:
        return [self._member_dict(mid, kind, select) for mid, kind in self.transitive_member_refs(group_id)]

    @_locked
    def member_of(self, user_key) -> list[dict]:
        user = self._user(user_key)
        groups = sorted((self._groups[g] for g in user.groups or ()), key=lambda g: g.seq)
        return [dict(self._group_dict(g), **{"@odata.type": GROUP_TYPE}) for g in groups]

    @_locked
    def transitive_member_of(self, user_key) -> list[dict]:
        """Groups the user belongs to directly or through nested groups: direct ones first, then their parents."""
        user = self._user(user_key)
        level = sorted((self._groups[g] for g in user.groups or ()), key=lambda g: g.seq)
        seen, ordered = {g.id for g in level}, []
        while level:
            ordered.extend(level)
            parents = {p for g in level for p in g.parents if p not in seen}
            seen.update(parents)
            level = sorted((self._groups[p] for p in parents), key=lambda g: g.seq)
        return [dict(self._group_dict(g), **{"@odata.type": GROUP_TYPE}) for g in ordered]

    @_locked
    def license_error_member_refs(self, group_id) -> list[tuple[str, str]]:
        group = self._group(group_id)
        return [(u.id, "user") for u in sorted((self._users[u] for u in group.error_users), key=lambda u: u.seq)]

    @_locked
    def members_with_license_errors(self, group_id, select=None) -> list[dict]:
        return [self._member_dict(mid, kind, select) for mid, kind in self.license_error_member_refs(group_id)]

    @_locked
    def subscribed_skus(self) -> list[dict]:
        return [
            {
                "accountId": self.tenant_id,
                "accountName": sku.account_name or self.tenant_display_name,
                "appliesTo": sku.applies_to,
                "capabilityStatus": sku.capability_status,
                "consumedUnits": sku.consumed,
                "id": f"{self.tenant_id}_{sku.sku_id}",
                "prepaidUnits": dict(sku.prepaid),
                "servicePlans": [dict(p) for p in sku.plans],
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "subscriptionIds": list(sku.subscription_ids),
            }
            for sku in self._skus.values()
        ]

    @_locked
    def license_details(self, user_key) -> list[dict]:
        user = self._user(user_key)
        details = []
        for sku_id, enabled in self._effective(user).items():
            sku = self._skus[sku_id]
            raw_id = uuid.UUID(user.id).bytes_le + uuid.UUID(sku_id).bytes_le
            details.append(
                {
                    "id": base64.urlsafe_b64encode(raw_id).decode().rstrip("="),
                    "skuId": sku_id,
                    "skuPartNumber": sku.part_number,
                    "servicePlans": [
                        {
                            "servicePlanId": p["servicePlanId"],
                            "servicePlanName": p["servicePlanName"],
                            "provisioningStatus": ("Success" if p["servicePlanId"] in enabled or p["appliesTo"] != "User" else "Disabled"),
                            "appliesTo": p["appliesTo"],
                        }
                        for p in sku.plans
                    ],
                }
            )
        return details
