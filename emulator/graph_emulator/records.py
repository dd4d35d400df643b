"""The directory's vocabulary: its compact records, errors, request contexts and the helpers its modules share.

Records are compact ``__slots__`` objects; Graph-shaped dicts are built from them only when read. Names with a leading underscore are internal to the directory modules (engine.py,
views.py, audit.py, processing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps

QUEUED = "QueuedForProcessing"
IN_PROGRESS = "ProcessingInProgress"
COMPLETE = "ProcessingComplete"
ACTIVE_STATES = frozenset({"Active", "ActiveWithError"})


class GraphError(Exception):
    """Raised by engine methods; the server turns it into the Graph error envelope."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class RequestContext:
    """Who/what caused a change: used for the loss ledger and audit events."""

    request_id: str = ""
    client_request_id: str = ""
    method: str = ""
    path: str = ""
    app_id: str = ""
    app_display_name: str = ""
    cause: str = ""  # the loss ledger's cause for changes made under this context ("" = the engine's default)


_LOAD_CONTEXT = RequestContext(method="LOAD", path="(tenant file)")
# Directory methods called in-process (tests, the control API) without a Graph request behind them.
CONTROL_CONTEXT = RequestContext(method="CONTROL", path="(in-process call)", app_display_name="emulator control")


def _context(ctx):
    return CONTROL_CONTEXT if ctx is None else ctx


def _bad_request(message):
    return GraphError(400, "Request_BadRequest", message)


def _not_found(key):
    return GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")


def _now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_iso_ms():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _locked(method):
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def _service_name(plan_name: str) -> str:
    """assignedPlan.service: Microsoft's service names for the common workloads, else the plan name."""
    prefixes = (
        ("EXCHANGE", "exchange"),
        ("SHAREPOINT", "SharePoint"),
        ("MCO", "MicrosoftCommunicationsOnline"),
        ("TEAMS", "TeamspaceAPI"),
        ("OFFICESUBSCRIPTION", "MicrosoftOffice"),
        ("INTUNE", "SCO"),
        ("AAD_PREMIUM", "AADPremiumService"),
        ("RMS_S", "RMSOnline"),
        ("YAMMER", "YammerEnterprise"),
        ("PROJECT", "ProjectWorkManagement"),
        ("SWAY", "Sway"),
        ("FORMS", "MicrosoftForms"),
        ("STREAM", "MicrosoftStream"),
        ("POWERAPPS", "PowerAppsService"),
        ("FLOW", "ProcessSimple"),
    )
    for prefix, service in prefixes:
        if plan_name.upper().startswith(prefix):
            return service
    return plan_name


class _Sku:
    __slots__ = (
        "sku_id",
        "part_number",
        "prepaid",
        "capability_status",
        "applies_to",
        "plans",
        "plan_names",
        "plan_ids",
        "user_plan_ids",
        "consumed",
        "subscription_ids",
        "account_name",
        "_enabled_cache",
        "_services_cache",
    )

    def __init__(self, doc):
        self.sku_id = doc["skuId"]
        self.part_number = doc["skuPartNumber"]
        self.prepaid = dict(doc["prepaidUnits"])
        self.capability_status = doc["capabilityStatus"]
        self.applies_to = doc["appliesTo"]
        self.plans = [dict(p) for p in doc["servicePlans"]]
        self.plan_names = {p["servicePlanId"]: p["servicePlanName"] for p in self.plans}
        self.plan_ids = frozenset(self.plan_names)
        # Only plans that apply to users count for effective plans and loss (reference section 18 item 4).
        self.user_plan_ids = frozenset(p["servicePlanId"] for p in self.plans if p["appliesTo"] == "User")
        self.consumed = 0
        self.subscription_ids = list(doc.get("subscriptionIds") or [])
        self.account_name = doc.get("accountName")
        self._enabled_cache = {}
        self._services_cache = {}

    def enabled_plans(self, disabled: tuple) -> frozenset:
        enabled = self._enabled_cache.get(disabled)
        if enabled is None:
            enabled = self._enabled_cache[disabled] = self.user_plan_ids.difference(disabled)
        return enabled

    def plan_services(self, enabled: frozenset) -> tuple:
        """Sorted (servicePlanId, service) pairs of an enabled set, cached: users share a few sets."""
        pairs = self._services_cache.get(enabled)
        if pairs is None:
            pairs = self._services_cache[enabled] = tuple((p, _service_name(self.plan_names[p])) for p in sorted(enabled))
        return pairs

    def free_units(self) -> int:
        return self.prepaid["enabled"] - self.consumed


