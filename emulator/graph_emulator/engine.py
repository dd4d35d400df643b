"""In-memory Microsoft Entra directory and licensing engine (pure Python, no HTTP).

Facts followed: the Graph reference graph-api.md (sections 1-3, 8) and the licensing reference entra-licensing.md (1-6, 10-12, 18).
Records are compact ``__slots__`` objects; Graph-shaped dicts are built only when read. Every public method
takes ``self.lock``. Decisions where Microsoft documents nothing are listed in docs/tenant-format.md.

``Directory`` is made of: this file (loading and export, lookups, effective licensing and the license rules,
writes), views.py (the Graph-shaped reads), processing.py (group licensing in the background), audit.py (audit
events and the loss ledger) and records.py (the records, GraphError, RequestContext).
"""

from __future__ import annotations

import gc
import json
import threading
import time
import uuid

from .audit import AuditTrail, group_target, license_text, user_target
from .dynamic import DynamicMembership, dynamic_context
from .onprem import DEFAULT_SYNC_INTERVAL_S, OnPremisesSync
from .processing import GroupLicensingProcessing, ProcessingQueue
from .records import (
    ACTIVE_STATES,
    COMPLETE,
    CONTROL_CONTEXT,
    _LOAD_CONTEXT,
    GraphError,
    RequestContext,
    _bad_request,
    _Group,
    _GroupEntry,
    _locked,
    _not_found,
    _now_iso,
    _Sku,
    _User,
)
from .rules import RuleSyntaxError, parse_rule
from .tenant import ISO_COUNTRY_CODES, ONPREM_KEYS, USER_EXTRA_KEYS, TenantFormatError, is_guid, validate_app, validate_extension_attributes, validate_tenant
from .views import DirectoryViews

_USER_LICENSING_PROPS = frozenset({"assignedLicenses", "licenseAssignmentStates", "assignedPlans"})
_USER_READ_ONLY = frozenset(
    {"id", "createdDateTime", "assignedLicenses", "licenseAssignmentStates", "assignedPlans", "provisionedPlans", "licenseDetails", "memberOf"}
)
_USER_SLOT_PROPS = {
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "mail": "mail",
    "mailNickname": "mail_nickname",
    "jobTitle": "job_title",
    "department": "department",
}
# Other writable user properties kept as opaque extras (returned as set).
_USER_EXTRA_PROPS = frozenset(
    {
        "officeLocation",
        "mobilePhone",
        "businessPhones",
        "preferredLanguage",
        "city",
        "country",
        "companyName",
        "employeeId",
        "state",
        "streetAddress",
        "postalCode",
        "otherMails",
        "userType",
    }
)
_GROUP_READ_ONLY = frozenset(
    {
        "id",
        "createdDateTime",
        "assignedLicenses",
        "licenseProcessingState",
        "hasMembersWithLicenseErrors",
        "membersWithLicenseErrors",
        "membershipRuleProcessingStatus",
    }
    | set(ONPREM_KEYS)
)
_GROUP_WRITABLE = frozenset(
    {
        "displayName",
        "description",
        "mailNickname",
        "securityEnabled",
        "mailEnabled",
        "groupTypes",
        "membershipRule",
        "membershipRuleProcessingState",
        "visibility",
    }
)
# Graph's answer to a write of what Entra Connect masters (a synced group's properties or members, a synced user's AD attributes).
ONPREM_MASTERED = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
# A synced user's properties that stay writable in the cloud (usageLocation is not an AD attribute Entra Connect syncs).
_SYNCED_USER_CLOUD_PROPS = frozenset({"usageLocation", "passwordProfile"})
# Member writes on a dynamic group: Microsoft's support article (SupportArticles-docs, authorization-requestdenied-403-error-add-user-group.md,
# ms.date 2025-04-21) answers them 403 Authorization_RequestDenied "Insufficient privileges to complete the operation."
# ("You cannot use Microsoft Graph to manage Dynamic group ... membership").
DYNAMIC_MEMBERS_REFUSED = GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
# GraphError, RequestContext and CONTROL_CONTEXT live in records.py; importing them from here keeps working.
__all__ = ["CONTROL_CONTEXT", "Directory", "GraphError", "RequestContext"]
DEFAULT_DYNAMIC_RATE = 2000.0  # users a dynamic rule is evaluated for per emulated second


def _user_synced(user) -> bool:
    return bool(user.extra and user.extra.get("onPremisesSyncEnabled"))


class Directory(DirectoryViews, GroupLicensingProcessing, DynamicMembership, OnPremisesSync):
    """The emulated directory: users, groups, subscribed SKUs, licensing, audit and the loss ledger."""

    def __init__(
        self,
        tenant: dict | None = None,
        *,
        processing_rate: float = 1000.0,
        time_scale: float = 1.0,
        clock=time.monotonic,
        dynamic_rate: float = DEFAULT_DYNAMIC_RATE,
        sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S,
    ):
        self.lock = threading.RLock()
        self.strict = None  # the Emulator's StrictSettings (read lag, unknown processing states), if any
        self._processing = ProcessingQueue(clock, processing_rate, time_scale)
        self._dynamic = ProcessingQueue(clock, dynamic_rate, time_scale)  # dynamic membership evaluations (dynamic.py)
        self._sync_interval_s = float(sync_interval_s)
        self._reset()
        if tenant is not None:
            self.load(tenant)

    # ------------------------------------------------------------------ state and tenant file
    def _reset(self):
        self.tenant_id = ""
        self.tenant_display_name = ""
        self.default_domain = ""
        self.country_letter_code = ""
        self.apps = []
        self._skus = {}
        self._users = {}
        self._upn_index = {}
        self._user_order = []
        self._user_count = 0
        self._groups = {}
        self._group_order = []
        self._conflicts = {}
        self._dependencies = {}
        self._prohibited = {}
        self._rules_doc = {"mutuallyExclusivePlans": [], "planDependencies": {}, "prohibitedUsageLocations": {}}
        self._disabled_intern = {(): ()}
        self._processing.reset()
        self._dynamic.reset()
        self._reset_sync()
        self._trail = AuditTrail()
        self._trail.configure(**getattr(self, "_audit_settings", {}))  # the audit knobs outlive a tenant load
        self._lagging = {}  # ("user" | "group", id) -> [(monotonic time of a write, state before it)] (views.ReadLag)

    @_locked
    def load(self, tenant: dict) -> None:
        """Replace the whole state with a tenant document (docs/tenant-format.md)."""
        # Loading allocates millions of long-lived objects; cyclic GC passes over them only cost time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._load(validate_tenant(tenant))
            self._lagging.clear()  # a loaded state is old news: reads see it at once (read lag applies to later writes)
        finally:
            if collecting:
                # ... and so do full collections after it: each one walks the whole tenant again (at 50,000
                # users about half the CPU of serving a page of 999). Frozen objects are still freed by
                # reference counting when the state is replaced; only cyclic garbage made before this
                # point stays (the records hold no cycles).
                gc.freeze()
                gc.enable()

    def _load(self, doc):
        self._reset()
        loaded_at = _now_iso()
        info = doc["tenant"]
        self.tenant_id = info["id"]
        self.tenant_display_name = info["displayName"]
        self.default_domain = info["defaultDomain"]
        self.country_letter_code = info["countryLetterCode"]
        self.apps = doc["apps"]
        for sku_doc in doc["subscribedSkus"]:
            self._skus[sku_doc["skuId"]] = _Sku(sku_doc)
        self._set_rules(doc["rules"])
        for user_doc in doc["users"]:
            user = _User(len(self._user_order), user_doc, loaded_at)
            user.extra = {key: user_doc[key] for key in USER_EXTRA_KEYS if key in user_doc} or None
            if user_doc["directLicenses"]:
                user.direct = {lic["skuId"]: (self._intern(lic["disabledPlans"]), user.created) for lic in user_doc["directLicenses"]}
            self._index_user(user)
        self._load_groups(doc, loaded_at)
        mode = doc["processing"]["groupLicenses"]
        if mode == "asRecorded":
            self._load_recorded(doc)
        for user in self._users.values():
            for sku_id in self._effective(user):
                self._skus[sku_id].consumed += 1
        if mode == "processed":
            self._load_processed(doc)
        elif mode == "queued":
            for group in self._group_order:
                if group.licenses:
                    self._queue_group(group, _LOAD_CONTEXT)

    def _load_groups(self, doc, loaded_at):
        for group_doc in doc["groups"]:
            group = _Group(len(self._group_order), group_doc)
            group.licenses = {lic["skuId"]: self._intern(lic["disabledPlans"]) for lic in group_doc["assignedLicenses"]}
            group.onprem = {key: group_doc[key] for key in ONPREM_KEYS if key in group_doc} or None
            self._groups[group.id] = group
            self._group_order.append(group)
        for group_doc in doc["groups"]:
            for member_id in group_doc["members"]:
                self._link_member(self._groups[group_doc["id"]], member_id)
        for group_doc in doc["groups"]:
            if "membershipRule" in group_doc:
                self._load_dynamic(self._groups[group_doc["id"]], group_doc, loaded_at)

    def _load_recorded(self, doc):
        for user_doc in doc["users"]:
            user = self._users[user_doc["id"]]
            for entry in user_doc.get("groupLicenses", []):
                licenses = {lic["skuId"]: self._intern(lic["disabledPlans"]) for lic in entry["licenses"]}
                self._set_entry(
                    user, self._groups[entry["groupId"]].id, _GroupEntry(licenses, entry["state"], entry["error"], entry["lastUpdatedDateTime"] or user.created)
                )
        for group_doc in doc["groups"]:
            group = self._groups[group_doc["id"]]
            group.processing_state = group_doc["licenseProcessingState"] or (COMPLETE if group.licenses else None)
        for gid, uid in doc["processing"]["pending"]:
            self._enqueue(self._groups[gid], uid, _LOAD_CONTEXT)

    def _load_processed(self, doc):
        """Apply group licenses as if Entra had finished processing: a snapshot starts consistent."""
        self._trail.quiet = True
        try:
            for group in self._group_order:
                for member_id, kind in group.members.items():
                    if kind == "user" and group.licenses:
                        self._reconcile(self._users[member_id], group.id, _LOAD_CONTEXT)
                if group.licenses:
                    group.processing_state = COMPLETE
        finally:
            self._trail.quiet = False

    def _set_rules(self, rules):
        self._rules_doc = json.loads(json.dumps(rules))
        self._conflicts = {}
        for a, b in rules["mutuallyExclusivePlans"]:
            self._conflicts.setdefault(a, set()).add(b)
            self._conflicts.setdefault(b, set()).add(a)
        self._dependencies = {plan: frozenset(prereqs) for plan, prereqs in rules["planDependencies"].items()}
        self._prohibited = {plan: frozenset(codes) for plan, codes in rules["prohibitedUsageLocations"].items()}

    def _index_user(self, user):
        self._users[user.id] = user
        self._upn_index[user.upn.lower()] = user.id
        self._user_order.append(user)
        self._user_count += 1

    def _intern(self, disabled) -> tuple:
        key = tuple(sorted({d.lower() for d in disabled}))
        return self._disabled_intern.setdefault(key, key)

    @_locked
    def export(self) -> dict:
        """The current state in the tenant format (group license states recorded, pending work kept)."""
        users = []
        for user in self._user_order:
            if user is None:
                continue
            doc = {
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
                **{key: json.loads(json.dumps(user.extra[key])) for key in USER_EXTRA_KEYS if user.extra and key in user.extra},
                "directLicenses": [{"skuId": s, "disabledPlans": list(d)} for s, (d, _) in (user.direct or {}).items()],
                "groupLicenses": [
                    {
                        "groupId": gid,
                        "state": e.state,
                        "error": e.error,
                        "lastUpdatedDateTime": e.updated,
                        "licenses": [{"skuId": s, "disabledPlans": list(d)} for s, d in e.licenses.items()],
                    }
                    for gid, e in (user.gstates or {}).items()
                    if gid in self._groups
                ],
            }
            users.append(doc)
        groups = [
            {
                **self._export_group_kind(g),
                "id": g.id,
                "displayName": g.display_name,
                "description": g.description,
                "securityEnabled": g.security_enabled,
                "mailEnabled": g.mail_enabled,
                "mailNickname": g.mail_nickname,
                "groupTypes": list(g.group_types),
                "createdDateTime": g.created,
                "members": list(g.members),
                "assignedLicenses": [{"skuId": s, "disabledPlans": list(d)} for s, d in g.licenses.items()],
                "licenseProcessingState": g.processing_state,
            }
            for g in self._group_order
            if g is not None
        ]
        skus = [
            {
                "skuId": s.sku_id,
                "skuPartNumber": s.part_number,
                "prepaidUnits": dict(s.prepaid),
                "capabilityStatus": s.capability_status,
                "appliesTo": s.applies_to,
                "servicePlans": [dict(p) for p in s.plans],
                "subscriptionIds": list(s.subscription_ids),
                "accountName": s.account_name,
            }
            for s in self._skus.values()
        ]
        queue = self._processing
        pending = [[gid, uid] for (gid, uid) in queue.keys if gid in self._groups and (gid, uid) in queue.pending]
        return {
            "tenant": {
                "id": self.tenant_id,
                "displayName": self.tenant_display_name,
                "defaultDomain": self.default_domain,
                "countryLetterCode": self.country_letter_code,
            },
            "apps": json.loads(json.dumps(self.apps)),
            "subscribedSkus": skus,
            "users": users,
            "groups": groups,
            "rules": json.loads(json.dumps(self._rules_doc)),
            "processing": {"groupLicenses": "asRecorded", "pending": pending},
        }

    @staticmethod
    def _export_group_kind(group):
        data = dict(group.onprem or {})
        if group.dynamic:
            data["membershipRule"] = group.membership_rule
            data["membershipRuleProcessingState"] = group.rule_state
            data["membershipRuleProcessingStatus"] = {"status": group.rule_status, "lastMembershipUpdated": group.rule_updated, "errorMessage": None}
        return data

    @property
    def processing_rate(self) -> float:
        return self._processing.rate

    @property
    def dynamic_rate(self) -> float:
        return self._dynamic.rate

    @_locked
    def configure(self, processing_rate=None, time_scale=None, processing_delay=None, dynamic_rate=None) -> None:
        self.advance()  # time already elapsed is accounted at the old speed
        if dynamic_rate is not None:
            if isinstance(dynamic_rate, bool) or not isinstance(dynamic_rate, (int, float)) or dynamic_rate < 0:
                raise ValueError(f"dynamic_rate: got {dynamic_rate!r}, expected a number of users per second >= 0 (0: only process_all)")
            self._dynamic.rate = float(dynamic_rate)
        if processing_delay is not None:
            self._processing.delay = float(processing_delay)
        if processing_rate is not None:
            if processing_rate < 0:
                raise ValueError(f"processing_rate: got {processing_rate!r}, expected >= 0")
            self._processing.rate = float(processing_rate)
        if time_scale is not None:
            if time_scale <= 0:
                raise ValueError(f"time_scale: got {time_scale!r}, expected > 0")
            self._processing.time_scale = float(time_scale)
            self._dynamic.time_scale = float(time_scale)

    @_locked
    def add_app(self, app: dict) -> dict:
        app = dict(app)
        app.setdefault("clientId", str(uuid.uuid4()))
        normalised = validate_app(app, "app")
        if any(a["clientId"] == normalised["clientId"] for a in self.apps):
            raise TenantFormatError(f"app.clientId: got {normalised['clientId']!r}, expected a clientId not already registered")
        self.apps.append(normalised)
        return normalised

    # ------------------------------------------------------------------ lookups
    def _user(self, key) -> _User:
        if not isinstance(key, str) or not key:
            raise _not_found(key)
        if is_guid(key):
            user = self._users.get(key.lower())
        else:
            user = self._users.get(self._upn_index.get(key.lower(), ""))
        if user is None:
            raise _not_found(key)
        return user

    def _group(self, group_id) -> _Group:
        group = self._groups.get(self._object_id(group_id))
        if group is None:
            raise _not_found(group_id)
        return group

    def _object_id(self, value) -> str:
        if not is_guid(value):
            raise _bad_request(f"Invalid object identifier '{value}'.")
        return value.lower()

    def _sku_guid(self, value, prop) -> str:
        if not is_guid(value):
            raise _bad_request(f"Invalid value '{value}' for property '{prop}': expected a GUID.")
        return value.lower()

    # ------------------------------------------------------------------ effective licensing
    def _sources(self, user, skip_group=None):
        """(skuId, disabled tuple) of every ACTIVE source: direct copies and active group entries."""
        if user.direct:
            for sku_id, (disabled, _) in user.direct.items():
                yield sku_id, disabled
        if user.gstates:
            for gid, entry in user.gstates.items():
                if gid != skip_group and entry.state in ACTIVE_STATES:
                    yield from entry.licenses.items()

    def _effective(self, user, skip_group=None, direct=None, extra=None) -> dict:
        """skuId -> frozenset of enabled user plans (union over active sources). ``direct`` replaces the
        direct copies, ``extra`` adds one more active source (both used to evaluate a change before doing it)."""
        result = {}
        if direct is not None:
            sources = [(s, d) for s, (d, _) in direct.items()]
            sources += [(s, d) for gid, e in (user.gstates or {}).items() if e.state in ACTIVE_STATES for s, d in e.licenses.items()]
        else:
            sources = self._sources(user, skip_group)
        for sku_id, disabled in sources:
            enabled = self._skus[sku_id].enabled_plans(disabled)
            previous = result.get(sku_id)
            result[sku_id] = enabled if previous is None else previous | enabled
        for sku_id, disabled in (extra or {}).items():
            enabled = self._skus[sku_id].enabled_plans(disabled)
            previous = result.get(sku_id)
            result[sku_id] = enabled if previous is None else previous | enabled
        return result

    @staticmethod
    def _all_plans(effective) -> frozenset:
        return frozenset().union(*effective.values()) if effective else frozenset()

    def _conflict_pairs(self, plans) -> set:
        pairs = set()
        for plan in plans & self._conflicts.keys():
            for other in self._conflicts[plan] & plans:
                pairs.add(tuple(sorted((plan, other))))
        return pairs

    def _unmet_dependencies(self, plans) -> set:
        return {plan for plan, prereqs in self._dependencies.items() if plan in plans and not prereqs & plans}

    def _prohibited_plans(self, plans, location) -> list:
        return sorted(p for p in plans & self._prohibited.keys() if location in self._prohibited[p])

    def _plan_name(self, plan_id) -> str:
        for sku in self._skus.values():
            name = sku.plan_names.get(plan_id)
            if name:
                return name
        return plan_id

    def _commit(self, user, before, cause, ctx):
        """After a user's sources changed: keep consumedUnits exact and record lost plans in the ledger."""
        after = self._effective(user)
        for sku_id in before.keys() - after.keys():
            self._skus[sku_id].consumed -= 1
        for sku_id in after.keys() - before.keys():
            self._skus[sku_id].consumed += 1
        self._trail.record_losses(user, before, after, self._skus, cause, ctx)
        return after

    @_locked
    def audit_events(self) -> list[dict]:
        return self._trail.event_dicts()

    @_locked
    def configure_audit(self, actor=None, retention_days=None) -> dict:
        """The group-licensing actor spelling ("azure_ad" | "entra") and the retention in days (audit.py)."""
        self._trail.configure(actor=actor, retention_days=retention_days)
        self._audit_settings = {"actor": self._trail.actor, "retention_days": self._trail.retention_days}
        return dict(self._audit_settings)

    @_locked
    def loss_ledger(self) -> list[dict]:
        return self._trail.ledger_copy()

    @_locked
    def clear_ledger(self) -> None:
        self._trail.clear_ledger()

    # ------------------------------------------------------------------ user writes
    def _check_user_props(self, body, *, creating):
        if not isinstance(body, dict):
            raise _bad_request("The request body must be a JSON object.")
        for prop, value in body.items():
            if prop in _USER_READ_ONLY and not (creating and prop == "id"):
                raise _bad_request(f"Property '{prop}' is read-only and cannot be set.")
            if prop == "passwordProfile" or prop.startswith("@odata"):
                continue
            if prop in ONPREM_KEYS:
                raise _bad_request(f"Property '{prop}' is read-only and cannot be set.")
            if prop == "onPremisesExtensionAttributes":
                try:
                    validate_extension_attributes(value, "onPremisesExtensionAttributes")
                except TenantFormatError as error:
                    raise _bad_request(f"Invalid value specified for property 'onPremisesExtensionAttributes' of resource 'User': {error}") from None
                continue
            if prop not in _USER_SLOT_PROPS and prop not in _USER_EXTRA_PROPS and prop not in ("accountEnabled", "usageLocation", "userPrincipalName", "id"):
                raise _bad_request(
                    f"The property '{prop}' does not exist on type 'microsoft.graph.user'. Make sure to only "
                    "use property names that are defined by the type or mark the type as open type."
                )
            if prop == "accountEnabled" and not isinstance(value, bool):
                raise _bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")
            if prop == "usageLocation" and value is not None and not (isinstance(value, str) and len(value) == 2 and value.upper() in ISO_COUNTRY_CODES):
                raise _bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")
            if prop in _USER_SLOT_PROPS and value is not None and not isinstance(value, str):
                raise _bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")
        if "userPrincipalName" in body:
            upn = body["userPrincipalName"]
            if not isinstance(upn, str) or upn.count("@") != 1 or upn.startswith("@") or upn.endswith("@"):
                raise _bad_request("Invalid value specified for property 'userPrincipalName' of resource 'User'.")

    def _apply_user_props(self, user, body):
        for prop, value in body.items():
            if prop in _USER_SLOT_PROPS:
                setattr(user, _USER_SLOT_PROPS[prop], value)
            elif prop == "accountEnabled":
                user.account_enabled = value
            elif prop == "usageLocation":
                user.usage_location = value.upper() if value else None
            elif prop == "userPrincipalName":
                del self._upn_index[user.upn.lower()]
                user.upn = value
                self._upn_index[value.lower()] = user.id
            elif prop in _USER_EXTRA_PROPS:
                user.extra = dict(user.extra or {}, **{prop: value})
            elif prop == "onPremisesExtensionAttributes":
                current = dict((user.extra or {}).get("onPremisesExtensionAttributes") or {})
                current.update(validate_extension_attributes(dict(current, **value), prop))
                user.extra = dict(user.extra or {}, onPremisesExtensionAttributes=current)

    @_locked
    def create_user(self, body: dict, ctx) -> dict:
        self._check_user_props(body, creating=True)
        for required in ("displayName", "userPrincipalName"):
            if not body.get(required):
                raise _bad_request(f"Invalid value specified for property '{required}' of resource 'User'.")
        if body["userPrincipalName"].lower() in self._upn_index:
            raise _bad_request("Another object with the same value for property userPrincipalName already exists.")
        user_id = self._object_id(body["id"]) if "id" in body else str(uuid.uuid4())
        if user_id in self._users or user_id in self._groups:
            raise _bad_request("Another object with the same value for property id already exists.")
        user = _User(
            len(self._user_order), {"id": user_id, "userPrincipalName": body["userPrincipalName"], "mailNickname": body["userPrincipalName"].split("@")[0]}
        )
        self._upn_index[user.upn.lower()] = user.id  # so the UPN rename below is a no-op
        self._apply_user_props(user, {k: v for k, v in body.items() if k != "id"})
        self._index_user(user)
        self._trail.record("Add user", "UserManagement", "Add", ctx, user_target(user))
        self._queue_user_rules(user)
        return self._user_dict(user)

    @_locked
    def update_user(self, key, body: dict, ctx) -> None:
        user = self._user(key)
        if _user_synced(user) and isinstance(body, dict) and set(body) - _SYNCED_USER_CLOUD_PROPS:
            raise _bad_request(ONPREM_MASTERED)
        self._check_user_props(body, creating=False)
        if "id" in body:
            raise _bad_request("Property 'id' is read-only and cannot be set.")
        new_upn = body.get("userPrincipalName")
        if new_upn and self._upn_index.get(new_upn.lower(), user.id) != user.id:
            raise _bad_request("Another object with the same value for property userPrincipalName already exists.")
        old = {p: self._user_dict(user, select=()).get(p) for p in body}
        self._apply_user_props(user, body)
        modified = [(p, json.dumps([old.get(p)]), json.dumps([body[p]])) for p in body if p != "passwordProfile"]
        self._trail.record("Update user", "UserManagement", "Update", ctx, user_target(user), modified)
        self._queue_user_rules(user)

    @_locked
    def delete_user(self, key, ctx) -> None:
        user = self._user(key)
        if _user_synced(user):
            raise _bad_request(ONPREM_MASTERED)
        for sku_id in self._effective(user):
            self._skus[sku_id].consumed -= 1
        for gid in list(user.groups or ()):
            group = self._groups[gid]
            group.members.pop(user.id, None)
        for gid in user.gstates or {}:
            group = self._groups.get(gid)
            if group is not None:
                group.entry_users.discard(user.id)
                group.error_users.discard(user.id)
        del self._users[user.id]
        del self._upn_index[user.upn.lower()]
        self._user_order[user.seq] = None
        self._user_count -= 1
        self._trail.record("Delete user", "UserManagement", "Delete", ctx, user_target(user))

    # ------------------------------------------------------------------ direct licensing
    def _parse_add_licenses(self, add_licenses):
        if not isinstance(add_licenses, list):
            raise _bad_request("Invalid value specified for parameter 'addLicenses': expected a collection.")
        parsed = {}
        for item in add_licenses:
            if not isinstance(item, dict):
                raise _bad_request("Invalid value specified for parameter 'addLicenses': expected assignedLicense objects.")
            sku_id = self._sku_guid(item.get("skuId"), "skuId")
            disabled = item.get("disabledPlans") or []
            if not isinstance(disabled, list):
                raise _bad_request(f"Invalid value '{disabled}' for property 'disabledPlans': expected a collection of GUIDs.")
            parsed[sku_id] = [self._sku_guid(p, "disabledPlans") for p in disabled]
        return parsed

    def _parse_remove_licenses(self, remove_licenses):
        if not isinstance(remove_licenses, list):
            raise _bad_request("Invalid value specified for parameter 'removeLicenses': expected a collection.")
        return [self._sku_guid(s, "removeLicenses") for s in remove_licenses]

    def _check_known_skus(self, adds, subject):
        for sku_id in adds:
            sku = self._skus.get(sku_id)
            if sku is None:
                raise _bad_request(f"License {sku_id} does not correspond to a valid company License.")
            if sku.applies_to != "User":
                raise _bad_request(f"License {sku_id} cannot be assigned to a {subject}.")

    def _check_disabled_plans(self, adds):
        for sku_id, disabled in adds.items():
            for plan in disabled:
                if plan not in self._skus[sku_id].plan_ids:
                    raise _bad_request(f"Service plan {plan} does not belong to the subscription with SKU {sku_id}.")

    def _conflict_message(self, pairs):
        names = sorted({self._plan_name(p) for pair in pairs for p in pair})
        return (
            f"The set of licenses includes two or more service plans which cannot be assigned at the same time. Conflicting Service Plans: {', '.join(names)}."
        )

    def _dependency_message(self, unmet):
        dependents = sorted(self._plan_name(p) for p in unmet)
        prereqs = sorted({self._plan_name(q) for p in unmet for q in self._dependencies[p]})
        return (
            f"License assignment failed because service plans {', '.join(dependents)} depend on service plans {', '.join(prereqs)}, which would not be enabled."
        )

    @_locked
    def assign_user_license(self, key, add_licenses: list[dict], remove_licenses: list[str], ctx) -> dict:
        user = self._user(key)
        adds = self._parse_add_licenses(add_licenses)
        removes = self._parse_remove_licenses(remove_licenses)
        # Validation order of graph-api.md 1.4; nothing changes unless every check passes.
        self._check_known_skus(adds, "user")
        if adds and user.usage_location not in ISO_COUNTRY_CODES:
            raise _bad_request("License assignment cannot be done for user with invalid usage location.")
        before = self._effective(user)
        for sku_id in adds:
            if sku_id not in before and self._skus[sku_id].free_units() <= 0:
                raise _bad_request(f"Subscription with SKU {sku_id} does not have any available licenses.")
        for sku_id in removes:
            if sku_id in adds:
                raise _bad_request(f"License {sku_id} cannot be both added and removed in the same request.")
            if not user.direct or sku_id not in user.direct:
                inherited = any(sku_id in e.licenses for e in (user.gstates or {}).values())
                if inherited:
                    raise _bad_request("User license is inherited from a group membership and it cannot be removed directly from the user.")
                raise _bad_request("User does not have a corresponding license.")
        now = _now_iso()
        new_direct = dict(user.direct or {})
        for sku_id in removes:
            del new_direct[sku_id]
        for sku_id, disabled in adds.items():
            new_direct[sku_id] = (self._intern(disabled), now)
        after = self._effective(user, direct=new_direct)
        before_plans, after_plans = self._all_plans(before), self._all_plans(after)
        new_conflicts = self._conflict_pairs(after_plans) - self._conflict_pairs(before_plans)
        if new_conflicts:
            raise _bad_request(self._conflict_message(new_conflicts))
        self._check_disabled_plans(adds)
        gained = after_plans - before_plans
        blocked = self._prohibited_plans(gained, user.usage_location)
        if blocked:
            raise _bad_request(
                f"License assignment failed because service plans {', '.join(self._plan_name(p) for p in blocked)} "
                f"are not available in usage location {user.usage_location}."
            )
        unmet = self._unmet_dependencies(after_plans) - self._unmet_dependencies(before_plans)
        if unmet:
            raise _bad_request(self._dependency_message(unmet))
        old_licenses = [(s, d) for s, (d, _) in (user.direct or {}).items()]
        self._remember_user(user)
        user.direct = new_direct or None
        self._commit(user, before, "direct", ctx)
        if adds or removes:
            new_licenses = [(s, d) for s, (d, _) in new_direct.items()]
            self._trail.record("Change user license", "UserManagement", "Update", ctx, user_target(user))
            self._trail.record(
                "Update user",
                "UserManagement",
                "Update",
                ctx,
                user_target(user),
                [("AssignedLicense", license_text(self._skus, old_licenses), license_text(self._skus, new_licenses))],
            )
        return self._user_dict(user)

    # ------------------------------------------------------------------ groups and membership
    def _check_group_props(self, body, *, creating):
        if not isinstance(body, dict):
            raise _bad_request("The request body must be a JSON object.")
        for prop, value in body.items():
            if prop.startswith("@odata") or prop.endswith("@odata.bind"):
                continue
            if prop in _GROUP_READ_ONLY:
                raise _bad_request(f"Property '{prop}' is read-only and cannot be set.")
            if prop not in _GROUP_WRITABLE:
                raise _bad_request(
                    f"The property '{prop}' does not exist on type 'microsoft.graph.group'. Make sure to only "
                    "use property names that are defined by the type or mark the type as open type."
                )
            if prop in ("securityEnabled", "mailEnabled") and not isinstance(value, bool):
                raise _bad_request(f"Invalid value specified for property '{prop}' of resource 'Group'.")
            if prop in ("displayName", "mailNickname") and not (isinstance(value, str) and value):
                raise _bad_request(f"Invalid value specified for property '{prop}' of resource 'Group'.")
            if prop == "groupTypes" and (not isinstance(value, list) or not all(isinstance(t, str) for t in value)):
                raise _bad_request("Invalid value specified for property 'groupTypes' of resource 'Group'.")
            if prop == "membershipRuleProcessingState" and value not in ("On", "Paused"):
                raise _bad_request("Invalid value specified for property 'membershipRuleProcessingState' of resource 'Group': expected 'On' or 'Paused'.")
            if prop == "membershipRule" and value is not None and not isinstance(value, str):
                raise _bad_request("Invalid value specified for property 'membershipRule' of resource 'Group'.")
        if creating:
            for required in ("displayName", "mailNickname", "mailEnabled", "securityEnabled"):
                if required not in body:
                    raise _bad_request(f"Invalid value specified for property '{required}' of resource 'Group'.")

    def _check_dynamic_props(self, group, body):
        """The group as the body would leave it: a DynamicMembership group needs a rule the engine can read; others none."""
        types = body.get("groupTypes", group.group_types if group is not None else [])
        dynamic = "DynamicMembership" in types
        rule = body.get("membershipRule", group.membership_rule if group is not None else None)
        if not dynamic:
            if body.get("membershipRule") is not None or "membershipRuleProcessingState" in body:
                raise _bad_request("membershipRule and membershipRuleProcessingState can only be set on a group whose groupTypes contains 'DynamicMembership'.")
            return
        if not rule:
            raise _bad_request("A group whose groupTypes contains 'DynamicMembership' needs a membershipRule.")
        try:
            parse_rule(rule)
        except RuleSyntaxError as error:
            raise _bad_request(str(error)) from None

    def _refuse_member_write(self, group):
        """Members of a dynamic group come from its rule, those of a synced group from AD: Graph writes none."""
        if group.synced:
            raise _bad_request(ONPREM_MASTERED)
        if group.dynamic:
            raise DYNAMIC_MEMBERS_REFUSED

    def _validate_new_members(self, group, member_ids):
        """Return [(id, kind)] or raise: bad GUID 400, unknown 404, already a member 400."""
        resolved = []
        seen = set()
        for raw in member_ids:
            member_id = self._object_id(raw)
            if member_id in self._users:
                kind = "user"
            elif member_id in self._groups and member_id != group.id:
                kind = "group"
            else:
                raise _not_found(raw)
            if member_id in group.members or member_id in seen:
                raise _bad_request("One or more added object references already exist for the following modified properties: 'members'.")
            seen.add(member_id)
            resolved.append((member_id, kind))
        return resolved

    def _link_member(self, group, member_id):
        if member_id in self._users:
            group.members[member_id] = "user"
            user = self._users[member_id]
            if user.groups is None:
                user.groups = set()
            user.groups.add(group.id)
        else:
            group.members[member_id] = "group"
            self._groups[member_id].parents.add(group.id)

    def _membership_changed(self, group, user_id, ctx):
        """A user joined or left: group licensing re-evaluates that user in the background."""
        if group.licenses or user_id in group.entry_users:
            self._enqueue(group, user_id, ctx)

    @_locked
    def create_group(self, body: dict, ctx, member_ids=()) -> dict:
        self._check_group_props(body, creating=True)
        self._check_dynamic_props(None, body)
        group = _Group(len(self._group_order), {"id": str(uuid.uuid4()), "displayName": body["displayName"]})
        if member_ids and "DynamicMembership" in body.get("groupTypes", []):
            raise DYNAMIC_MEMBERS_REFUSED
        members = self._validate_new_members(group, member_ids)
        self._apply_group_props(group, body)
        self._groups[group.id] = group
        self._group_order.append(group)
        self._trail.record("Add group", "GroupManagement", "Add", ctx, group_target(group))
        for member_id, _ in members:
            self._link_member(group, member_id)
        self._set_dynamic(group, body, creating=True)
        return self._group_dict(group)

    def _apply_group_props(self, group, body):
        mapping = {
            "displayName": "display_name",
            "description": "description",
            "mailNickname": "mail_nickname",
            "securityEnabled": "security_enabled",
            "mailEnabled": "mail_enabled",
        }
        for prop, value in body.items():
            if prop in mapping:
                setattr(group, mapping[prop], value)
            elif prop == "groupTypes":
                group.group_types = list(value)

    @_locked
    def update_group(self, group_id, body: dict, ctx, add_member_ids=()) -> None:
        group = self._group(group_id)
        if group.synced:
            raise _bad_request(ONPREM_MASTERED)
        self._check_group_props(body, creating=False)
        self._check_dynamic_props(group, body)
        if add_member_ids:
            self._refuse_member_write(group)
            if "DynamicMembership" in body.get("groupTypes", []):
                raise DYNAMIC_MEMBERS_REFUSED
        members = self._validate_new_members(group, add_member_ids)
        self._apply_group_props(group, body)
        if any(not p.endswith("@odata.bind") for p in body):
            self._trail.record("Update group", "GroupManagement", "Update", ctx, group_target(group))
        self._add_validated_members(group, members, ctx)
        if {"groupTypes", "membershipRule", "membershipRuleProcessingState"} & body.keys():
            self._set_dynamic(group, body, creating=False)

    @_locked
    def delete_group(self, group_id, ctx) -> None:
        group = self._group(group_id)
        if group.synced:
            raise _bad_request(ONPREM_MASTERED)
        if group.licenses:
            # Reference: a group with licenses cannot be deleted until its licenses are removed.
            raise _bad_request("The group has licenses assigned. Remove all licenses from the group before deleting it.")
        for parent_id in group.parents:
            self._groups[parent_id].members.pop(group.id, None)
        for member_id, kind in group.members.items():
            if kind == "user":
                self._users[member_id].groups.discard(group.id)
            else:
                self._groups[member_id].parents.discard(group.id)
        del self._groups[group.id]
        self._group_order[group.seq] = None
        self._trail.record("Delete group", "GroupManagement", "Delete", ctx, group_target(group))
        for user_id in sorted(group.entry_users, key=lambda u: self._users[u].seq):
            self._enqueue(group, user_id, ctx)

    def _add_validated_members(self, group, members, ctx):
        for member_id, kind in members:
            self._link_member(group, member_id)
            self._record_member_change(group, kind, member_id, True, ctx)
            if kind == "user":
                self._membership_changed(group, member_id, ctx)

    def _unlink_member(self, group, member_id):
        kind = group.members.pop(member_id)
        if kind == "user":
            self._users[member_id].groups.discard(group.id)
        else:
            self._groups[member_id].parents.discard(group.id)
        return kind

    @_locked
    def add_members(self, group_id, member_ids, ctx) -> None:
        group = self._group(group_id)
        self._refuse_member_write(group)
        self._add_validated_members(group, self._validate_new_members(group, member_ids), ctx)

    @_locked
    def remove_member(self, group_id, member_id, ctx) -> None:
        group = self._group(group_id)
        self._refuse_member_write(group)
        member_key = member_id.lower() if is_guid(member_id) else member_id
        if member_key not in group.members:
            raise _not_found(member_id)
        kind = self._unlink_member(group, member_key)
        self._record_member_change(group, kind, member_key, False, ctx)
        if kind == "user":
            self._membership_changed(group, member_key, ctx)

    # ------------------------------------------------------------------ group licensing
    @_locked
    def assign_group_license(self, group_id, add_licenses, remove_licenses, ctx) -> dict:
        group = self._group(group_id)
        adds = self._parse_add_licenses(add_licenses)
        removes = self._parse_remove_licenses(remove_licenses)
        if not group.security_enabled:
            raise _bad_request("Licenses can only be assigned to security groups or to Microsoft 365 groups with securityEnabled set to true.")
        self._check_known_skus(adds, "group")
        for sku_id in removes:
            if sku_id in adds:
                raise _bad_request(f"License {sku_id} cannot be both added and removed in the same request.")
            if sku_id not in group.licenses:
                raise _bad_request("Group does not have a corresponding license.")
        self._check_disabled_plans(adds)
        new_licenses = {s: d for s, d in group.licenses.items() if s not in removes}
        for sku_id, disabled in adds.items():
            new_licenses[sku_id] = self._intern(disabled)
        group_plans = self._all_plans({s: self._skus[s].enabled_plans(d) for s, d in new_licenses.items()})
        conflicts = self._conflict_pairs(group_plans)
        if conflicts:
            raise _bad_request(self._conflict_message(conflicts))
        unmet = self._unmet_dependencies(group_plans)
        if unmet:
            # Add-ons need their prerequisite in the same group (entra-licensing.md section 3).
            raise _bad_request("License operation failed. Make sure that the group has necessary services. " + self._dependency_message(unmet))
        old = list(group.licenses.items())
        self._remember_group(group)
        group.licenses = new_licenses
        self._trail.record(
            "Set group license",
            "GroupManagement",
            "Update",
            ctx,
            group_target(group),
            [("AssignedLicense", license_text(self._skus, old), license_text(self._skus, new_licenses.items()))],
        )
        self._queue_group(group, ctx)
        return self._group_dict(group)

    @_locked
    def set_sku_units(self, sku_id_or_part_number, enabled: int) -> None:
        if not isinstance(enabled, int) or isinstance(enabled, bool) or enabled < 0:
            raise ValueError(f"enabled: got {enabled!r}, expected a non-negative integer")
        wanted = str(sku_id_or_part_number).lower()
        for sku in self._skus.values():
            if sku.sku_id == wanted or sku.part_number.lower() == wanted:
                sku.prepaid["enabled"] = enabled
                return
        raise ValueError(f"sku: got {sku_id_or_part_number!r}, expected a skuId or skuPartNumber of subscribedSkus")