class _GroupEntry:
    """One group's license copy on one user: licenses {skuId: disabled tuple}, state, error, updated."""

    __slots__ = ("licenses", "state", "error", "updated")

    def __init__(self, licenses, state, error, updated):
        self.licenses = licenses
        self.state = state
        self.error = error
        self.updated = updated


class _User:
    __slots__ = (
        "seq",
        "id",
        "upn",
        "display_name",
        "given_name",
        "surname",
        "mail",
        "mail_nickname",
        "account_enabled",
        "usage_location",
        "job_title",
        "department",
        "created",
        "extra",
        "direct",
        "gstates",
        "groups",
    )

    def __init__(self, seq, doc, now=None):
        self.seq = seq
        self.id = doc["id"]
        self.upn = doc["userPrincipalName"]
        self.display_name = doc.get("displayName")
        self.given_name = doc.get("givenName")
        self.surname = doc.get("surname")
        self.mail = doc.get("mail")
        self.mail_nickname = doc.get("mailNickname")
        self.account_enabled = doc.get("accountEnabled", True)
        self.usage_location = doc.get("usageLocation")
        self.job_title = doc.get("jobTitle")
        self.department = doc.get("department")
        self.created = doc.get("createdDateTime") or now or _now_iso()
        self.extra = None  # other writable properties, only when set
        self.direct = None  # {skuId: (disabled tuple, lastUpdatedDateTime)}
        self.gstates = None  # {groupId: _GroupEntry}
        self.groups = None  # ids of groups the user is a DIRECT member of


class _Group:
    __slots__ = (
        "seq",
        "id",
        "display_name",
        "description",
        "security_enabled",
        "mail_enabled",
        "mail_nickname",
        "group_types",
        "created",
        "members",
        "parents",
        "licenses",
        "processing_state",
        "entry_users",
        "error_users",
        "pending",
        "batch_ok",
        "batch_failed",
        "queued_by",
        "membership_rule",
        "rule",
        "rule_state",
        "rule_status",
        "rule_updated",
        "rule_pending",
        "onprem",
    )

    def __init__(self, seq, doc):
        self.seq = seq
        self.id = doc["id"]
        self.display_name = doc["displayName"]
        self.description = doc.get("description")
        self.security_enabled = doc.get("securityEnabled", True)
        self.mail_enabled = doc.get("mailEnabled", False)
        self.mail_nickname = doc.get("mailNickname")
        self.group_types = list(doc.get("groupTypes") or [])
        self.created = doc.get("createdDateTime") or _now_iso()
        self.members = {}  # member id -> "user" | "group", insertion order kept
        self.parents = set()  # groups this group is a direct member of
        self.licenses = {}  # skuId -> disabled tuple
        self.processing_state = None
        self.entry_users = set()  # users holding an entry (any state) from this group
        self.error_users = set()  # users whose entry from this group carries an error
        self.pending = 0
        self.batch_ok = 0
        self.batch_failed = 0
        self.queued_by = None
        # dynamic membership (dynamic.py): rule text and its parsed form, On/Paused, processing status
        self.membership_rule = None
        self.rule = None
        self.rule_state = None
        self.rule_status = None
        self.rule_updated = None
        self.rule_pending = 0
        self.onprem = None  # {onPremisesSyncEnabled, onPremisesSecurityIdentifier, ...} of a group synced from AD

    @property
    def dynamic(self) -> bool:
        return self.rule is not None

    @property
    def synced(self) -> bool:
        return bool(self.onprem and self.onprem.get("onPremisesSyncEnabled"))
